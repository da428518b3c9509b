"""REST API of segments under /api/v1 (Bearer API key). Reading needs `segments.read` (every role);
creating, changing, refreshing and exporting need `segments.manage` (owner, admin, marketer).
Rule errors name the place in the tree: `rules.children[2].days`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.db import get_database
from tutti.platform.schemas import ERROR_RESPONSES, Body, IdPath, JsonObject, Text
from tutti.reach.segments import service, words
from tutti.reach.segments.models import Segment

router = APIRouter(tags=["segments"], responses=ERROR_RESPONSES)
READ = allowed("segments.read")
MANAGE = allowed("segments.manage")
RULES_EXAMPLE = {"version": 1, "root": {"kind": "group", "op": "and", "children": [
    {"kind": "tag", "tag": "VIP"}, {"kind": "identity", "identity": "line_uid"},
    {"kind": "event", "name": "Product Added", "op": "at_least", "times": 2, "days": 30}]}}


class SegmentIn(Body):
    name: Text(200, 1) = Field(examples=["VIP on LINE"])
    description: Text(1000) = ""
    rules: JsonObject = Field(description="the rule tree (see docs/segments.md)", examples=[RULES_EXAMPLE])
    refresh_minutes: Annotated[int, Field(ge=0, le=44640)] | None = Field(default=None, description="0: on demand only; default 60")


class SegmentPatch(Body):
    name: Text(200, 1) | None = None
    description: Text(1000) | None = None
    rules: JsonObject | None = None
    refresh_minutes: Annotated[int, Field(ge=0, le=44640)] | None = None


class SegmentOut(BaseModel):
    id: int
    name: str
    description: str
    rules: dict
    refresh_minutes: int
    size: int | None = Field(description="members at the last refresh")
    refreshed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SegmentList(BaseModel):
    items: list[SegmentOut]


class CountIn(Body):
    rules: JsonObject = Field(examples=[RULES_EXAMPLE])


class CountOut(BaseModel):
    count: int


class MemberOut(BaseModel):
    contact_id: int
    name: str | None
    email: str | None
    phone: str | None
    line_uid: str | None
    external_id: str | None
    city: str | None


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null at the end")


class RefreshOut(BaseModel):
    size: int
    entered: int
    left: int
    refreshed_at: datetime | None


class ParseIn(Body):
    text: Text(2000, 1) = Field(examples=["過去30天買過兩次、有LINE的VIP"])
    locale: Literal["zh-TW", "en"] = "zh-TW"


class ParseOut(BaseModel):
    rules: dict[str, Any] | None = Field(description="the rule tree understood; review it before saving")
    understood: list[str]
    not_understood: list[str] = Field(description="parts of the text that were not turned into rules")
    source: str = Field(description="'llm' or 'parser'")
    note: str | None = None
    count: int | None = Field(default=None, description="members the rules select now")


def _out(segment: Segment) -> dict:
    return {c: getattr(segment, c) for c in SegmentOut.model_fields}


@router.get("/segments", response_model=SegmentList)
def list_segments(ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """Every segment of the workspace, by name. Permission: segments.read."""
    return {"items": [_out(x) for x in service.list_segments(db, workspace_id=ctx.workspace_id)]}


@router.post("/segments", response_model=SegmentOut, status_code=201)
def create_segment(body: SegmentIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Save a segment. Permission: segments.manage."""
    segment = service.create_segment(db, workspace_id=ctx.workspace_id, name=body.name, description=body.description,
                                     rules=body.rules, refresh_minutes=body.refresh_minutes, actor=ctx.actor)
    return _out(segment)


@router.post("/segments/count", response_model=CountOut)
def count(body: CountIn, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """How many contacts the rules select now (the builder's live count). Permission: segments.read."""
    return {"count": service.count(db, workspace_id=ctx.workspace_id, rules=body.rules)}


@router.post("/segments/parse", response_model=ParseOut)
def parse(body: ParseIn, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """Words → rules (LLM when configured, else the built-in parser), with what was and was not
    understood. Nothing is saved. Permission: segments.read."""
    result = words.parse_words(db, workspace_id=ctx.workspace_id, text=body.text, locale=body.locale)
    out = {"rules": result.rules, "understood": result.understood, "not_understood": result.not_understood,
           "source": result.source, "note": result.note}
    if result.rules:
        out["count"] = service.count(db, workspace_id=ctx.workspace_id, rules=result.rules)
    return out


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(segment_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """One segment. Permission: segments.read."""
    return _out(service.get_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut)
def update_segment(segment_id: IdPath, body: SegmentPatch, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Change name, description, rules or refresh interval. Permission: segments.manage."""
    segment = service.update_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id, actor=ctx.actor, name=body.name,
                                     description=body.description, rules=body.rules, refresh_minutes=body.refresh_minutes)
    return _out(segment)


@router.delete("/segments/{segment_id}", status_code=204)
def delete_segment(segment_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> Response:
    """Delete a segment (refused while another segment refers to it). Permission: segments.manage."""
    service.delete_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id, actor=ctx.actor)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/members", response_model=MemberPage)
def members(segment_id: IdPath, after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50,
            ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """Members by the rules as they stand now, by contact id (keyset pages). Permission: segments.read."""
    segment = service.get_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id)
    rows = service.members_page(db, workspace_id=ctx.workspace_id, rules=segment.rules, after=after, limit=limit)
    return {"items": rows, "next_after": rows[-1]["contact_id"] if len(rows) == limit else None}


@router.post("/segments/{segment_id}/refresh", response_model=RefreshOut)
def refresh(segment_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Recompute the members now; records who entered and left. Permission: segments.manage."""
    size, entered, left = service.refresh(db, workspace_id=ctx.workspace_id, segment_id=segment_id, trigger="api")
    segment = service.get_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id)
    return {"size": size, "entered": entered, "left": left, "refreshed_at": segment.refreshed_at}


@router.get("/segments/{segment_id}/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "the members, streamed"}})
def export(segment_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> StreamingResponse:
    """The members as CSV (refreshed first, then streamed). Permission: segments.manage."""
    segment = service.get_segment(db, workspace_id=ctx.workspace_id, segment_id=segment_id)
    service.refresh(db, workspace_id=ctx.workspace_id, segment_id=segment_id, trigger="export")
    chunks = service.export_csv(get_database(), workspace_id=ctx.workspace_id, segment_id=segment.id)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="segment-{segment.id}.csv"'})
