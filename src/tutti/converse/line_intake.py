"""LINE messages into conversations: the LINE webhook (tutti.channels.webhooks) calls `handle_line_event`
for each new message or postback event, inside its transaction.

Text becomes a customer message the agent answers; stickers, images, video, audio, files, locations and
postbacks are stored as they are (shown to people, never dropped): images and files bring a person, since
only a person can look at them; stickers and postbacks stay with whoever has the conversation. The reply goes
with the event's reply token while it is valid, else as a push (conversations/outbound.py). LINE's message
id de-duplicates: a redelivered event is stored and answered once."""

from __future__ import annotations

import logging
import time

from sqlalchemy.orm import Session

log = logging.getLogger("tutti.converse.line")

_LOOK_NEEDED = ("image", "video", "audio", "file")
REPLY_TOKEN_SECONDS = 50  # LINE: a reply token works once, for about a minute after the event


def message_of(event: dict) -> tuple[str, str | None, dict, str | None]:
    """(kind, text, payload, external id) of a LINE message or postback event."""
    if event.get("type") == "postback":
        postback = event.get("postback") or {}
        data = str(postback.get("data") or "")
        return "postback", data[:5000] or None, {"postback": postback}, event.get("webhookEventId")
    message = event.get("message") or {}
    kind = message.get("type")
    external_id = message.get("id") or event.get("webhookEventId")
    if kind == "text":
        return "text", str(message.get("text") or "")[:5000], {"line": {"type": "text", "quoteToken": message.get("quoteToken")}}, external_id
    if kind == "sticker":
        sticker = {"type": "sticker", "packageId": str(message.get("packageId")), "stickerId": str(message.get("stickerId"))}
        return "sticker", None, {"line": sticker, "keywords": message.get("keywords") or []}, external_id
    if kind == "image":
        return "image", None, {"line_message_id": message.get("id"), "content_provider": message.get("contentProvider") or {}}, external_id
    if kind == "location":
        text = " ".join(str(message.get(k) or "") for k in ("title", "address")).strip() or None
        return "event", text, {"line": {k: message.get(k) for k in ("type", "title", "address", "latitude", "longitude")}}, external_id
    # video, audio, file and anything LINE adds later: kept, with what LINE told us
    return "event", f"[{kind}]", {"line_type": kind, "line_message_id": message.get("id"),
                                  "file_name": message.get("fileName"), "duration": message.get("duration")}, external_id


def handle_line_event(db: Session, *, workspace_id: int, channel_id: int, contact_id: int, event: dict) -> None:
    from tutti.converse.conversations import service

    if event.get("type") not in ("message", "postback"):
        return
    kind, text, payload, external_id = message_of(event)
    if kind == "event" and payload.get("line_type") in _LOOK_NEEDED:
        kind = "image" if payload.get("line_type") == "image" else "event"
    payload["needs_person"] = kind == "image" or payload.get("line_type") in _LOOK_NEEDED
    reply_token = event.get("replyToken")
    sent_at = event.get("timestamp")
    if reply_token and isinstance(sent_at, int | float) and time.time() - sent_at / 1000 > REPLY_TOKEN_SECONDS:
        reply_token = None  # handled late (a queue backlog, a redelivery): the token is dead, push instead
    service.receive_customer_message(db, workspace_id=workspace_id, contact_id=contact_id, channel="line", channel_id=channel_id, text=text,
                                     kind=kind, payload=payload, external_id=str(external_id) if external_id else None,
                                     reply_token=reply_token)


def _register() -> None:
    try:
        from tutti.channels import inbound
    except ImportError:  # channels without inbound support: nothing to hook into
        return
    inbound.register(handle_line_event)


_register()
