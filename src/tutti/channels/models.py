"""The tables of channels (importing this module registers them; migrations and tests rely on it): connected
provider accounts, and the inbound webhook events already handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

CHANNEL_KINDS = ("line", "email", "sms", "webhook")
CHANNEL_STATUSES = ("active", "error", "disabled")


class Channel(Base):
    """One provider account of a workspace (a LINE official account, an SMTP server, an SMS provider, a
    webhook endpoint). Secrets live in `credentials`, encrypted with a key derived from the server's
    secret key; everything safe to show lives in `config`."""

    __tablename__ = "channel"
    __table_args__ = (Index("ix_channel_workspace_kind", "workspace_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict] = mapped_column(Json, default=dict)  # non-secret settings (host, URL, rate …)
    credentials: Mapped[str] = mapped_column(Text, default="")  # Fernet token of a JSON object of secrets
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_detail: Mapped[str | None] = mapped_column(String(500))  # why it is in error, in the provider's words
    # LINE: the bot's own user id (webhook `destination`) and basic id (@xxxx), learnt on test connection
    bot_user_id: Mapped[str | None] = mapped_column(String(64))
    basic_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_tested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundEvent(Base):
    """A provider's webhook event (LINE's webhookEventId): stored when it arrives, acted on by a job, kept
    afterwards (without its payload) so a redelivery or replay is recognised and ignored."""

    __tablename__ = "channel_inbound_event"
    __table_args__ = (Index("ix_channel_inbound_event_pending", "processed_at", "received_at"),)

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # follow, unfollow, message, postback, …
    position: Mapped[int] = mapped_column(Integer, default=0)  # order within its webhook body
    payload: Mapped[dict | None] = mapped_column(Json)  # the event as LINE sent it; cleared once processed
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))  # the last failure; set aside after MAX_ATTEMPTS
