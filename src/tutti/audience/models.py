"""Tables of Audience, the customer data hub: one profile per person and everything known about them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

IDENTITY_KINDS = ("external_id", "line_uid", "email", "phone", "anonymous_id")  # strongest first
CHANNELS = ("line", "email", "sms")
CONSENT_STATUSES = ("subscribed", "unsubscribed", "blocked", "bounced")
ATTRIBUTE_TYPES = ("string", "number", "boolean", "date", "list")
BUILTIN_ATTRIBUTES = ("name", "gender", "birthday", "locale", "timezone", "city")
ORDER_STATUSES = ("placed", "paid", "fulfilled", "completed", "cancelled", "refunded", "partially_refunded")

Money = Numeric(14, 2, asdecimal=False)


class Contact(Base):
    """A person. Merged contacts stay as tombstones pointing at the contact they were merged into."""

    __tablename__ = "contact"
    __table_args__ = (
        Index("ix_contact_workspace_created", "workspace_id", "created_at"),
        # lists page newest-first by id; without this SQLite sorts the whole workspace for every page
        Index("ix_contact_workspace_id", "workspace_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    gender: Mapped[str | None] = mapped_column(String(16))  # female, male, other
    birthday: Mapped[date | None] = mapped_column(Date)
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    city: Mapped[str | None] = mapped_column(String(100))
    attributes: Mapped[dict] = mapped_column(Json, default=dict)  # custom, typed by AttributeDefinition
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_into_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contact.id"))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Identity(Base):
    """A way to recognise a contact. Unique per workspace: the same e-mail is always the same person."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    source: Mapped[str] = mapped_column(String(32), default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ErasedIdentity(Base):
    """A digest of an identity whose person was erased, so messages accepted before the erasure but stored
    after it (the tracking inbox) do not bring the person back. Holds no readable personal data."""

    __tablename__ = "erased_identity"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of "kind:value"
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContactMerge(Base):
    """The record that two contacts became one, and why."""

    __tablename__ = "contact_merge"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    winner_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id"), index=True)
    loser_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id"))
    reason: Mapped[str] = mapped_column(String(32))  # shared_identity, alias, manual
    detail: Mapped[dict] = mapped_column(Json, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AttributeDefinition(Base):
    """A custom attribute declared by the workspace, with its type."""

    __tablename__ = "attribute_definition"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tag(Base):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContactTag(Base):
    """A tag a contact has now; expired ones are ignored and swept."""

    __tablename__ = "contact_tag"
    __table_args__ = (Index("ix_contact_tag_workspace_tag", "workspace_id", "tag_id"),)

    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(BigId, ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TagApplication(Base):
    """Every time a tag was applied, so "got this tag 3 times in 30 days" can be asked."""

    __tablename__ = "tag_application"
    __table_args__ = (Index("ix_tag_application_tag_at", "workspace_id", "tag_id", "applied_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    tag_id: Mapped[int] = mapped_column(BigId, ForeignKey("tag.id", ondelete="CASCADE"))
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="api")


class Consent(Base):
    """Whether a contact can be reached on a channel now. LINE: subscribed = follows, blocked = blocked us."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_workspace_channel_status", "workspace_id", "channel", "status"),)

    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32), default="api")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentChange(Base):
    """History of consent: each change with its time and source."""

    __tablename__ = "consent_change"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """Something a contact did. Append-only; de-duplicated by message_id; partition by occurred_at on PG."""

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("workspace_id", "message_id"),
        Index("ix_event_contact_time", "workspace_id", "contact_id", "occurred_at"),
        Index("ix_event_name_time", "workspace_id", "name", "occurred_at"),
        Index("ix_event_workspace_time", "workspace_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="track")  # track, page, screen, identify, group
    name: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    properties: Mapped[dict] = mapped_column(Json, default=dict)
    context: Mapped[dict | None] = mapped_column(Json)
    source: Mapped[str] = mapped_column(String(32), default="api")
    message_id: Mapped[str] = mapped_column(String(128))


class Product(Base):
    __tablename__ = "product"
    __table_args__ = (UniqueConstraint("workspace_id", "sku"), Index("ix_product_category", "workspace_id", "category"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(100))  # the shop's product id
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(200))
    brand: Mapped[str | None] = mapped_column(String(200))
    price: Mapped[float | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    url: Mapped[str | None] = mapped_column(String(1000))
    image_url: Mapped[str | None] = mapped_column(String(1000))
    properties: Mapped[dict] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Order(Base):
    """A purchase. Refunds and cancellations change its status; rows are never deleted."""

    __tablename__ = "orders"  # "order" is a reserved word in SQL; analysts write queries against this
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        Index("ix_orders_contact_time", "workspace_id", "contact_id", "placed_at"),
        Index("ix_orders_workspace_time", "workspace_id", "placed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(24), default="completed")
    currency: Mapped[str] = mapped_column(String(3), default="TWD")
    subtotal: Mapped[float | None] = mapped_column(Money)
    discount: Mapped[float] = mapped_column(Money, default=0)
    shipping: Mapped[float] = mapped_column(Money, default=0)
    tax: Mapped[float] = mapped_column(Money, default=0)
    total: Mapped[float] = mapped_column(Money, default=0)
    refunded_total: Mapped[float] = mapped_column(Money, default=0)
    channel: Mapped[str | None] = mapped_column(String(32))  # web, line, store, app
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    properties: Mapped[dict] = mapped_column(Json, default=dict)


class OrderLine(Base):
    __tablename__ = "order_line"
    __table_args__ = (Index("ix_order_line_product", "workspace_id", "product_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("product.id", ondelete="SET NULL"))
    sku: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[float] = mapped_column(Money, default=0)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok, refunded, cancelled


class ImportJob(Base):
    """An import of members or orders from a file. The file is kept so any worker can resume it."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # members, orders
    filename: Mapped[str] = mapped_column(String(300))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # up to 100 MB: loaded only when read
    encoding: Mapped[str | None] = mapped_column(String(32))
    file_format: Mapped[str] = mapped_column(String(8), default="csv")  # csv, xlsx, xls
    delimiter: Mapped[str | None] = mapped_column(String(1))
    header_row: Mapped[int] = mapped_column(Integer, default=1)  # as a person counts rows: the first is 1
    headers: Mapped[list] = mapped_column(Json, default=list)
    mapping: Mapped[dict] = mapped_column(Json, default=dict)  # column header -> field
    status: Mapped[str] = mapped_column(String(16), default="uploaded")  # uploaded, queued, running, done, failed
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)  # checkpoint: rows fully handled
    ok_rows: Mapped[int] = mapped_column(Integer, default=0)
    error_rows: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list] = mapped_column(Json, default=list)  # [{row, column, reason}]
    message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a worker touching it; stale = resume
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundBatch(Base):
    """A tracking request accepted (validated, answered 200) but not yet stored as events: the durable inbox.

    Append-only for the API; the worker deletes a row in the transaction that stores its messages. A row
    that keeps failing is marked `failed_at` after a few attempts and kept for inspection."""

    __tablename__ = "inbound_batch"
    # the worker takes pending rows (failed_at IS NULL) oldest first, then that workspace's oldest first
    __table_args__ = (Index("ix_inbound_batch_pending", "failed_at", "id"),
                      Index("ix_inbound_batch_workspace_pending", "workspace_id", "failed_at", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    endpoint: Mapped[str] = mapped_column(String(16))  # track, identify, …, batch, import
    message_count: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the request body (JSON, unpacked from gzip)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed processing attempts
    error: Mapped[str | None] = mapped_column(Text)  # the last failure
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # given up: kept, skipped
