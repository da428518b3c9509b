"""Pages of Audience: the workspace home, the contact list with live search, the 360° profile with its
privacy actions, and the attribute and tag settings."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from tutti.audience import attributes as attrs
from tutti.audience import contacts, profiles, stats, tags
from tutti.audience.models import ATTRIBUTE_TYPES, CHANNELS, IDENTITY_KINDS, Tag
from tutti.platform.errors import TuttiError
from tutti.platform.ui import error_text
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)

TIMELINE_PAGE = 30
CONTACTS_PAGE = 50
NEWEST_ON_HOME = 8
CONSENT_FILTERS = [(channel, status) for channel in CHANNELS for status in ("subscribed", "unsubscribed", "blocked", "bounced")
                   if status in {"line": ("subscribed", "blocked"), "email": ("subscribed", "unsubscribed", "bounced"),
                                 "sms": ("subscribed", "unsubscribed", "bounced")}[channel]]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# --- home -----------------------------------------------------------------------------------------


@router.get("/")
def home(ui: UiContext = page_context):
    if ui.workspace is None:
        return render(ui, "audience/no_workspace.html")
    ui.require("contacts.read")
    overview = stats.overview(ui.db, workspace_id=ui.workspace_id)
    newest = contacts.search(ui.db, workspace_id=ui.workspace_id, limit=NEWEST_ON_HOME)
    return render(ui, "audience/home.html", overview=overview, newest=profiles.contact_row(ui.db, newest.contacts),
                  currency=ui.workspace.currency, channels=CHANNELS)


# --- contacts -------------------------------------------------------------------------------------


@router.get("/contacts")
def contact_list(
    request: Request,
    q: str = "",
    tag: str = "",
    attr_key: str = "",
    attr_value: str = "",
    identity_kind: str = "",
    identity_value: str = "",
    consent: str = "",
    cursor: int | None = None,
    ui: UiContext = page_context,
):
    ui.require("contacts.read")
    filters = {"q": q.strip(), "tag": tag, "attr_key": attr_key, "attr_value": attr_value, "identity_kind": identity_kind,
               "identity_value": identity_value.strip(), "consent": consent}
    error, page = None, None
    try:
        consent_filter = tuple(consent.split(":", 1)) if ":" in consent else None
        page = contacts.search(
            ui.db, workspace_id=ui.workspace_id, q=filters["q"] or None, tag=tag or None,
            attribute={attr_key: attr_value} if attr_key and attr_value != "" else None,
            identity_kind=identity_kind or None if identity_value.strip() else None,
            identity_value=identity_value.strip() or None, consent=consent_filter, cursor=cursor, limit=CONTACTS_PAGE,
            region=ui.workspace.default_region,
        )
    except TuttiError as problem:
        error = error_text(ui, problem)
    rows = profiles.contact_row(ui.db, page.contacts) if page else []
    next_query = None
    if page and page.next_cursor:
        next_query = "&".join(f"{k}={_quote(v)}" for k, v in filters.items() if v) + f"&cursor={page.next_cursor}"
    values = {"rows": rows, "next_query": next_query.lstrip("&") if next_query else None, "filters": filters, "error": error,
              "filtered": any(filters.values())}
    target = request.headers.get("hx-target")
    if _is_htmx(request) and target == "contact-results":
        return render(ui, "audience/_contact_results.html", **values)
    if _is_htmx(request) and target and target.startswith("more-"):
        return render(ui, "audience/_contact_rows.html", **values)
    tag_names = list(ui.db.scalars(select(Tag.name).where(Tag.workspace_id == ui.workspace_id).order_by(Tag.name)))
    definitions = sorted(attrs.definitions(ui.db, workspace_id=ui.workspace_id))
    return render(ui, "audience/contacts.html", status=422 if error else 200, tag_names=tag_names,
                  attribute_keys=list(attrs.PROFILE_FIELDS) + definitions, identity_kinds=IDENTITY_KINDS,
                  consent_filters=CONSENT_FILTERS, **values)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _contact_or_404(ui: UiContext, contact_id: int) -> dict:
    try:
        return profiles.profile(ui.db, workspace_id=ui.workspace_id, contact_id=contact_id)
    except TuttiError as error:
        raise PageError(404, "errors.contact_not_found", error.message) from None


@router.get("/contacts/{contact_id}")
def contact_page(contact_id: int, ui: UiContext = page_context):
    ui.require("contacts.read")
    person = _contact_or_404(ui, contact_id)
    if person["id"] != contact_id:
        return _redirect(f"/contacts/{person['id']}")  # a merged contact: show the one it became
    page = profiles.timeline(ui.db, workspace_id=ui.workspace_id, contact_id=contact_id, limit=TIMELINE_PAGE)
    return render(ui, "audience/contact.html", person=person, items=page.items, next_before=page.next_before,
                  currency=ui.workspace.currency, channels=CHANNELS)


@router.get("/contacts/{contact_id}/timeline")
def contact_timeline(contact_id: int, before: str = "", ui: UiContext = page_context):
    ui.require("contacts.read")
    try:
        cutoff = datetime.fromisoformat(before) if before else None
    except ValueError:
        raise PageError(422, "errors.invalid", f"before: '{before}' is not a time") from None
    person = _contact_or_404(ui, contact_id)
    page = profiles.timeline(ui.db, workspace_id=ui.workspace_id, contact_id=person["id"], limit=TIMELINE_PAGE, before=cutoff)
    return render(ui, "audience/_timeline.html", person=person, items=page.items, next_before=page.next_before,
                  currency=ui.workspace.currency)


def _privacy():
    try:
        from tutti.audience import privacy
    except ImportError:
        raise PageError(503, "errors.privacy_unavailable") from None
    return privacy


@router.post("/contacts/{contact_id}/export")
def export_contact(contact_id: int, ui: UiContext = page_context):
    ui.require("privacy.manage")
    privacy = _privacy()
    _contact_or_404(ui, contact_id)
    data = privacy.export_contact(ui.db, workspace_id=ui.workspace_id, contact_id=contact_id, actor=ui.actor)
    body = json.dumps(data, ensure_ascii=False, default=str, indent=2)
    return Response(body, media_type="application/json; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}.json"', "Cache-Control": "no-store"})


@router.post("/contacts/{contact_id}/erase")
def erase_contact(contact_id: int, ui: UiContext = page_context):
    ui.require("privacy.manage")
    privacy = _privacy()
    _contact_or_404(ui, contact_id)
    privacy.erase_contact(ui.db, workspace_id=ui.workspace_id, contact_id=contact_id, actor=ui.actor)
    return _redirect("/contacts?notice=erased")


# --- settings: attributes and tags ----------------------------------------------------------------


def _attributes_page(ui: UiContext, *, status: int = 200, error: str | None = None):
    ui.require("contacts.read")
    definitions = sorted(attrs.definitions(ui.db, workspace_id=ui.workspace_id).values(), key=lambda d: d.key)
    return render(ui, "settings/attributes.html", status=status, definitions=definitions, builtin=attrs.PROFILE_FIELDS,
                  types=ATTRIBUTE_TYPES, error=error, tab="attributes")


@router.get("/settings/attributes")
def attributes_page(ui: UiContext = page_context):
    return _attributes_page(ui)


@router.post("/settings/attributes")
def declare_attribute(key: str = Form(""), type: str = Form("string"), label: str = Form(""), ui: UiContext = page_context):
    ui.require("attributes.manage")
    try:
        with ui.db.begin_nested():
            attrs.declare(ui.db, workspace_id=ui.workspace_id, key=key.strip(), type_=type, label=label.strip(), actor=ui.actor)
    except TuttiError as error:
        return _attributes_page(ui, status=error.status, error=error_text(ui, error))
    return _redirect("/settings/attributes?notice=attribute_declared")


def _tags_page(ui: UiContext, *, status: int = 200, error: str | None = None):
    ui.require("contacts.read")
    return render(ui, "settings/tags.html", status=status, tags=tags.list_tags(ui.db, workspace_id=ui.workspace_id), error=error, tab="tags")


@router.get("/settings/tags")
def tags_page(ui: UiContext = page_context):
    return _tags_page(ui)


@router.post("/settings/tags")
def create_tag(name: str = Form(""), description: str = Form(""), ui: UiContext = page_context):
    ui.require("tags.manage")
    try:
        with ui.db.begin_nested():
            tags.create_tag(ui.db, workspace_id=ui.workspace_id, name=name, description=description.strip()[:500], actor=ui.actor)
    except TuttiError as error:
        return _tags_page(ui, status=error.status, error=error_text(ui, error))
    return _redirect("/settings/tags?notice=tag_created")


@router.post("/settings/tags/delete")
def delete_tag(name: str = Form(""), ui: UiContext = page_context):
    ui.require("tags.manage")
    try:
        with ui.db.begin_nested():
            tags.delete_tag(ui.db, workspace_id=ui.workspace_id, name=name, actor=ui.actor)
    except TuttiError as error:
        return _tags_page(ui, status=error.status, error=error_text(ui, error))
    return _redirect("/settings/tags?notice=tag_deleted")
