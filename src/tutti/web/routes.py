"""Mounting every part's routers. Each part owns its routes; this is the one list of them."""

from __future__ import annotations

from fastapi import FastAPI


def mount_all(app: FastAPI) -> None:
    from tutti.audience import api as audience_api

    app.include_router(audience_api.router, prefix="/api/v1")
