"""Pages of segments: the list (size and freshness) and the builder (rule tree editor with a live count,
the words box, a sample of members, refresh and export). The builder talks JSON to the small endpoints
below (session cookie + X-CSRF-Token), the same services as the REST API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from sqlalchemy import select

from tutti.audience.models import Product, Tag
from tutti.platform.db import get_database, utcnow
from tutti.platform.errors import TuttiError
from tutti.reach.segments import compiler, service, words
from tutti.reach.segments import schema as s
from tutti.web.pages import render
from tutti.web.session import UiContext, page_context

router = APIRouter(include_in_schema=False)
SAMPLE = 20
EMPTY_RULES = {"version": 1, "root": {"kind": "group", "op": "and", "children": []}}
EVENT_NAMES = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Application Opened"]


def _error(error: TuttiError) -> JSONResponse:
    return JSONResponse(error.as_dict(), status_code=error.status)


def _vocabulary(ui: UiContext) -> dict:
    wid = ui.workspace_id
    return {
        "tags": list(ui.db.scalars(select(Tag.name).where(Tag.workspace_id == wid).order_by(Tag.name))),
        "categories": list(ui.db.scalars(select(Product.category).distinct().where(Product.workspace_id == wid, Product.category.is_not(None))
                                         .order_by(Product.category).limit(200))),
        "attributes": {**s.BUILTIN_FIELDS, **compiler.load_attribute_types(ui.db, workspace_id=wid)},
        "operators": s.OPERATORS_BY_TYPE,
        "events": EVENT_NAMES,
        "segments": [{"id": x.id, "name": x.name} for x in service.list_segments(ui.db, workspace_id=wid)],
    }


@router.get("/segments")
def segment_list(ui: UiContext = page_context):
    ui.require("segments.read")
    items = service.list_segments(ui.db, workspace_id=ui.workspace_id)
    now = utcnow()
    return render(ui, "segments/list.html", items=items, fresh={x.id: service.refresh_status(x, now=now) for x in items})


def _builder(ui: UiContext, segment=None):
    rules = segment.rules if segment else EMPTY_RULES
    return render(ui, "segments/builder.html", segment=segment, rules=rules, vocab=_vocabulary(ui), max_depth=s.MAX_DEPTH,
                  freshness=service.refresh_status(segment) if segment else None, can_manage=ui.can("segments.manage"))


@router.get("/segments/new")
def new_segment(ui: UiContext = page_context):
    ui.require("segments.manage")
    return _builder(ui)


@router.get("/segments/{segment_id}")
def edit_segment(segment_id: int, ui: UiContext = page_context):
    ui.require("segments.read")
    return _builder(ui, service.get_segment(ui.db, workspace_id=ui.workspace_id, segment_id=segment_id))


@router.post("/segments/live/count")
async def live_count(request: Request, ui: UiContext = page_context):
    ui.require("segments.read")
    body = await request.json()
    try:
        rules = service.check_rules(ui.db, workspace_id=ui.workspace_id, rules=body.get("rules"))
        total = service.count(ui.db, workspace_id=ui.workspace_id, rules=rules)
        sample = service.members_page(ui.db, workspace_id=ui.workspace_id, rules=rules, limit=SAMPLE) if body.get("sample") else None
    except TuttiError as error:
        return _error(error)
    return {"count": total, "sample": sample}


@router.post("/segments/live/parse")
async def live_parse(request: Request, ui: UiContext = page_context):
    ui.require("segments.read")
    body = await request.json()
    text = str(body.get("text") or "")[:2000]
    if not text.strip():
        return {"rules": None, "understood": [], "not_understood": [], "source": "parser", "note": None}
    result = words.parse_words(ui.db, workspace_id=ui.workspace_id, text=text, locale=ui.locale)
    return {"rules": result.rules, "understood": result.understood, "not_understood": result.not_understood,
            "source": result.source, "note": result.note}


@router.post("/segments/live/save")
async def save(request: Request, ui: UiContext = page_context):
    ui.require("segments.manage")
    body = await request.json()
    try:
        if body.get("id"):
            segment = service.update_segment(ui.db, workspace_id=ui.workspace_id, segment_id=int(body["id"]), actor=ui.actor,
                                             name=body.get("name"), rules=body.get("rules"), description=body.get("description"))
        else:
            segment = service.create_segment(ui.db, workspace_id=ui.workspace_id, name=body.get("name") or "", rules=body.get("rules"),
                                             description=body.get("description") or "", actor=ui.actor)
        size, _, _ = service.refresh(ui.db, workspace_id=ui.workspace_id, segment_id=segment.id, trigger="manual")
    except TuttiError as error:
        ui.db.rollback()
        return _error(error)
    return {"id": segment.id, "size": size, "url": f"/segments/{segment.id}"}


@router.post("/segments/{segment_id}/refresh")
def refresh(segment_id: int, ui: UiContext = page_context):
    ui.require("segments.manage")
    service.refresh(ui.db, workspace_id=ui.workspace_id, segment_id=segment_id, trigger="manual")
    return RedirectResponse(f"/segments/{segment_id}", status_code=303)


@router.post("/segments/{segment_id}/delete")
def delete(segment_id: int, ui: UiContext = page_context):
    ui.require("segments.manage")
    service.delete_segment(ui.db, workspace_id=ui.workspace_id, segment_id=segment_id, actor=ui.actor)
    return RedirectResponse("/segments", status_code=303)


@router.get("/segments/{segment_id}/export.csv")
def export(segment_id: int, ui: UiContext = page_context):
    ui.require("segments.manage")
    segment = service.get_segment(ui.db, workspace_id=ui.workspace_id, segment_id=segment_id)
    if segment.refreshed_at is None:  # materialise first; the refresh commits when this answer is sent
        service.refresh(ui.db, workspace_id=ui.workspace_id, segment_id=segment_id, trigger="export")
        return RedirectResponse(f"/segments/{segment_id}/export.csv", status_code=303)
    chunks = service.export_csv(get_database(), workspace_id=ui.workspace_id, segment_id=segment_id)
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="segment-{segment_id}.csv"'})
