"""REST API of Audience under /api/v1 (Bearer API key). Thin: routes translate HTTP and call services."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tutti.platform.auth import ApiContext, api_context

router = APIRouter(tags=["contacts"])


@router.get("/workspace")
def current_workspace(ctx: ApiContext = Depends(api_context)) -> dict:
    """The workspace this key belongs to."""
    w = ctx.workspace
    return {"id": w.id, "name": w.name, "slug": w.slug, "timezone": w.timezone, "locale": w.locale, "currency": w.currency}
