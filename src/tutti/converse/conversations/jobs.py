"""Background work of conversations: delivering messages to channels, and bringing follow-ups back."""

from __future__ import annotations

from sqlalchemy import case, update

from tutti.converse.conversations import outbound, service
from tutti.converse.conversations.models import Conversation
from tutti.platform.db import get_database, utcnow
from tutti.platform.jobs import on_tick, task


@task(retries=2, retry_delay=5)
def deliver_message(message_id: int, reply_token: str | None = None, token_at: str | None = None) -> None:
    outbound.deliver(message_id, reply_token, token_at)


@task(retries=2, retry_delay=5)
def deliver_messages(message_ids: list[int]) -> None:
    for message_id in message_ids:
        outbound.deliver(message_id)


@on_tick
def wake_follow_ups() -> None:
    """Follow-ups whose time has come go back to the person's queue."""
    with get_database().session() as db:
        db.execute(update(Conversation).where(Conversation.status == "follow_up", Conversation.follow_up_at.is_not(None),
                                              Conversation.follow_up_at <= utcnow()).values(status=case((Conversation.assignee_user_id.is_(None), "waiting"), else_="assigned"), follow_up_at=None)
                   .execution_options(synchronize_session=False))


@on_tick
def resolve_idle_bot_conversations() -> None:
    with get_database().session() as db:
        service.resolve_idle_bot_conversations(db)
