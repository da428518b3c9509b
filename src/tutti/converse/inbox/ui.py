"""Pages of the human inbox: queues, the conversation with the 360° profile beside it, canned responses,
the metrics dashboard, and the server-sent events that keep an open inbox up to date."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from tutti.audience import profiles
from tutti.converse import realtime
from tutti.converse.conversations import service as conversations
from tutti.converse.inbox import queries
from tutti.converse.widget import service as widget
from tutti.platform import roles
from tutti.platform.errors import TuttiError
from tutti.platform.ui import error_text
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)
KEEPALIVE_SECONDS = 15
NO_IDS = Form(None)  # checked rows of the list (a form field repeated per row)
LIST_QUEUES = ("mine", "team", "unassigned", "bot", "follow_up", "resolved", "all")


def _require(ui: UiContext, permission: str) -> None:
    # conversations.* come with Converse's roles; until a deployment has them, contacts.* stand in
    if permission not in roles.PERMISSIONS:
        permission = {"conversations.read": "contacts.read", "conversations.work": "contacts.write"}[permission]
    ui.require(permission)


def _can(ui: UiContext, permission: str) -> bool:
    if permission not in roles.PERMISSIONS:
        permission = {"conversations.read": "contacts.read", "conversations.work": "contacts.write"}[permission]
    return ui.can(permission)


def _back(queue: str, conversation_id: int | None = None, **extra) -> RedirectResponse:
    query = f"/inbox?queue={queue}" + (f"&c={conversation_id}" if conversation_id else "")
    for key, value in extra.items():
        query += f"&{key}={value}"
    return RedirectResponse(query, status_code=303)


def _queue(value: str) -> str:
    return value if value in LIST_QUEUES else "all"


def _list(ui: UiContext, queue: str, q: str = "") -> list[dict]:
    page, _ = conversations.list_conversations(
        ui.db, workspace_id=ui.workspace_id, queue=queue, user_id=ui.user.id, limit=queries.PAGE)
    return queries.decorate(ui.db, conversations=page, needle=q.strip().lower())


@router.get("/inbox")
def inbox(request: Request, queue: str = "mine", c: int | None = None, q: str = "", ui: UiContext = page_context):
    _require(ui, "conversations.read")
    queue = _queue(queue)
    counts = queries.queue_counts(ui.db, workspace_id=ui.workspace_id, user_id=ui.user.id)
    items = _list(ui, queue, q)
    context = {"queue": queue, "counts": counts, "items": items, "q": q, "queues": LIST_QUEUES, "current": None}
    if c is not None:
        context.update(_conversation_context(ui, c))
    context["canned"] = [{"name": r.name, "shortcut": r.shortcut, "text": (r.text_zh if ui.locale == "zh-TW" else r.text_en)
                          or r.text_zh or r.text_en} for r in queries.canned_responses(ui.db, workspace_id=ui.workspace_id)]
    context["error"] = request.query_params.get("error")
    return render(ui, "inbox/inbox.html", can_work=_can(ui, "conversations.work"), **context)


def _conversation_context(ui: UiContext, conversation_id: int) -> dict:
    try:
        conversation = conversations.get_conversation(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id)
    except TuttiError:
        raise PageError(404, "inbox.not_found") from None
    try:
        person = profiles.profile(ui.db, workspace_id=ui.workspace_id, contact_id=conversation.contact_id)
    except TuttiError:  # erased since: the conversation stays readable without the profile
        person = None
    return {
        "current": conversation,
        "messages": queries.messages(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation.id),
        "person": person,
        "extras": queries.profile_extras(ui.db, workspace_id=ui.workspace_id, contact_id=conversation.contact_id,
                                         conversation_id=conversation.id),
        "members": queries.members(ui.db, workspace_id=ui.workspace_id),
        "teams": queries.teams(ui.db, workspace_id=ui.workspace_id),
    }


@router.get("/inbox/list")
def inbox_list(queue: str = "mine", c: int | None = None, q: str = "", ui: UiContext = page_context):
    """The list and the queue counts, re-rendered when an event says something changed."""
    _require(ui, "conversations.read")
    queue = _queue(queue)
    counts = queries.queue_counts(ui.db, workspace_id=ui.workspace_id, user_id=ui.user.id)
    return render(ui, "inbox/_list.html", queue=queue, items=_list(ui, queue, q), counts=counts, queues=LIST_QUEUES,
                  current_id=c, q=q, can_work=_can(ui, "conversations.work"))


@router.get("/inbox/c/{conversation_id}/messages")
def thread_messages(conversation_id: int, queue: str = "mine", ui: UiContext = page_context):
    _require(ui, "conversations.read")
    context = _conversation_context(ui, conversation_id)
    return render(ui, "inbox/_thread.html", can_work=_can(ui, "conversations.work"), queue=_queue(queue), **context)


@router.get("/inbox/c/{conversation_id}/suggestions")
def suggestions(conversation_id: int, ui: UiContext = page_context):
    _require(ui, "conversations.read")
    from tutti.converse.agents import copilot

    try:
        found = copilot.suggest_replies(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id)
    except TuttiError as error:
        return HTMLResponse(f'<div class="muted small">{error_text(ui, error)}</div>')
    return render(ui, "inbox/_suggestions.html", suggestions=found)


@router.get("/inbox/c/{conversation_id}/summary")
def summary(conversation_id: int, ui: UiContext = page_context):
    _require(ui, "conversations.read")
    from tutti.converse.agents import copilot

    found = copilot.summarise(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id)
    return render(ui, "inbox/_summary.html", summary=found)


@router.post("/inbox/c/{conversation_id}/reply")
def reply(conversation_id: int, text: str = Form(""), note: str = Form(""), ui: UiContext = page_context):
    """A reply (or an internal note); answers with the refreshed thread for htmx."""
    _require(ui, "conversations.work")
    # No savepoints around service calls: SQLAlchemy runs after_commit hooks when a SAVEPOINT is released,
    # so the service's real-time events would go out before the data is committed. An error after a
    # write propagates instead, and the whole request rolls back.
    error = None
    if not text.strip():
        error = ui.t("inbox.empty_reply")
    elif note:
        _service(lambda: conversations.add_note(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id,
                                                user_id=ui.user.id, text=text))
    else:
        _service(lambda: conversations.post_agent_message(ui.db, workspace_id=ui.workspace_id,
                                                          conversation_id=conversation_id, user_id=ui.user.id, text=text))
    context = _conversation_context(ui, conversation_id)
    # htmx swaps 2xx only: a refused reply still shows the thread, with the reason above it
    return render(ui, "inbox/_thread.html", reply_error=error, can_work=True, queue="mine", **context)


def _service(action):
    """Run a service call; its errors become an error page, and the request's transaction rolls back."""
    try:
        return action()
    except TuttiError as problem:
        raise PageError(problem.status, "errors." + problem.code, problem.message) from None


