"""Pages of the platform: sign-in and out, invitations, language and workspace switch, and settings
(members, API keys, tracking write key)."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.platform import security, workspaces
from tutti.platform.config import public_url
from tutti.platform.errors import TuttiError
from tutti.platform.models import ROLES, User
from tutti.platform.roles import check_role
from tutti.web import i18n
from tutti.web.pages import render, render_public
from tutti.web.session import (
    SESSION_COOKIE,
    PageError,
    UiContext,
    check_pre_csrf,
    clear_session_cookie,
    client_address,
    login_blocked,
    optional_user,
    page_context,
    pre_csrf_token,
    record_login_failure,
    request_locale,
    safe_next,
    set_locale_cookie,
    set_pre_csrf_cookie,
    set_session_cookie,
    ui_db,
)

router = APIRouter(include_in_schema=False)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def error_text(ui_or_locale, error: TuttiError) -> str:
    """A service error for a page: a sentence in the visitor's language, then the service's exact words."""
    locale = ui_or_locale if isinstance(ui_or_locale, str) else ui_or_locale.locale
    return f"{i18n.translate(locale, 'errors.' + error.code)} {error.message}"


# --- sign-in --------------------------------------------------------------------------------------


def _login_page(request: Request, *, locale: str, status: int = 200, error: str | None = None, email: str = "", next_path: str = "/"):
    token = pre_csrf_token(request)
    notice_key = request.query_params.get("notice")
    notice = i18n.translate(locale, f"notice.{notice_key}") if notice_key in ("signed_out",) else None
    response = render_public(request, "auth/login.html", locale=locale, status=status, error=error, email=email,
                             next=safe_next(next_path), form_token=token, notice=notice)
    set_pre_csrf_cookie(request, response, token)
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/", db: Session = ui_db):
    user = optional_user(request, db)
    if user is not None:
        return redirect(safe_next(next))
    return _login_page(request, locale=request_locale(request), next_path=next)


@router.post("/login")
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    csrf_token: str = Form(""),
    db: Session = ui_db,
):
    check_pre_csrf(request, csrf_token)
    locale = request_locale(request)
    settings = request.app.state.settings
    address = client_address(request)
    email = email.strip()[:320]
    if login_blocked(db, email=email, address=address, limit=settings.login_attempts_per_minute):
        # the password is not even checked, so guessing gains nothing while blocked
        return _login_page(request, locale=locale, status=429, error=i18n.translate(locale, "auth.too_many"), email=email, next_path=next)
    user = workspaces.authenticate_user(db, email=email, password=password) if email and password else None
    if user is None:
        record_login_failure(db, email=email, address=address)
        return _login_page(request, locale=locale, status=401, error=i18n.translate(locale, "auth.wrong_password"), email=email, next_path=next)
    memberships = workspaces.workspaces_of(db, user_id=user.id)
    token, _ = workspaces.start_session(db, user_id=user.id, workspace_id=memberships[0][0].id if memberships else None)
    response = redirect(safe_next(next))
    set_session_cookie(request, response, token)
    return response


@router.post("/logout")
def logout(request: Request, ui: UiContext = page_context):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        workspaces.end_session(ui.db, token)
    response = redirect("/login?notice=signed_out")
    clear_session_cookie(request, response)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/"):
    locale = i18n.known(code)
    if locale is None:
        raise PageError(404, "errors.not_found")
    response = redirect(safe_next(next))
    set_locale_cookie(request, response, locale)
    return response


@router.post("/workspaces/switch")
def switch_workspace(workspace_id: int = Form(...), ui: UiContext = page_context):
    if workspace_id not in {w.id for w, _ in ui.workspaces}:
        raise PageError(403, "errors.forbidden")
    ui.browser_session.workspace_id = workspace_id
    return redirect("/")


# --- invitations ----------------------------------------------------------------------------------


def _invitation_page(request: Request, db: Session, token: str, *, status: int = 200, error: str | None = None, name: str = ""):
    locale = request_locale(request)
    try:
        invitation = workspaces.find_invitation(db, token)
    except TuttiError:
        return render_public(request, "auth/invitation.html", locale=locale, status=404, invitation=None)
    workspace = workspaces.get_workspace(db, invitation.workspace_id)
    existing = db.scalar(select(User.id).where(User.email == invitation.email)) is not None
    form_token = pre_csrf_token(request)
    response = render_public(request, "auth/invitation.html", locale=locale, status=status, invitation=invitation,
                             workspace_name=workspace.name, existing_user=existing, error=error, name=name,
                             form_token=form_token, min_password=security.MIN_PASSWORD_LENGTH)
    set_pre_csrf_cookie(request, response, form_token)
    return response


@router.get("/invitations/{token}")
def invitation_page(request: Request, token: str, db: Session = ui_db):
    return _invitation_page(request, db, token)


@router.post("/invitations/{token}")
def accept_invitation(
    request: Request, token: str, name: str = Form(""), password: str = Form(""), csrf_token: str = Form(""), db: Session = ui_db
):
    check_pre_csrf(request, csrf_token)
    try:
        with db.begin_nested():
            invitation = workspaces.find_invitation(db, token)
            workspace_id = invitation.workspace_id
            user = workspaces.accept_invitation(db, token=token, password=password, name=name)
    except TuttiError as error:
        return _invitation_page(request, db, token, status=error.status, error=error_text(request_locale(request), error), name=name)
    session_token, _ = workspaces.start_session(db, user_id=user.id, workspace_id=workspace_id)
    response = redirect("/?notice=invitation_accepted")
    set_session_cookie(request, response, session_token)
    return response


# --- settings -------------------------------------------------------------------------------------


@router.get("/settings")
def settings_home(ui: UiContext = page_context):
    return redirect("/settings/members")


def _members_page(ui: UiContext, *, status: int = 200, error: str | None = None, invite_link: str | None = None, invited: str | None = None):
    ui.require("contacts.read")
    members = workspaces.list_members(ui.db, workspace_id=ui.workspace_id)
    return render(ui, "settings/members.html", status=status, members=members, roles=ROLES, error=error,
                  invite_link=invite_link, invited=invited, tab="members")


@router.get("/settings/members")
def members_page(ui: UiContext = page_context):
    return _members_page(ui)


def _check_can_grant(ui: UiContext, role: str) -> None:
    # Only an owner makes owners: an admin must not be able to raise anyone (or a key) above itself.
    if role == "owner" and ui.role != "owner":
        raise PageError(403, "errors.forbidden")


@router.post("/settings/members/invite")
def invite_member(request: Request, email: str = Form(""), role: str = Form("marketer"), ui: UiContext = page_context):
    ui.require("users.manage")
    _check_can_grant(ui, role)
    try:
        with ui.db.begin_nested():
            invitation, token = workspaces.invite(ui.db, workspace_id=ui.workspace_id, email=email, role=role, actor=ui.actor)
    except TuttiError as error:
        return _members_page(ui, status=error.status, error=error_text(ui, error))
    link = public_url(request) + f"/invitations/{token}"
    return _members_page(ui, invite_link=link, invited=invitation.email)


@router.post("/settings/members/{user_id}/role")
def change_role(user_id: int, role: str = Form(...), ui: UiContext = page_context):
    ui.require("users.manage")
    current = workspaces.role_of(ui.db, workspace_id=ui.workspace_id, user_id=user_id)
    if current is None:
        raise PageError(404, "errors.not_found")
    _check_can_grant(ui, role)
    if current == "owner":
        _check_can_grant(ui, current)
    try:
        with ui.db.begin_nested():
            check_role(role)
            if current == "owner" and role != "owner":
                owners = [u for u, r in workspaces.list_members(ui.db, workspace_id=ui.workspace_id) if r == "owner"]
                if len(owners) <= 1:
                    raise PageError(409, "members.last_owner")
            workspaces.add_member(ui.db, workspace_id=ui.workspace_id, user_id=user_id, role=role, actor=ui.actor)
    except TuttiError as error:
        return _members_page(ui, status=error.status, error=error_text(ui, error))
    return redirect("/settings/members?notice=role_changed")


@router.post("/settings/members/{user_id}/remove")
def remove_member(user_id: int, ui: UiContext = page_context):
    ui.require("users.manage")
    current = workspaces.role_of(ui.db, workspace_id=ui.workspace_id, user_id=user_id)
    if current == "owner":
        _check_can_grant(ui, current)
    try:
        with ui.db.begin_nested():
            workspaces.remove_member(ui.db, workspace_id=ui.workspace_id, user_id=user_id, actor=ui.actor)
    except TuttiError as error:
        return _members_page(ui, status=error.status, error=error_text(ui, error))
    return redirect("/settings/members?notice=member_removed")


def _keys_page(ui: UiContext, *, status: int = 200, error: str | None = None, new_key=None):
    ui.require("keys.manage")
    keys = workspaces.list_api_keys(ui.db, workspace_id=ui.workspace_id)
    return render(ui, "settings/api_keys.html", status=status, keys=keys, roles=ROLES, error=error, new_key=new_key, tab="api_keys")


@router.get("/settings/api-keys")
def api_keys_page(ui: UiContext = page_context):
    return _keys_page(ui)


@router.post("/settings/api-keys")
def create_api_key(name: str = Form(""), role: str = Form("admin"), ui: UiContext = page_context):
    ui.require("keys.manage")
    _check_can_grant(ui, role)
    try:
        with ui.db.begin_nested():
            new_key = workspaces.create_api_key(ui.db, workspace_id=ui.workspace_id, name=name, role=role, actor=ui.actor)
    except TuttiError as error:
        return _keys_page(ui, status=error.status, error=error_text(ui, error))
    return _keys_page(ui, new_key=new_key)


@router.post("/settings/api-keys/{key_id}/revoke")
def revoke_api_key(key_id: int, ui: UiContext = page_context):
    ui.require("keys.manage")
    try:
        with ui.db.begin_nested():
            workspaces.revoke_api_key(ui.db, workspace_id=ui.workspace_id, key_id=key_id, actor=ui.actor)
    except TuttiError as error:
        return _keys_page(ui, status=error.status, error=error_text(ui, error))
    return redirect("/settings/api-keys?notice=key_revoked")


@router.get("/settings/tracking")
def tracking_page(request: Request, ui: UiContext = page_context):
    ui.require("keys.manage")
    return render(ui, "settings/tracking.html", write_key=ui.workspace.write_key, server=public_url(request), tab="tracking")


@router.post("/settings/tracking/rotate")
def rotate_write_key(ui: UiContext = page_context):
    ui.require("keys.manage")
    workspaces.rotate_write_key(ui.db, workspace_id=ui.workspace_id, actor=ui.actor)
    return redirect("/settings/tracking?notice=write_key_rotated")
