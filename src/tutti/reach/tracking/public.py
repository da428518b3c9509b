"""Public addresses in messages (no sign-in): short links `/l/{code}`, the e-mail open pixel `/o/{code}.gif`
and the unsubscribe page `/u/{token}`. A bad or altered code is a 404 page, never a 500.

Unsubscribing: GET shows a page with one button (mail scanners open links, and must not unsubscribe
anyone); POST unsubscribes — the button, and RFC 8058 one-click from the mail client
(`List-Unsubscribe-Post: List-Unsubscribe=One-Click`)."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from tutti.platform.auth import get_db
from tutti.reach.tracking import clicks
from tutti.web.pages import render_error, render_public
from tutti.web.session import request_locale

router = APIRouter(include_in_schema=False)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}


@router.get("/l/{code}")
def follow_link(code: str, request: Request, db: Session = get_db):
    followed = clicks.follow(db, code=code[:64], user_agent=request.headers.get("user-agent"))
    if followed is None:
        return render_error(request, 404, "reports.link_not_found")
    return RedirectResponse(followed.url, status_code=302, headers=NO_STORE)


@router.get("/o/{code}.gif")
def open_pixel(code: str, db: Session = get_db):
    recorded = clicks.record_open(db, code=code[:64])
    return Response(PIXEL, media_type="image/gif", status_code=200 if recorded else 404, headers=NO_STORE)


@router.get("/u/{token}")
def unsubscribe_page(token: str, request: Request):
    from tutti.reach.tracking import codes

    if codes.read_unsubscribe_token(token[:64]) is None:
        return render_error(request, 404, "reports.link_not_found")
    return render_public(request, "templates/unsubscribe.html", locale=request_locale(request), token=token, done=False)


@router.post("/u/{token}")
def unsubscribe(token: str, request: Request, db: Session = get_db):
    done = clicks.unsubscribe(db, token=token[:64])
    if done is None:
        return render_error(request, 404, "reports.link_not_found")
    return render_public(request, "templates/unsubscribe.html", locale=request_locale(request), token=token, done=True)
