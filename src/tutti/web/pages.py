"""Rendering pages: one Jinja2 environment with the translation function and the filters every page uses.

A part's `ui.py` renders with `render(ui, "area/page.html", ...)`, where `ui` is the UiContext from
`tutti.web.session.page_context`; templates extend "app.html" (see the block list at its top).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

import tutti
from tutti.web import i18n

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))
env = templates.env
env.trim_blocks = True
env.lstrip_blocks = True


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Taipei")
    except (ZoneInfoNotFoundError, ValueError):  # an unknown zone name must not break a page
        return ZoneInfo("UTC")


def localtime(value: datetime | None, zone: str | None = None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(_zone(zone)).strftime(pattern)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def change(current: float, previous: float) -> float | None:
    """Relative change in percent, or None when there is nothing to compare with."""
    if not previous:
        return None
    return (current - previous) / previous * 100


def as_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, indent=2)


env.filters.update(localtime=localtime, number=number, as_json=as_json)
env.globals.update(change=change, version=tutti.__version__, LOCALES=i18n.LOCALES, LOCALE_NAMES=i18n.LOCALE_NAMES)


def _base_context(request: Request, locale: str) -> dict:
    return {
        "request": request,
        "locale": locale,
        "t": lambda key, **kwargs: i18n.translate(locale, key, **kwargs),
        "path": request.url.path,
        "current_url": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }


# Short confirmations a redirect can ask for with ?notice=<key>; only these keys, never free text.
NOTICES = frozenset({
    "signed_out", "invitation_accepted", "role_changed", "member_removed", "key_revoked", "write_key_rotated",
    "tag_created", "tag_deleted", "attribute_declared", "erased",
})


def render(ui, template: str, *, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    """A signed-in page: `ui` (UiContext) gives the user, workspace, role, CSRF token and language."""
    values = _base_context(ui.request, ui.locale)
    zone = ui.workspace.timezone if ui.workspace else None
    values.update(ui=ui, tz=zone, csrf_token=ui.csrf_token, can=ui.can)
    notice = ui.request.query_params.get("notice")
    if notice in NOTICES:
        values["notice"] = i18n.translate(ui.locale, f"notice.{notice}")
    values.update(context)
    return templates.TemplateResponse(ui.request, template, values, status_code=status, headers=headers)


def render_public(request: Request, template: str, *, locale: str, status: int = 200, **context) -> HTMLResponse:
    """A page shown before sign-in (login, invitation)."""
    values = _base_context(request, locale)
    values.update(ui=None, tz=None, can=lambda permission: False)
    values.update(context)
    return templates.TemplateResponse(request, template, values, status_code=status)


def render_error(request: Request, status: int, key: str, detail: str | None = None) -> HTMLResponse:
    from tutti.web.session import request_locale

    locale = request_locale(request)
    if request.headers.get("hx-request"):
        text = i18n.translate(locale, key)
        return HTMLResponse(f'<div class="alert alert-error" role="alert">{Markup.escape(text)}</div>', status_code=status)
    return render_public(request, "error.html", locale=locale, status=status, status_code=status, message_key=key, detail=detail)
