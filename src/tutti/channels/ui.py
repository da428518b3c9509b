"""The channels page (/channels): connected channels, connect LINE / SMTP / SMS / webhook, test, remove."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tutti.channels import service
from tutti.platform.config import public_url
from tutti.platform.errors import TuttiError
from tutti.web import i18n
from tutti.web.pages import render
from tutti.web.session import UiContext, page_context

router = APIRouter(include_in_schema=False)

# form field -> (section, key) per kind; everything else in the form is ignored
FORM_FIELDS = {
    "line": {"channel_id": "config", "api_base_url": "config", "channel_secret": "credentials", "access_token": "credentials"},
    "email": {"host": "config", "port": "config", "security": "config", "username": "config", "from_address": "config",
              "from_name": "config", "reply_to": "config", "password": "credentials"},
    "sms": {"url": "config", "auth_header": "config", "sender": "config", "id_field": "config", "auth_value": "credentials"},
    "webhook": {"url": "config", "signing_secret": "credentials"},
}


def _page(ui: UiContext, *, status: int = 200, error: str | None = None, message: str | None = None, ok: bool = True,
          kind: str = "line", form: dict | None = None, secret: str | None = None):
    ui.require("channels.read")
    channels = [service.describe(c) for c in service.list_channels(ui.db, workspace_id=ui.workspace_id)]
    return render(ui, "channels/list.html", status=status, channels=channels, error=error, message=message, ok=ok,
                  kind=kind, form=form or {}, secret=secret, server=public_url(ui.request))


def _error(ui: UiContext, error: TuttiError) -> str:
    return f"{i18n.translate(ui.locale, 'errors.' + error.code)} {error.message}"


@router.get("/channels")
def channels_page(ui: UiContext = page_context):
    return _page(ui)


@router.post("/channels")
async def connect_channel(request: Request, ui: UiContext = page_context):
    ui.require("channels.manage")
    form = {k: str(v) for k, v in (await request.form()).items() if k != "csrf_token"}
    kind = form.get("kind", "")
    sections: dict[str, dict] = {"config": {}, "credentials": {}}
    for name, section in FORM_FIELDS.get(kind, {}).items():
        value = form.get(f"{kind}.{name}", "").strip()
        if value:
            sections[section][name] = value
    try:
        with ui.db.begin_nested():
            channel = service.connect(ui.db, workspace_id=ui.workspace_id, kind=kind, name=form.get("name", ""),
                                      config=sections["config"], credentials=sections["credentials"], actor=ui.actor)
    except TuttiError as error:
        safe = {k: v for k, v in form.items() if FORM_FIELDS.get(kind, {}).get(k.split(".", 1)[-1]) != "credentials"}
        return _page(ui, status=error.status, error=_error(ui, error), kind=kind or "line", form=safe)
    secret = service.secrets_of(channel).get("signing_secret") if kind == "webhook" and "signing_secret" not in sections["credentials"] else None
    return _page(ui, message=ui.t("channels.connected", name=channel.name), secret=secret)


@router.post("/channels/{channel_id}/test")
def test_channel(channel_id: int, ui: UiContext = page_context):
    ui.require("channels.manage")
    try:
        result = service.test_channel(ui.db, workspace_id=ui.workspace_id, channel_id=channel_id, actor=ui.actor)
    except TuttiError as error:
        return _page(ui, status=error.status, error=_error(ui, error))
    key = "channels.test_ok" if result["ok"] else "channels.test_failed"
    return _page(ui, message=f"{ui.t(key)} {result['message']}", ok=result["ok"])


@router.post("/channels/{channel_id}/status")
async def change_status(channel_id: int, request: Request, ui: UiContext = page_context):
    ui.require("channels.manage")
    status = str((await request.form()).get("status", ""))
    try:
        with ui.db.begin_nested():
            service.update_channel(ui.db, workspace_id=ui.workspace_id, channel_id=channel_id, actor=ui.actor, status=status)
    except TuttiError as error:
        return _page(ui, status=error.status, error=_error(ui, error))
    return RedirectResponse("/channels", status_code=303)


@router.post("/channels/{channel_id}/delete")
def delete_channel(channel_id: int, ui: UiContext = page_context):
    ui.require("channels.manage")
    try:
        with ui.db.begin_nested():
            service.delete_channel(ui.db, workspace_id=ui.workspace_id, channel_id=channel_id, actor=ui.actor)
    except TuttiError as error:
        return _page(ui, status=error.status, error=_error(ui, error))
    return RedirectResponse("/channels", status_code=303)
