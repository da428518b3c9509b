"""Pages of templates: the list, the editor with a live preview (LINE in a phone frame, e-mail in an
iframe, SMS with its part count), preview as a chosen contact and test sends. Permission: templates.manage."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tutti.audience import contacts
from tutti.platform.errors import InvalidInput, TuttiError
from tutti.reach.templates import examples, service
from tutti.reach.templates.models import TEMPLATE_CHANNELS
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)


def _content_from_form(channel: str, form) -> dict:
    if channel == "line":
        source = str(form.get("messages") or "").strip()
        try:
            messages = json.loads(source) if source else []
        except json.JSONDecodeError as error:
            raise InvalidInput(f"messages: not JSON (line {error.lineno}, column {error.colno}: {error.msg})", field="messages") from None
        if isinstance(messages, dict) and "messages" in messages:
            messages = messages["messages"]
        if isinstance(messages, dict):
            messages = [messages]
        return {"messages": messages}
    if channel == "email":
        return {k: str(form.get(k) or "") for k in ("subject", "html", "text") if str(form.get(k) or "").strip()}
    return {"text": str(form.get("text") or "")}


def _editor_values(channel: str, content: dict) -> dict:
    if channel == "line":
        return {"messages": json.dumps(content.get("messages") or [], ensure_ascii=False, indent=2)}
    return {k: content.get(k, "") for k in ("subject", "html", "text")}


def _contact_id(form) -> int | None:
    value = str(form.get("contact_id") or "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 2**63 else None


def _problems(error: TuttiError) -> list[dict]:
    if isinstance(error.details, list) and error.details:
        return [d for d in error.details if isinstance(d, dict)]
    return [{"field": error.field or "content", "message": error.message}]


@router.get("/templates")
def template_list(ui: UiContext = page_context, channel: str = ""):
    ui.require("templates.manage")
    chosen = channel if channel in TEMPLATE_CHANNELS else None
    items = service.list_templates(ui.db, workspace_id=ui.workspace_id, channel=chosen)
    return render(ui, "templates/list.html", items=items, channel=chosen, channels=TEMPLATE_CHANNELS,
                  info={t.id: service.describe(t.channel, t.content) for t in items})


@router.post("/templates/preview")
async def preview(request: Request, ui: UiContext = page_context):
    """The live preview (htmx): the rendered message, or the problems, each placed beside its field."""
    ui.require("templates.manage")
    form = await request.form()
    channel = str(form.get("channel") or "line")
    if channel not in TEMPLATE_CHANNELS:
        channel = "line"
    contact_id = _contact_id(form)
    try:
        content = _content_from_form(channel, form)
        result = service.preview(ui.db, workspace_id=ui.workspace_id, channel=channel, content=content, contact_id=contact_id)
    except TuttiError as error:
        return render(ui, "templates/_preview.html", channel=channel, result=None, problems=_problems(error))
    return render(ui, "templates/_preview.html", channel=channel, result=result, problems=[])


@router.get("/templates/contact-options")
def contact_options(ui: UiContext = page_context, q: str = ""):
    ui.require("templates.manage")
    page = contacts.search(ui.db, workspace_id=ui.workspace_id, q=q.strip() or None, limit=20, region=ui.workspace.default_region)
    return render(ui, "templates/_contact_options.html", people=page.contacts)


def _editor(ui: UiContext, *, template=None, channel: str, name: str, content: dict):
    return render(ui, "templates/editor.html", tpl=template, channel=channel, name=name,
                  values=_editor_values(channel, content), problems=[], examples=examples.LINE_EXAMPLES,
                  variables=service.VARIABLES, contact=None)


@router.get("/templates/new")
def new_template(ui: UiContext = page_context, channel: str = "line"):
    ui.require("templates.manage")
    if channel not in TEMPLATE_CHANNELS:
        channel = "line"
    return _editor(ui, channel=channel, name="", content=examples.STARTERS[channel])


@router.post("/templates")
async def create_template(request: Request, ui: UiContext = page_context):
    ui.require("templates.manage")
    form = await request.form()
    channel = str(form.get("channel") or "line")
    if channel not in TEMPLATE_CHANNELS:
        channel = "line"
    name = str(form.get("name") or "")
    try:
        content = _content_from_form(channel, form)
        template = service.create_template(ui.db, workspace_id=ui.workspace_id, name=name, channel=channel, content=content,
                                           actor=ui.actor)
    except TuttiError as error:
        return _typed_editor(ui, None, channel, name, form, error)
    return RedirectResponse(f"/templates/{template.id}?saved=1", status_code=303)


def _typed_editor(ui, template, channel, name, form, error):
    """The editor again with what was typed, as typed, and the problems beside their fields."""
    values = {key: str(form.get(key) or "") for key in ("messages", "subject", "html", "text")}
    return render(ui, "templates/editor.html", status=422, tpl=template, channel=channel, name=name, values=values,
                  problems=_problems(error), examples=examples.LINE_EXAMPLES, variables=service.VARIABLES, contact=None)


def _template_or_404(ui: UiContext, template_id: int):
    try:
        return service.get_template(ui.db, workspace_id=ui.workspace_id, template_id=template_id)
    except TuttiError:
        raise PageError(404, "templates.not_found") from None


@router.get("/templates/{template_id}")
def edit_template(template_id: int, ui: UiContext = page_context):
    ui.require("templates.manage")
    template = _template_or_404(ui, template_id)
    return _editor(ui, template=template, channel=template.channel, name=template.name, content=template.content)


@router.post("/templates/{template_id}")
async def update_template(template_id: int, request: Request, ui: UiContext = page_context):
    ui.require("templates.manage")
    template = _template_or_404(ui, template_id)
    form = await request.form()
    name = str(form.get("name") or "")
    try:
        content = _content_from_form(template.channel, form)
        service.update_template(ui.db, workspace_id=ui.workspace_id, template_id=template_id, actor=ui.actor, name=name,
                                content=content)
    except TuttiError as error:
        return _typed_editor(ui, template, template.channel, name, form, error)
    return RedirectResponse(f"/templates/{template_id}?saved=1", status_code=303)


@router.post("/templates/{template_id}/delete")
def delete_template(template_id: int, ui: UiContext = page_context):
    ui.require("templates.manage")
    _template_or_404(ui, template_id)
    service.delete_template(ui.db, workspace_id=ui.workspace_id, template_id=template_id, actor=ui.actor)
    return RedirectResponse("/templates", status_code=303)


@router.post("/templates/{template_id}/test-send")
async def test_send(template_id: int, request: Request, ui: UiContext = page_context):
    ui.require("templates.manage")
    template = _template_or_404(ui, template_id)
    form = await request.form()
    try:
        outcome = service.test_send(ui.db, workspace_id=ui.workspace_id, channel=template.channel, content=template.content,
                                    to=str(form.get("to") or ""), actor=ui.actor, contact_id=_contact_id(form))
    except TuttiError as error:
        outcome = {"status": "failed", "reason": error.message}
    return render(ui, "templates/_test_result.html", outcome=outcome)
