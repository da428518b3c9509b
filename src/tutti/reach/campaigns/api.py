"""REST API of campaigns under /api/v1/campaigns (Bearer API key). Thin: the service checks and acts;
every call is scoped by the key's workspace, so another workspace's campaign is simply not found (404).

Reading needs `campaigns.read` (every role); changing and sending need `campaigns.send` (owner, admin,
marketer)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import Field
from sqlalchemy.orm import Session

from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.schemas import ERROR_RESPONSES, IdPath, JsonObject, Text
from tutti.platform.schemas import Body as Shape
from tutti.reach.campaigns import service

router = APIRouter(tags=["campaigns"], responses=ERROR_RESPONSES)
READ = allowed("campaigns.read")
SEND = allowed("campaigns.send")

EXAMPLE = {
    "name": "週年慶 LINE 推播", "audience": {"segment_ids": [3], "exclude_segment_ids": [7]}, "channels": ["line", "sms"],
    "holdout_percent": 10, "quiet_hours": {"start": "21:00", "end": "09:00"}, "frequency_cap": {"max": 2, "days": 7},
    "attribution_days": 7, "costs": {"line": 0.2, "sms": 1.0},
    "variants": [{"name": "A", "split_percent": 50, "template_ids": {"line": 12, "sms": 13}},
                 {"name": "B", "split_percent": 50, "content": {"line": {"messages": [{"type": "text", "text": "{{ first_name | default('朋友') }}，週年慶開跑！"}]},
                                                                "sms": {"text": "週年慶開跑！"}}}],
}


class CampaignIn(Shape):
    name: Text(200, 1) = Field(examples=["週年慶 LINE 推播"])
    kind: Literal["marketing", "transactional"] = "marketing"
    audience: JsonObject | None = Field(default=None, description="segment_ids, exclude_segment_ids (and contact_ids for testers)")
    channels: list[Literal["line", "sms", "email"]] | None = Field(default=None, description="fallback order by reachability")
    channel_ids: JsonObject | None = Field(default=None, description="channel kind -> channel id; default: the workspace's")
    holdout_percent: float | None = Field(default=None, ge=0, le=90)
    scheduled_at: str | None = Field(default=None, max_length=40, description="ISO 8601; UTC unless an offset is given")
    quiet_hours: JsonObject | None = None
    frequency_cap: JsonObject | None = None
    attribution_days: int | None = Field(default=None, ge=1, le=365)
    costs: JsonObject | None = None
    variants: list[JsonObject] | None = Field(default=None, max_length=10)


class CampaignPatch(Shape):
    name: Text(200, 1) | None = None
    kind: Literal["marketing", "transactional"] | None = None
    audience: JsonObject | None = None
    channels: list[Literal["line", "sms", "email"]] | None = None
    channel_ids: JsonObject | None = None
    holdout_percent: float | None = Field(default=None, ge=0, le=90)
    scheduled_at: str | None = Field(default=None, max_length=40)
    quiet_hours: JsonObject | None = None
    frequency_cap: JsonObject | None = None
    attribution_days: int | None = Field(default=None, ge=1, le=365)
    costs: JsonObject | None = None
    variants: list[JsonObject] | None = Field(default=None, max_length=10)


class ScheduleIn(Shape):
    scheduled_at: str | None = Field(default=None, max_length=40, examples=["2026-12-01T10:00:00+08:00"])


@router.get("/campaigns")
def list_campaigns(status: Annotated[str | None, Query(max_length=16)] = None, ctx: ApiContext = READ,
                   db: Session = get_db) -> dict:
    items = service.list_campaigns(db, workspace_id=ctx.workspace_id, status=status)
    return {"items": [service.as_dict(db, c) for c in items]}


@router.post("/campaigns", status_code=201)
def create_campaign(body: Annotated[CampaignIn, Body(examples=[EXAMPLE])], ctx: ApiContext = SEND,
                    db: Session = get_db) -> dict[str, Any]:
    data = body.model_dump(exclude_none=True)
    campaign = service.create(db, workspace_id=ctx.workspace_id, data=data, actor=ctx.actor)
    return service.as_dict(db, campaign)


@router.get("/campaigns/{campaign_id}")
def get_campaign(campaign_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict[str, Any]:
    return service.as_dict(db, service.get(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id))


@router.patch("/campaigns/{campaign_id}")
def update_campaign(campaign_id: IdPath, body: CampaignPatch, ctx: ApiContext = SEND,
                    db: Session = get_db) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    campaign = service.update_draft(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id, data=data, actor=ctx.actor)
    return service.as_dict(db, campaign)


@router.delete("/campaigns/{campaign_id}", status_code=204)
def delete_campaign(campaign_id: IdPath, ctx: ApiContext = SEND, db: Session = get_db) -> None:
    service.delete(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id, actor=ctx.actor)


@router.post("/campaigns/{campaign_id}/schedule")
def schedule_campaign(campaign_id: IdPath, body: ScheduleIn | None = None, ctx: ApiContext = SEND,
                      db: Session = get_db) -> dict[str, Any]:
    """Send at `scheduled_at` (or the time already set on the draft)."""
    campaign = service.schedule(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id,
                                scheduled_at=body.scheduled_at if body else None, actor=ctx.actor)
    return service.as_dict(db, campaign)


def _action(name: str, verb):
    def route(campaign_id: IdPath, ctx: ApiContext = SEND, db: Session = get_db) -> dict[str, Any]:
        campaign = verb(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id, actor=ctx.actor)
        return service.as_dict(db, campaign)

    route.__name__ = f"{name}_campaign"
    return route


router.post("/campaigns/{campaign_id}/send", status_code=202, summary="Send now (the worker sends; follow /progress)")(
    _action("send", service.send_now))
router.post("/campaigns/{campaign_id}/pause", summary="Pause: nothing more is claimed; what is with the provider finishes")(
    _action("pause", service.pause))
router.post("/campaigns/{campaign_id}/resume", summary="Resume a paused campaign")(_action("resume", service.resume))
router.post("/campaigns/{campaign_id}/cancel", summary="Cancel: queued deliveries become cancelled")(_action("cancel", service.cancel))


@router.get("/campaigns/{campaign_id}/progress")
def campaign_progress(campaign_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict[str, Any]:
    return service.progress(service.get(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id))


@router.get("/campaigns/{campaign_id}/deliveries")
def campaign_deliveries(
    campaign_id: IdPath,
    status: Annotated[Literal["queued", "sent", "failed", "cancelled"] | None, Query()] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="the last id of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ctx: ApiContext = READ,
    db: Session = get_db,
) -> dict[str, Any]:
    rows = service.deliveries(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id, status=status, after_id=after, limit=limit)
    return {"items": [service.delivery_dict(d) for d in rows],
            "next_after": rows[-1].id if len(rows) == limit else None}
