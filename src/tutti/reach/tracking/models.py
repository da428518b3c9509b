"""Tables of tracking: the links of a campaign's messages, clicks, e-mail opens and conversions.

Campaign, variant and delivery ids are plain columns, not foreign keys: clicks and opens are append-only
and high-volume (designed for partitioning by time on PostgreSQL), and the campaign tables belong to the
campaigns package. Contacts are foreign keys so erasing a person removes their clicks too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, UTCDateTime, utcnow

Money = Numeric(14, 2, asdecimal=False)


class Link(Base):
    """One tracked URL of one message: (campaign, variant, position). Recipients' links are not rows: their
    codes carry (delivery id, position) signed with the server's secret."""

    __tablename__ = "link"
    __table_args__ = (UniqueConstraint("workspace_id", "campaign_id", "variant_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId)
    variant_id: Mapped[int] = mapped_column(BigId, default=0)  # 0: a message without variants
    position: Mapped[int] = mapped_column(Integer)  # order of first appearance in the message, from 0
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Click(Base):
    """A person opened a tracked link. Every click is kept: reports count total and unique clicks."""

    __tablename__ = "click"
    __table_args__ = (
        Index("ix_click_campaign_time", "workspace_id", "campaign_id", "clicked_at"),
        Index("ix_click_contact_time", "workspace_id", "contact_id", "clicked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    link_id: Mapped[int] = mapped_column(BigId, ForeignKey("link.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId)
    variant_id: Mapped[int | None] = mapped_column(BigId)
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(300))


class MessageOpen(Base):
    """An e-mail open seen through the tracking pixel (every load is kept; reports count unique opens)."""

    __tablename__ = "message_open"
    __table_args__ = (Index("ix_message_open_campaign_time", "workspace_id", "campaign_id", "opened_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId)
    variant_id: Mapped[int | None] = mapped_column(BigId)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Conversion(Base):
    """An order placed within a campaign's attribution window by one of its recipients.

    One row per (campaign, order). `attributed` marks the one campaign that gets the credit for an order
    (the latest touch: a click if there was one in the window, else a delivery); every campaign whose
    window holds the order keeps a row with attributed false, so treated and hold-out recipients are
    measured by the same rule ("ordered within N days after the send") when lift is computed."""

    __tablename__ = "conversion"
    __table_args__ = (
        UniqueConstraint("workspace_id", "campaign_id", "order_id"),
        Index("ix_conversion_order", "workspace_id", "order_id"),
        Index("ix_conversion_time", "workspace_id", "converted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigId)
    variant_id: Mapped[int | None] = mapped_column(BigId)  # None for the hold-out
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    is_holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    in_window: Mapped[bool] = mapped_column(Boolean, default=True)  # within the window after the send time
    attributed: Mapped[bool] = mapped_column(Boolean, default=False)
    touch: Mapped[str] = mapped_column(String(8))  # click, delivery, send (hold-out / failed delivery)
    delivery_id: Mapped[int | None] = mapped_column(BigId)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the order was placed
    revenue: Mapped[float] = mapped_column(Money, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="TWD")
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _move_engagement(db, workspace_id: int, winner_id: int, loser_id: int) -> None:
    """When contacts merge, their clicks, opens and conversions follow the person (reports count people)."""
    from sqlalchemy import update

    for table in (Click, MessageOpen, Conversion):
        db.execute(update(table).where(table.workspace_id == workspace_id, table.contact_id == loser_id)
                   .values(contact_id=winner_id).execution_options(synchronize_session=False))


def _register_merge_hook() -> None:
    from tutti.audience.contacts import MERGE_HOOKS

    if _move_engagement not in MERGE_HOOKS:
        MERGE_HOOKS.append(_move_engagement)


_register_merge_hook()