@router.post("/inbox/c/{conversation_id}/typing")
def typing(conversation_id: int, ui: UiContext = page_context):
    """The agent is typing: the widget shows it (the page sends this at most every few seconds)."""
    _require(ui, "conversations.work")
    queries.get_conversation(ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id)
    realtime.publish(ui.workspace_id, {"type": "typing", "conversation_id": conversation_id, "author": "agent"})
    return Response(status_code=204)


def _act(ui: UiContext, queue: str, conversation_id: int | None, action) -> RedirectResponse:
    _service(action)
    return _back(queue, conversation_id)


@router.post("/inbox/c/{conversation_id}/assign")
def assign(conversation_id: int, queue: str = Form("mine"), user_id: str = Form(""), team_id: str = Form(""),
           ui: UiContext = page_context):
    _require(ui, "conversations.work")
    user = int(user_id) if user_id.isdigit() else (ui.user.id if user_id == "me" else None)
    team = int(team_id) if team_id.isdigit() else None
    return _act(ui, _queue(queue), conversation_id, lambda: conversations.assign(
        ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id, user_id=user, team_id=team, by_user_id=ui.user.id))


@router.post("/inbox/c/{conversation_id}/resolve")
def resolve(conversation_id: int, queue: str = Form("mine"), ui: UiContext = page_context):
    _require(ui, "conversations.work")
    return _act(ui, _queue(queue), conversation_id, lambda: conversations.resolve(
        ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id, by_user_id=ui.user.id))


