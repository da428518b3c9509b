"""LINE's inbound webhook: `POST /webhooks/line/{channel_id}` (the URL to set in the LINE Developers console).

1. The x-line-signature is checked with line-bot-sdk's SignatureValidator and the channel's secret: a
   forged or unsigned body is answered 401 and nothing is stored.
2. Each event is stored in `channel_inbound_event`, keyed by (channel, `webhookEventId`), and the request is
   answered 200 at once (LINE wants an answer within seconds; an agent's answer can take longer). A
   redelivered or replayed event collides with its key and is ignored.
3. A job (woken after the commit, and the one-minute tick for anything left) acts on each stored event in
   the order received, **in one transaction with marking it processed**, so each event has its effect
   exactly once: follow → the contact with that LINE user id (created if new) is LINE-subscribed; unfollow →
   blocked; message and postback → every handler in `tutti.channels.inbound.LINE_EVENT_HANDLERS` is called
   with the contact id. Other events (join, leave, beacon, …) and standby-mode events are only recorded.
   A handler that raises leaves its event pending (attempts + 1, error kept) for the next run; after
   MAX_ATTEMPTS it is set aside (processed_at with the error) and logged. Once processed, the payload (the
   customer's words) is cleared; the key stays to recognise replays.

With an immediate queue (tests) the job runs before the request is answered.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Request
from linebot.v3.webhook import SignatureValidator
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience import consent, contacts
from tutti.channels import inbound
from tutti.channels.models import Channel, InboundEvent
from tutti.channels.service import secrets_of
from tutti.platform.audit import Actor
from tutti.platform.db import get_database, utcnow
from tutti.platform.errors import InvalidInput, NotFound, Unauthorized
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


MAX_ATTEMPTS = 5


def act(db: Session, *, channel: Channel, workspace: Workspace, event: dict) -> None:
    """The effect of one event (inside the caller's transaction)."""
    kind = str(event.get("type") or "unknown")
    user_id = (event.get("source") or {}).get("userId")
    if event.get("mode") == "standby" or not user_id:
        return
    contact_id = _contact_for(db, workspace, user_id)
    if kind == "follow":
        consent.set_consent(db, workspace_id=workspace.id, contact_id=contact_id, channel="line", status="subscribed", source="line webhook")
    elif kind == "unfollow":
        consent.set_consent(db, workspace_id=workspace.id, contact_id=contact_id, channel="line", status="blocked", source="line webhook")
    elif kind in ("message", "postback"):
        for handler in list(inbound.LINE_EVENT_HANDLERS):
            handler(db, workspace_id=workspace.id, channel_id=channel.id, contact_id=contact_id, event=event)


def receive(*, channel_id: int, body: bytes, signature: str | None) -> dict:
    """Verify, store the events not seen before, wake the job. Returns {"received", "new"}."""
    database = get_database()
    with database.read_session() as db:
        channel = db.get(Channel, channel_id)
        if channel is None or channel.kind != "line":
            raise NotFound(f"LINE channel {channel_id} not found", field="channel_id")
        data = verify(channel, body, signature)  # before anything is written
    events = [e for e in data.get("events") or [] if isinstance(e, dict)]
    rows = []
    for position, event in enumerate(events):
        if not event.get("webhookEventId"):  # LINE always sends one; a body without is not LINE's
            raise InvalidInput("an event has no webhookEventId", field="events.webhookEventId")
        rows.append({"channel_id": channel_id, "event_id": str(event["webhookEventId"])[:64], "workspace_id": channel.workspace_id,
                     "kind": str(event.get("type") or "unknown")[:32], "position": position, "payload": event,
                     "received_at": utcnow(), "attempts": 0})
    with database.session() as db:
        new = insert_ignore(db, InboundEvent, rows, conflict=("channel_id", "event_id"))
        if data.get("destination"):
            found = db.get(Channel, channel_id)
            if not found.bot_user_id:
                found.bot_user_id = str(data["destination"])[:64]  # learn the bot's id from LINE itself
    if new:
        from tutti.channels import jobs

        jobs.process_line_events_task()
    return {"received": len(events), "new": new}


def _pending(database, *, limit: int) -> list[tuple[int, str]]:
    with database.read_session() as db:
        query = (select(InboundEvent.channel_id, InboundEvent.event_id).where(InboundEvent.processed_at.is_(None))
                 .order_by(InboundEvent.received_at, InboundEvent.position).limit(limit))
        return [tuple(row) for row in db.execute(query)]


def _process_one(database, channel_id: int, event_id: str) -> bool:
    with database.session() as db:
        query = select(InboundEvent).where(InboundEvent.channel_id == channel_id, InboundEvent.event_id == event_id,
                                           InboundEvent.processed_at.is_(None))
        if database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)  # another worker has it: leave it
        row = db.scalars(query).first()
        if row is None:
            return False
        channel = db.get(Channel, channel_id)
        workspace = db.get(Workspace, row.workspace_id)
        act(db, channel=channel, workspace=workspace, event=row.payload or {})
        row.processed_at, row.payload, row.error = utcnow(), None, None
        return True


def process_pending(*, limit: int = 500) -> tuple[int, int]:
    """Act on up to `limit` stored events not yet processed, oldest first, each tried once; returns
    (how many were looked at, how many were processed)."""
    database = get_database()
    done = 0
    pending = _pending(database, limit=limit)
    for channel_id, event_id in pending:
        try:
            done += _process_one(database, channel_id, event_id)
        except Exception as error:  # one bad event must not stop the others
            log.exception("a LINE event could not be processed", extra={"channel_id": channel_id, "event_id": event_id})
            with database.session() as db:
                row = db.get(InboundEvent, (channel_id, event_id))
                if row is not None and row.processed_at is None:
                    row.attempts += 1
                    row.error = f"{error.__class__.__name__}: {error}"[:500]
                    if row.attempts >= MAX_ATTEMPTS:
                        row.processed_at, row.payload = utcnow(), None  # set aside; the error stays
    return len(pending), done


@router.post("/webhooks/line/{channel_id}", include_in_schema=True, summary="LINE Messaging API webhook")
async def line_webhook(channel_id: int, request: Request):
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput("the body is too large", field="body")
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(receive, channel_id=channel_id, body=body, signature=request.headers.get("x-line-signature"))
