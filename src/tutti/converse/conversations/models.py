"""Tables of conversations: teams and their members, conversations, messages and the agent's decisions.

`message` and `agent_decision` are append-only with `created_at`, so on PostgreSQL they can be partitioned
by time when a deployment needs it (their de-duplication key is looked up, not enforced across
partitions: see `message.external_id`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

CONVERSATION_CHANNELS = ("web", "line", "api", "email")
STATUSES = ("bot", "waiting", "assigned", "follow_up", "resolved")
AUTHORS = ("customer", "bot", "agent", "system")
MESSAGE_KINDS = ("text", "sticker", "image", "postback", "note", "event")
ASSIGNMENTS = ("round_robin", "manual")


class Team(Base):
    """People who answer one kind of question, with their hours and how work is shared among them."""

    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    assignment: Mapped[str] = mapped_column(String(16), default="round_robin")
    # {"mon": [["09:00", "18:00"]], …} in the workspace's time zone; {} = always open
    business_hours: Mapped[dict] = mapped_column(Json, default=dict)
    out_of_hours_message: Mapped[dict] = mapped_column(Json, default=dict)  # {"zh-TW": "…", "en": "…"}
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeamMember(Base):
    __tablename__ = "team_member"

    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("team.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Conversation(Base):
    """One thread with a contact on one channel. A new customer message reopens a recently resolved one."""

    __tablename__ = "conversation"
    __table_args__ = (
        Index("ix_conversation_queue", "workspace_id", "status", "last_message_at"),
        Index("ix_conversation_assignee", "workspace_id", "assignee_user_id", "status"),
        Index("ix_conversation_contact", "workspace_id", "contact_id", "channel"),
        Index("ix_conversation_created", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    channel_id: Mapped[int | None] = mapped_column(BigId)  # the channel row (a LINE official account, …)
    status: Mapped[str] = mapped_column(String(16), default="bot")
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("team.id", ondelete="SET NULL"))
    subject: Mapped[str | None] = mapped_column(String(300))
    topic: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list] = mapped_column(Json, default=list)
    language: Mapped[str | None] = mapped_column(String(8))  # the customer's, as last detected: zh-TW or en
    # an action the agent proposed (unsubscribe, update e-mail) waiting for the customer's yes
    pending_action: Mapped[dict | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_customer_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the bot's or a person's
    first_human_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    reopened_soon: Mapped[bool] = mapped_column(Boolean, default=False)  # reopened within 24 h of being resolved
    handled_by_bot_only: Mapped[bool] = mapped_column(Boolean, default=True)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(Text)
    csat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Message(Base):
    """One message of a conversation. Append-only."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_conversation", "conversation_id", "id"),
        Index("ix_message_workspace_time", "workspace_id", "created_at"),
        # de-duplication of channel retries (LINE message id, widget client id); looked up before insert
        Index("ix_message_external", "workspace_id", "channel", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("conversation.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(8), default="text")
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(Json, default=dict)
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageKey(Base):
    """The unique de-duplication key of a channel message, kept apart from the (partitionable) message table."""

    __tablename__ = "message_key"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId)


class AgentDecision(Base):
    """Why the agent did what it did with one customer message. Append-only."""

    __tablename__ = "agent_decision"
    __table_args__ = (
        Index("ix_agent_decision_conversation", "conversation_id", "id"),
        Index("ix_agent_decision_workspace_time", "workspace_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("conversation.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(16))  # answer, tool, handoff, confirm
    knowledge_id: Mapped[int | None] = mapped_column(BigId)
    confidence: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(300), default="")
    tool: Mapped[str | None] = mapped_column(String(40))
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[dict] = mapped_column(Json, default=dict)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _move_conversations(db, workspace_id: int, winner_id: int, loser_id: int) -> None:
    """Audience's merge hook: the loser's conversations now belong to the winner (registered with the tables,
    so every process that can merge contacts moves them)."""
    from sqlalchemy import update

    db.execute(update(Conversation).where(Conversation.workspace_id == workspace_id, Conversation.contact_id == loser_id)
               .values(contact_id=winner_id).execution_options(synchronize_session=False))


def _register_merge_hook() -> None:
    from tutti.audience.contacts import MERGE_HOOKS

    if _move_conversations not in MERGE_HOOKS:
        MERGE_HOOKS.append(_move_conversations)


_register_merge_hook()
