"""Tables of broadcasts: the campaign, its variants, the recipients chosen when it starts and one
delivery row per recipient × message, written before anything is sent (the send's idempotency key)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
DELIVERY_STATUSES = ("queued", "sent", "failed", "cancelled")
CHANNEL_KINDS = ("line", "sms", "email")


class Campaign(Base):
    """A broadcast. Its row is the state of the send: the job reads and moves it, so any worker can resume."""

    __tablename__ = "campaign"
    __table_args__ = (Index("ix_campaign_workspace_id", "workspace_id", "id"), Index("ix_campaign_status", "status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="marketing")  # marketing (counts toward caps), transactional
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # {"segment_ids": [...], "exclude_segment_ids": [...], "contact_ids": [...] (an explicit list, e.g. testers)}
    audience: Mapped[dict] = mapped_column(Json, default=dict)
    channels: Mapped[list] = mapped_column(Json, default=list)  # fallback order by reachability, e.g. ["line", "sms", "email"]
    channel_ids: Mapped[dict] = mapped_column(Json, default=dict)  # kind -> channel id; the workspace's default when absent
    holdout_percent: Mapped[float] = mapped_column(Float, default=0)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quiet_hours: Mapped[dict | None] = mapped_column(Json)  # {"start": "21:00", "end": "09:00"} in the workspace's zone
    frequency_cap: Mapped[dict | None] = mapped_column(Json)  # {"max": 2, "days": 7}: marketing messages per person
    attribution_days: Mapped[int] = mapped_column(Integer, default=7)
    costs: Mapped[dict] = mapped_column(Json, default=dict)  # price per message per channel kind, workspace currency
    # a random UUID (hex) per campaign: delivery keys derive from it, so keys never collide across campaigns
    # or deployments that share a provider account
    key_namespace: Mapped[str] = mapped_column(String(32))
    # counters, moved in the same transactions as the rows they count (progress without COUNT(*))
    recipients_count: Mapped[int] = mapped_column(Integer, default=0)
    holdout_count: Mapped[int] = mapped_column(Integer, default=0)
    deliveries_count: Mapped[int] = mapped_column(Integer, default=0)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[dict] = mapped_column(Json, default=dict)  # reason -> contacts left out when the audience was taken
    waiting: Mapped[str | None] = mapped_column(String(32))  # why a sending campaign is idle: quiet_hours, retry_backoff
    message: Mapped[str | None] = mapped_column(Text)  # the last problem, in words
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the audience was taken
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a sender touching it
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Variant(Base):
    """One version of the message (A/B). Content per channel kind: a template id or inline content."""

    __tablename__ = "variant"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    split_percent: Mapped[float] = mapped_column(Float, default=100)
    template_ids: Mapped[dict] = mapped_column(Json, default=dict)  # channel kind -> template id
    content: Mapped[dict] = mapped_column(Json, default=dict)  # channel kind -> template content (as templates validate it)


class CampaignRecipient(Base):
    """Who was in the audience when the campaign started: the hold-out (no variant) and the others."""

    __tablename__ = "campaign_recipient"
    __table_args__ = (Index("ix_campaign_recipient_contact", "workspace_id", "contact_id"),)

    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("variant.id", ondelete="CASCADE"))
    is_holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str] = mapped_column(String(8))  # the channel kind chosen (the hold-out's would-be channel)


class Delivery(Base):
    """One message to one contact. Written (queued) before the send; `key` is the provider's idempotency key.

    queued → sent | failed; while the provider has it, it is a member of a DeliveryBatch (committed before
    the provider is called) and still queued. A transient failure goes back to queued with attempts + 1
    and a not_before; cancel turns queued rows in no DeliveryBatch into cancelled.

    No index holds a column the send path writes (status, batch_key, attempts, outcome), and on PostgreSQL
    65% of each page is left free (fillfactor 35): the one write of a broadcast per row (its outcome, which
    makes the row ~85 bytes longer) is then a HOT update that touches no index, ~2.4 µs a row instead of
    ~13 µs (see docs/campaigns.md; at fillfactor 50 a quarter of them outgrew their page). The engine finds
    a campaign's rows by (campaign_id, id) and filters the status."""

    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_campaign_id", "campaign_id", "id"),
        Index("ix_delivery_contact_created", "workspace_id", "contact_id", "created_at"),
        {"postgresql_with": {"fillfactor": 35}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("variant.id", ondelete="SET NULL"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("channel.id", ondelete="SET NULL"))  # provider account
    channel: Mapped[str] = mapped_column(String(8))  # kind: line, sms, email
    address: Mapped[str] = mapped_column(String(320))
    key: Mapped[str] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # once sent or queued for a retry, the request that carried it: "m:<uuid>" one provider request to many
    # (LINE multicast), "s:<uuid>" single sends claimed together (each keyed by its own delivery's key)
    batch_key: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)  # retry back-off
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_reason: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the few-valued profile fields its message is made of, as the audience snapshot read them (a JSON
    # object, e.g. {"city": "台北市"}): the sender renders from these instead of reading every recipient's
    # contact again. NULL when the message uses other fields (a name: it reads them at send time).
    profile_values: Mapped[str | None] = mapped_column(Text)


class DeliveryBatch(Base):
    """A request written and not yet recorded: its key and its members, committed before the provider is
    called. "m:" a multicast, whose retry key derives from the members, so a sender that restarts after a
    crash resends exactly these members (the provider answers "already accepted" for what it had); "s:" the
    single sends of one claim, each keyed by its own delivery's key and sent on its own row's channel
    (`channel_id` is then the first one's). Deleted with the outcomes' write, so the table holds exactly what
    is with the provider: cancel leaves these rows alone."""

    __tablename__ = "delivery_batch"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigId, ForeignKey("campaign.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(BigId)
    delivery_ids: Mapped[list] = mapped_column(Json)


def _erased(db, workspace_id: int, contact_id: int) -> dict[str, int]:
    """An erased contact's profile values leave its deliveries too: each keeps its fields with no values, so
    a queued one renders with the template's fallbacks, as from the erased profile (one contact's
    deliveries: a few rows, one per campaign)."""
    import orjson
    from sqlalchemy import bindparam, select, update

    held = db.execute(select(Delivery.id, Delivery.profile_values).where(
        Delivery.workspace_id == workspace_id, Delivery.contact_id == contact_id, Delivery.profile_values.is_not(None))).all()
    if held:
        table = Delivery.__table__  # Core: many rows' own values in one executemany
        db.execute(update(table).where(table.c.id == bindparam("b_id")).values(profile_values=bindparam("emptied")),
                   [{"b_id": i, "emptied": orjson.dumps(dict.fromkeys(orjson.loads(text))).decode()} for i, text in held])
    return {"delivery_profile_values": len(held)}


def _register_hooks() -> None:
    from tutti.audience.privacy import ERASE_HOOKS

    if _erased not in ERASE_HOOKS:
        ERASE_HOOKS.append(_erased)


_register_hooks()