@router.post("/inbox/c/{conversation_id}/reopen")
def reopen(conversation_id: int, queue: str = Form("mine"), ui: UiContext = page_context):
    _require(ui, "conversations.work")
    return _act(ui, _queue(queue), conversation_id, lambda: conversations.reopen(
        ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id))


@router.post("/inbox/c/{conversation_id}/tags")
def tags(conversation_id: int, queue: str = Form("mine"), add: str = Form(""), remove: str = Form(""), ui: UiContext = page_context):
    _require(ui, "conversations.work")
    added = [t.strip() for t in add.replace(",", ",").split(",") if t.strip()]
    removed = [remove] if remove else []
    return _act(ui, _queue(queue), conversation_id, lambda: conversations.set_tags(
        ui.db, workspace_id=ui.workspace_id, conversation_id=conversation_id, add=added, remove=removed))


@router.post("/inbox/bulk")
def bulk(queue: str = Form("mine"), ids: list[str] | None = NO_IDS, action: str = Form(""), tag: str = Form(""),
         ui: UiContext = page_context):
    _require(ui, "conversations.work")
    queue = _queue(queue)
    picked = [int(v) for v in ids or () if v.isdigit()]
    if not picked:
        return _back(queue)
    kwargs = {"user_id": ui.user.id} if action == "assign_me" else {}
    result = _service(lambda: conversations.bulk(ui.db, workspace_id=ui.workspace_id, conversation_ids=picked,
                                                 action="assign" if action == "assign_me" else action,
                                                 tags=[tag.strip()] if tag.strip() else (), by_user_id=ui.user.id, **kwargs))
    return _back(queue, done=result["done"])


# --- real time ------------------------------------------------------------------------------------


@router.get("/inbox/events")
async def events(request: Request, ui: UiContext = page_context):
    """Server-sent events of this workspace: which conversation changed. The page reloads the parts."""
    _require(ui, "conversations.read")
    workspace_id = ui.workspace_id
    subscription = realtime.subscribe(workspace_id)
    await subscription.ready()

    async def stream():
        try:
            yield "retry: 2000\n: connected\n\n"
            while True:
                event = await subscription.get(KEEPALIVE_SECONDS)
                if event is None:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if event.get("type") == "typing":
                    continue  # for the customer's widget; reloading the inbox for it would be waste
                message = event.get("message") or {}
                slim = {"type": event.get("type"), "conversation_id": event.get("conversation_id"),
                        "author": message.get("author"), "kind": message.get("kind"), "message_id": message.get("id")}
                yield f"data: {json.dumps(slim)}\n\n"
        finally:
            subscription.close()

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- canned responses -----------------------------------------------------------------------------


OUTBOUND_CHANNELS = ("line", "email", "web")


def _outbound_page(ui: UiContext, *, contact_id: int | None, segment_id: int | None, channel: str = "line", text: str = "",
                   error: str | None = None, status: int = 200):
    contact = None
    segments = []
    if contact_id is not None:
        contact = _service(lambda: profiles.profile(ui.db, workspace_id=ui.workspace_id, contact_id=contact_id))
    else:
        with contextlib.suppress(ImportError):
            from tutti.reach.segments import service as segments_service

            segments = segments_service.list_segments(ui.db, workspace_id=ui.workspace_id)
    response = render(ui, "inbox/outbound.html", contact=contact, segments=segments, segment_id=segment_id,
                      channels=OUTBOUND_CHANNELS, channel=channel, text=text, error=error)
    response.status_code = status
    return response


@router.get("/inbox/outbound")
def outbound_form(contact: int | None = None, segment: int | None = None, ui: UiContext = page_context):
    """Start a conversation with a contact (from the 360° page) or each member of a segment."""
    _require(ui, "conversations.work")
    return _outbound_page(ui, contact_id=contact, segment_id=segment)


