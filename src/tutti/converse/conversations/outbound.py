"""Delivering bot and agent messages to the customer's channel.

LINE: with a reply token still valid (LINE allows about a minute, once) the reply is free and goes with
it; otherwise a push. The message row records how it went (`payload.delivery`). The web widget needs
nothing here: the realtime event after the commit is its delivery."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from tutti.converse.conversations.models import Conversation, Message
from tutti.platform.db import get_database, utcnow

log = logging.getLogger("tutti.conversations")
REPLY_TOKEN_LIFETIME = timedelta(seconds=50)  # LINE says "about a minute"; leave room for the request


def schedule(message_id: int, reply_token: str | None = None) -> None:
    from tutti.converse.conversations import jobs

    jobs.deliver_message(message_id, reply_token, utcnow().isoformat())


def schedule_many(message_ids: list[int]) -> None:
    from tutti.converse.conversations import jobs

    for start in range(0, len(message_ids), 500):
        jobs.deliver_messages(message_ids[start:start + 500])


def line_messages(message: Message) -> list[dict]:
    if message.kind == "text":
        return [{"type": "text", "text": (message.text or "")[:5000]}]
    if message.kind in ("sticker", "image") and message.payload.get("line"):
        return [message.payload["line"]]
    return [{"type": "text", "text": (message.text or "")[:5000]}] if message.text else []


def deliver(message_id: int, reply_token: str | None = None, token_at: str | None = None) -> str:
    """Send one message to LINE; returns how it went: replied, pushed, skipped, failed."""
    from datetime import datetime

    database = get_database()
    with database.session() as db:
        message = db.get(Message, message_id)
        if message is None or (message.payload or {}).get("delivery"):
            return "skipped"
        conversation = db.get(Conversation, message.conversation_id)
        if conversation.channel != "line":
            return "skipped"
        token_fresh = reply_token and token_at and utcnow() - datetime.fromisoformat(token_at) < REPLY_TOKEN_LIFETIME
        outcome = _send_line(db, conversation, message, reply_token if token_fresh else None)
        message.payload = {**(message.payload or {}), "delivery": outcome}
        return outcome["status"]


def _send_line(db: Session, conversation: Conversation, message: Message, reply_token: str | None) -> dict:
    try:
        from tutti.channels import service as channels
    except ImportError:
        return {"status": "failed", "reason": "no LINE channel support installed"}
    messages = line_messages(message)
    if not messages:
        return {"status": "skipped", "reason": "nothing LINE can show"}
    try:
        if conversation.channel_id is not None:
            adapter = channels.adapter_for(db, workspace_id=conversation.workspace_id, channel_id=conversation.channel_id)
        else:
            channel = channels.default_channel(db, workspace_id=conversation.workspace_id, kind="line")
            if channel is None:
                return {"status": "failed", "reason": "the workspace has no LINE channel"}
            adapter = channels.adapter_for(db, workspace_id=conversation.workspace_id, channel_id=channel.id)
    except Exception as error:  # noqa: BLE001
        return {"status": "failed", "reason": f"no LINE channel: {error}"[:300]}
    if reply_token:
        try:
            from tutti.channels import line

            result = line.reply(adapter, reply_token, messages)
            ok = getattr(result, "status", "sent") == "sent" if result is not None else True
            if ok:
                return {"status": "replied", "at": utcnow().isoformat()}
            log.warning("LINE reply failed, pushing instead", extra={"message_id": message.id, "reason": getattr(result, "reason", None)})
        except Exception as error:  # noqa: BLE001 - an expired or used token: push instead
            log.warning("LINE reply failed, pushing instead", extra={"message_id": message.id, "error": str(error)[:200]})
    from tutti.audience import contacts
    from tutti.channels.base import Outgoing

    line_uid = next((v for k, v in contacts.identities_of(db, [conversation.contact_id])[conversation.contact_id] if k == "line_uid"), None)
    if line_uid is None:
        return {"status": "failed", "reason": "the contact has no LINE user id"}
    outcome = adapter.send([Outgoing(key=f"converse-{message.id}", to=line_uid, payload={"messages": messages})])[0]
    if outcome.status == "sent":
        return {"status": "pushed", "provider_id": outcome.provider_id, "at": utcnow().isoformat()}
    return {"status": "failed", "reason": outcome.reason, "code": outcome.code}
