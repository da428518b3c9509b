"""LINE's inbound webhook: `POST /webhooks/line/{channel_id}` (the URL to set in the LINE Developers console).

1. The x-line-signature is checked with line-bot-sdk's SignatureValidator and the channel's secret: a
   forged or unsigned body is answered 400 and nothing is stored.
2. Each event is recorded in `channel_inbound_event` by its `webhookEventId` in the same transaction that
   acts on it, so a redelivered or replayed event is answered 200 and has no second effect.
3. follow → the contact with that LINE user id (created if new) is LINE-subscribed; unfollow → blocked;
   message and postback → every handler in `tutti.channels.inbound.LINE_EVENT_HANDLERS` is called with
   the contact id. Other events (join, leave, beacon, …) are recorded and otherwise ignored.

Each event has its own savepoint: an event whose handler fails is not recorded (LINE's redelivery, or a
replay, brings it again) while the others of the same body are kept; the answer is then 500 so LINE
retries. Events in "standby" mode (another channel holds the chat) are recorded but not acted on.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from linebot.v3.webhook import SignatureValidator
from sqlalchemy.orm import Session

from tutti.audience import consent, contacts
from tutti.channels import inbound
from tutti.channels.models import Channel, InboundEvent
from tutti.channels.service import secrets_of
from tutti.platform.audit import Actor
from tutti.platform.db import get_database
from tutti.platform.errors import InvalidInput, NotFound, TuttiError, Unauthorized
from tutti.platform.models import Workspace
from tutti.platform.sql import insert_ignore

log = logging.getLogger("tutti.channels.webhooks")
router = APIRouter(tags=["webhooks"])
ACTOR = Actor.system("line webhook")
MAX_BODY = 1_000_000


def verify(channel: Channel, body: bytes, signature: str | None) -> dict:
    """The parsed body when the signature is LINE's for this channel's secret; raises otherwise."""
    if not signature:
        raise Unauthorized("the x-line-signature header is missing")
    secret = secrets_of(channel).get("channel_secret") or ""
    if not SignatureValidator(secret).validate(body.decode("utf-8", errors="replace"), signature):
        raise Unauthorized("the x-line-signature does not match this channel's secret")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not JSON", field="body") from None
    if not isinstance(data, dict) or not isinstance(data.get("events", []), list):
        raise InvalidInput("the body has no events list", field="events")
    return data


def _contact_for(db: Session, workspace: Workspace, user_id: str) -> int:
    contact, _ = contacts.upsert(db, workspace_id=workspace.id, identities={"line_uid": user_id}, source="line",
                                 region=workspace.default_region, actor=ACTOR)
    return contact.id


def handle_event(db: Session, *, channel: Channel, workspace: Workspace, event: dict) -> bool:
    """Act on one event unless it was handled before; returns whether it was new."""
    event_id = event.get("webhookEventId")
    kind = str(event.get("type") or "unknown")
    if not event_id:  # LINE always sends one; a body without is not LINE's
        raise InvalidInput("an event has no webhookEventId", field="events.webhookEventId")
    fresh = insert_ignore(db, InboundEvent, [{"channel_id": channel.id, "event_id": str(event_id)[:64], "workspace_id": workspace.id,
                                              "kind": kind[:32]}], conflict=("channel_id", "event_id"))
    if not fresh:
        return False
    user_id = (event.get("source") or {}).get("userId")
    if event.get("mode") == "standby" or not user_id:
        return True
    contact_id = _contact_for(db, workspace, user_id)
    if kind == "follow":
        consent.set_consent(db, workspace_id=workspace.id, contact_id=contact_id, channel="line", status="subscribed", source="line webhook")
    elif kind == "unfollow":
        consent.set_consent(db, workspace_id=workspace.id, contact_id=contact_id, channel="line", status="blocked", source="line webhook")
    elif kind in ("message", "postback"):
        for handler in list(inbound.LINE_EVENT_HANDLERS):
            handler(db, workspace_id=workspace.id, channel_id=channel.id, contact_id=contact_id, event=event)
    return True


def receive(*, channel_id: int, body: bytes, signature: str | None) -> dict:
    """Verify, then handle each event exactly once. Returns {"received", "new", "failed"}."""
    database = get_database()
    with database.read_session() as db:
        channel = db.get(Channel, channel_id)
        if channel is None or channel.kind != "line":
            raise NotFound(f"LINE channel {channel_id} not found", field="channel_id")
        data = verify(channel, body, signature)  # before anything is written
    events = data.get("events") or []
    new = failed = 0
    with database.session() as db:
        channel = db.get(Channel, channel_id)
        workspace = db.get(Workspace, channel.workspace_id)
        if data.get("destination") and not channel.bot_user_id:
            channel.bot_user_id = str(data["destination"])[:64]  # learn the bot's id from LINE itself
        for event in events:
            if not isinstance(event, dict):
                continue
            try:
                with db.begin_nested():
                    new += handle_event(db, channel=channel, workspace=workspace, event=event)
            except TuttiError:
                raise
            except Exception:
                failed += 1
                log.exception("a LINE event handler failed; the event is left for LINE's redelivery",
                              extra={"channel_id": channel_id, "event_id": event.get("webhookEventId")})
    return {"received": len(events), "new": new, "failed": failed}


@router.post("/webhooks/line/{channel_id}", include_in_schema=True, summary="LINE Messaging API webhook")
async def line_webhook(channel_id: int, request: Request):
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("the body is too large", field="body")
    from starlette.concurrency import run_in_threadpool

    result = await run_in_threadpool(receive, channel_id=channel_id, body=body, signature=request.headers.get("x-line-signature"))
    return JSONResponse(result, status_code=500 if result["failed"] else 200)