@router.post("/inbox/outbound")
def outbound_send(contact_id: str = Form(""), segment_id: str = Form(""), channel: str = Form("line"), text: str = Form(""),
                  ui: UiContext = page_context):
    _require(ui, "conversations.work")
    contact = int(contact_id) if contact_id.isdigit() else None
    segment = int(segment_id) if segment_id.isdigit() else None
    try:
        ids = conversations.start_outbound(ui.db, workspace_id=ui.workspace_id, text=text, channel=channel, user_id=ui.user.id,
                                           contact_ids=[contact] if contact else [], segment_id=segment)
    except TuttiError as problem:  # start_outbound checks everything before it writes: nothing to undo
        return _outbound_page(ui, contact_id=contact, segment_id=segment, channel=channel, text=text,
                              error=error_text(ui, problem), status=422)
    return _back("all", ids[0] if len(ids) == 1 else None)


@router.get("/inbox/canned")
def canned(ui: UiContext = page_context):
    _require(ui, "conversations.read")
    return render(ui, "inbox/canned.html", canned=queries.canned_responses(ui.db, workspace_id=ui.workspace_id),
                  can_work=_can(ui, "conversations.work"), error=None, form={})


@router.post("/inbox/canned")
def canned_save(name: str = Form(""), shortcut: str = Form(""), text_zh: str = Form(""), text_en: str = Form(""),
                ui: UiContext = page_context):
    _require(ui, "conversations.work")
    try:
        with ui.db.begin_nested():
            queries.save_canned(ui.db, workspace_id=ui.workspace_id, name=name, shortcut=shortcut, text_zh=text_zh, text_en=text_en)
    except TuttiError as problem:
        return render(ui, "inbox/canned.html", status=422, canned=queries.canned_responses(ui.db, workspace_id=ui.workspace_id),
                      can_work=True, error=error_text(ui, problem),
                      form={"name": name, "shortcut": shortcut, "text_zh": text_zh, "text_en": text_en})
    return RedirectResponse("/inbox/canned", status_code=303)


@router.post("/inbox/canned/{canned_id}/delete")
def canned_delete(canned_id: int, ui: UiContext = page_context):
    _require(ui, "conversations.work")
    with contextlib.suppress(TuttiError):  # already gone
        queries.delete_canned(ui.db, workspace_id=ui.workspace_id, canned_id=canned_id)
    return RedirectResponse("/inbox/canned", status_code=303)


# --- widget settings ------------------------------------------------------------------------------


@router.get("/inbox/widget")
def widget_settings(ui: UiContext = page_context):
    _require(ui, "conversations.read")
    config = widget.config_for(ui.db, workspace_id=ui.workspace_id)
    return render(ui, "inbox/widget.html", config=config, can_manage=ui.can("workspace.manage"), error=None,
                  base=ui.request.app.state.settings.base_url or str(ui.request.base_url).rstrip("/"))


@router.post("/inbox/widget")
def widget_settings_save(origins: str = Form(""), color: str = Form("#4f46e5"), greeting_zh: str = Form(""),
                         greeting_en: str = Form(""), ui: UiContext = page_context):
    ui.require("workspace.manage")
    try:
        with ui.db.begin_nested():
            widget.update_config(ui.db, workspace_id=ui.workspace_id, allowed_origins=origins.split(), color=color.strip(),
                                 greeting={"zh-TW": greeting_zh.strip() or widget.DEFAULT_GREETING["zh-TW"],
                                           "en": greeting_en.strip() or widget.DEFAULT_GREETING["en"]})
    except TuttiError as problem:
        config = widget.config_for(ui.db, workspace_id=ui.workspace_id)
        return render(ui, "inbox/widget.html", status=422, config=config, can_manage=True, error=error_text(ui, problem),
                      base=ui.request.app.state.settings.base_url or str(ui.request.base_url).rstrip("/"))
    return RedirectResponse("/inbox/widget", status_code=303)


# --- metrics --------------------------------------------------------------------------------------


@router.get("/inbox/metrics")
def metrics_page(days: int = 30, ui: UiContext = page_context):
    _require(ui, "conversations.read")
    days = days if days in (7, 30, 90) else 30
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    figures = queries.metrics(ui.db, workspace_id=ui.workspace_id, since=since, until=until)
    return render(ui, "inbox/metrics.html", figures=figures, days=days)

