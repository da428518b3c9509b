"""Tables of segments: the segment (its rule tree), its materialised members, who entered and left at each
refresh, and the state kept between refreshes so counts read little: daily event counts ("N times in the
last 30 days") and order facts per contact (RFM, "bought category X in a window")."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutti.audience.models import Money
from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow


class Segment(Base):
    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    rules: Mapped[dict] = mapped_column(Json)  # schema.Rules as JSON, with its version
    refresh_minutes: Mapped[int] = mapped_column(Integer, default=60)  # 0: only on demand
    size: Mapped[int | None] = mapped_column(Integer)  # members at the last refresh
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SegmentMember(Base):
    """Who was in the segment at its last refresh."""

    __tablename__ = "segment_member"
    __table_args__ = (Index("ix_segment_member_contact", "workspace_id", "contact_id"),)

    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segment.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentRefresh(Base):
    """One refresh of a segment: when, how big, how many entered and left."""

    __tablename__ = "segment_refresh"
    __table_args__ = (Index("ix_segment_refresh_segment", "workspace_id", "segment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segment.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer, default=0)
    entered: Mapped[int] = mapped_column(Integer, default=0)
    left: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float | None] = mapped_column(Float)  # how long it took
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual, schedule, api, campaign


class SegmentChange(Base):
    """Who entered or left a segment at a refresh. Journeys trigger on these rows (append-only)."""

    __tablename__ = "segment_change"
    __table_args__ = (Index("ix_segment_change_segment", "workspace_id", "segment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(BigId, ForeignKey("segment.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    change: Mapped[str] = mapped_column(String(8))  # entered, left
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refresh_id: Mapped[int] = mapped_column(BigId, ForeignKey("segment_refresh.id", ondelete="CASCADE"))


class EventDailyCount(Base):
    """Events per contact, name and UTC day, for events up to the watermark's id: "N times in 30 days"
    reads this small table plus the few newer events, instead of every event."""

    __tablename__ = "event_daily_count"
    __table_args__ = (Index("ix_event_daily_count_name_day", "workspace_id", "name", "day", "contact_id", "n"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class EventCountWatermark(Base):
    """The highest event id folded into event_daily_count, per workspace."""

    __tablename__ = "event_count_watermark"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigId, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderSummary(Base):
    """Per live buyer (a live contact with at least one order that counts, as of the order-facts watermark):
    how many orders, how much spent, when the last one was placed. RFM quintiles read these rows in index
    order instead of aggregating every order each time."""

    __tablename__ = "order_summary"
    __table_args__ = (
        Index("ix_order_summary_spent", "workspace_id", "spent", "contact_id"),
        Index("ix_order_summary_orders", "workspace_id", "orders", "contact_id"),
        Index("ix_order_summary_last", "workspace_id", "last_order_at", "contact_id"),
    )

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    spent: Mapped[float] = mapped_column(Money)
    last_order_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderBought(Base):
    """Per contact and category (kind 'category') or sku (kind 'sku'): when a counted order with a line of
    it (not refunded) was last placed. "Bought X within N days" is `last_at >= now - N days`."""

    __tablename__ = "order_bought"
    __table_args__ = (Index("ix_order_bought_value", "workspace_id", "kind", "value", "last_at", "contact_id"),)

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # category, sku
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderFactChange(Base):
    """Contacts whose order facts changed other than by a new order: an order updated or its status changed,
    a merge, an erasure. Appended in the changing transaction; the fold recomputes the contacts above its
    watermark and deletes the rows it has folded."""

    __tablename__ = "order_fact_change"
    __table_args__ = (Index("ix_order_fact_change_workspace", "workspace_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId)  # no foreign key: a change log outlives nothing it points at
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderFactWatermark(Base):
    """How far order_summary and order_bought are folded, per workspace: orders up to `last_order_id` and
    changes up to `last_change_id`. Contacts with a newer order or change are read from the orders."""

    __tablename__ = "order_fact_watermark"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    last_order_id: Mapped[int] = mapped_column(BigId, default=0)
    last_change_id: Mapped[int] = mapped_column(BigId, default=0)
    buyers: Mapped[int] = mapped_column(Integer, default=0)  # rows in order_summary: RFM's n without counting them
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _move_daily_counts(db, workspace_id: int, winner_id: int, loser_id: int) -> None:
    """Merges move the loser's events to the winner; their folded daily counts follow them."""
    from tutti.reach.segments.eventcounts import move_counts

    move_counts(db, workspace_id=workspace_id, winner_id=winner_id, loser_id=loser_id)


def _merged(db, workspace_id: int, winner_id: int, loser_id: int) -> None:
    """The loser's orders are the winner's now, and the loser leaves the RFM ranking."""
    from tutti.reach.segments.orderfacts import note_changes

    note_changes(db, workspace_id, [winner_id, loser_id])


def _erased(db, workspace_id: int, contact_id: int) -> dict[str, int]:
    """An erased contact keeps its orders but is no longer a buyer anyone ranks against."""
    from tutti.reach.segments.orderfacts import note_changes

    note_changes(db, workspace_id, [contact_id])
    return {}


def _orders_changed(db, workspace_id: int, contact_ids: list[int]) -> None:
    from tutti.reach.segments.orderfacts import note_changes

    note_changes(db, workspace_id, contact_ids)


def _register_hooks() -> None:
    from tutti.audience.commerce import ORDER_CHANGE_HOOKS
    from tutti.audience.contacts import MERGE_HOOKS
    from tutti.audience.privacy import ERASE_HOOKS

    for hooks, hook in ((MERGE_HOOKS, _move_daily_counts), (MERGE_HOOKS, _merged), (ERASE_HOOKS, _erased),
                        (ORDER_CHANGE_HOOKS, _orders_changed)):
        if hook not in hooks:
            hooks.append(hook)


_register_hooks()
