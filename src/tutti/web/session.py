"""Signed-in browsers: the session cookie, CSRF tokens, the current user and workspace, and the login
rate limit.

The cookie holds a random token whose SHA-256 is the `browser_session` row's key; the row remembers the
workspace in use and the session's CSRF token. Every UI request that changes something (POST, PUT,
PATCH, DELETE) must carry that token, as the form field `csrf_token` or the `X-CSRF-Token` header
(htmx sends it from `hx-headers` on <body>); otherwise it is refused with 403 before anything runs.
Forms shown before sign-in (login, invitation) use a double-submit token: a random cookie that the form
must repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tutti.platform import roles, security, workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import get_database, utcnow
from tutti.platform.models import BrowserSession, LoginFailure, User, Workspace
from tutti.web import i18n

SESSION_COOKIE = "tutti_session"
PRE_CSRF_COOKIE = "tutti_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_WINDOW = timedelta(minutes=1)


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page, then back to where it was going."""

    def __init__(self, next_path: str = "/"):
        self.next_path = next_path


class PageError(Exception):
    """An error shown as a page in the visitor's language: `key` is a translation key."""

    def __init__(self, status: int, key: str, detail: str | None = None):
        self.status = status
        self.key = key
        self.detail = detail


def _ui_db(request: Request) -> Iterator[Session]:
    # Page views only read: on SQLite a read transaction does not take the write lock.
    database = get_database()
    opener = database.read_session if request.method in SAFE_METHODS else database.session
    with opener() as db:
        yield db


ui_db = Depends(_ui_db, scope="function")


def settings_of(request: Request):
    return request.app.state.settings


def request_locale(request: Request, user: User | None = None) -> str:
    return i18n.negotiate(
        cookie=request.cookies.get(i18n.LOCALE_COOKIE),
        user_locale=user.locale if user else None,
        accept_language=request.headers.get("accept-language"),
        default=settings_of(request).default_locale,
    )


@dataclass
class UiContext:
    """Who is looking at the page, in which workspace and language; what they may do."""

    request: Request
    db: Session
    user: User
    browser_session: BrowserSession
    workspace: Workspace | None
    role: str | None
    locale: str
    workspaces: list[tuple[Workspace, str]] = field(default_factory=list)

    @property
    def csrf_token(self) -> str:
        return self.browser_session.csrf_token

    @property
    def workspace_id(self) -> int:
        if self.workspace is None:
            raise PageError(404, "errors.no_workspace")
        return self.workspace.id

    @property
    def actor(self) -> Actor:
        return Actor(kind="user", id=self.user.id, label=self.user.email, role=self.role or "analyst")

    def t(self, key: str, **kwargs) -> str:
        return i18n.translate(self.locale, key, **kwargs)

    def can(self, permission: str) -> bool:
        return self.role is not None and roles.can(self.role, permission)

    def require(self, permission: str) -> None:
        if self.workspace is None:
            raise PageError(404, "errors.no_workspace")
        if not self.can(permission):
            raise PageError(403, "errors.forbidden")


async def submitted_csrf(request: Request) -> str:
    token = request.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached by Starlette: the route still reads the same form
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def _current(request: Request, db: Session) -> tuple[str, BrowserSession, User] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    browser_session = workspaces.find_session(db, token)
    if browser_session is None:
        return None
    user = db.get(User, browser_session.user_id)
    if user is None or user.disabled_at is not None:
        return None
    return token, browser_session, user


def ui_context(request: Request, db: Session = ui_db, csrf: str = Depends(submitted_csrf)) -> UiContext:
    """The dependency of every signed-in page; checks CSRF on writes before the route runs.

    A plain function, so FastAPI runs it in a worker thread, and the form is read (awaited) by its own
    dependency before: a write's first statement takes SQLite's write lock and may wait for it, which on
    the event loop would stall every request — including the one holding the lock, if it was awaiting
    (seen as 60-second hangs and "database is locked" under load)."""
    found = _current(request, db)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method in SAFE_METHODS else "/")
    _, browser_session, user = found
    if request.method not in SAFE_METHODS and not security.same(csrf, browser_session.csrf_token):
        raise PageError(403, "errors.csrf")
    memberships = workspaces.workspaces_of(db, user_id=user.id)
    workspace, role = None, None
    for candidate, candidate_role in memberships:
        if candidate.id == browser_session.workspace_id:
            workspace, role = candidate, candidate_role
    if workspace is None and memberships:
        workspace, role = memberships[0]  # the one in use was left or removed: fall back to the first
    return UiContext(
        request=request, db=db, user=user, browser_session=browser_session, workspace=workspace, role=role,
        locale=request_locale(request, user), workspaces=memberships,
    )


page_context = Depends(ui_context)


def optional_user(request: Request, db: Session) -> User | None:
    found = _current(request, db)
    return found[2] if found else None


# --- cookies --------------------------------------------------------------------------------------


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(workspaces.SESSION_LIFETIME.total_seconds()), httponly=True,
        samesite="lax", secure=settings_of(request).secure_cookies, path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings_of(request).secure_cookies)


def pre_csrf_token(request: Request) -> str:
    """The double-submit token for a form shown before sign-in (reused while the cookie lives)."""
    existing = request.cookies.get(PRE_CSRF_COOKIE)
    return existing if existing and len(existing) >= 20 else security.new_token(nbytes=24)


def set_pre_csrf_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(PRE_CSRF_COOKIE, token, max_age=3600 * 12, httponly=True, samesite="lax",
                        secure=settings_of(request).secure_cookies, path="/")


def check_pre_csrf(request: Request, submitted: str | None) -> None:
    cookie = request.cookies.get(PRE_CSRF_COOKIE) or ""
    if not cookie or not submitted or not security.same(cookie, submitted):
        raise PageError(403, "errors.csrf")


def set_locale_cookie(request: Request, response: Response, locale: str) -> None:
    response.set_cookie(i18n.LOCALE_COOKIE, locale, max_age=3600 * 24 * 365, samesite="lax",
                        secure=settings_of(request).secure_cookies, path="/")


def safe_next(path: str | None) -> str:
    """Only same-site paths, so a crafted link cannot bounce a fresh login to another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


# --- login rate limit -----------------------------------------------------------------------------


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _failure_keys(email: str, address: str) -> list[str]:
    return [f"email:{email.strip().lower()[:320]}", f"ip:{address[:64]}"]


def login_blocked(db: Session, *, email: str, address: str, limit: int) -> bool:
    """True when the e-mail or the address has `limit` failures in the last minute (from any process)."""
    since = utcnow() - LOGIN_WINDOW
    counts = db.execute(
        select(LoginFailure.key, func.count()).where(LoginFailure.key.in_(_failure_keys(email, address)), LoginFailure.at >= since)
        .group_by(LoginFailure.key)
    ).all()
    return any(n >= limit for _, n in counts)


def record_login_failure(db: Session, *, email: str, address: str) -> None:
    keys = _failure_keys(email, address)
    now = utcnow()
    db.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys), LoginFailure.at < now - timedelta(hours=1)))
    db.execute(LoginFailure.__table__.insert(), [{"key": key, "at": now} for key in keys])


# --- errors as pages ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Send signed-out visitors to the login page and show PageErrors as pages, not JSON."""
    from tutti.web.pages import render_error

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, error: LoginRequired):
        if request.headers.get("hx-request"):
            # htmx would swap the login page into a fragment; ask it to load the page instead
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(error.next_path, safe='/')}", status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, error: PageError):
        return render_error(request, error.status, error.key, error.detail)
