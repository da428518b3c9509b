"""Tables of segments: the segment (its rule tree), its materialised members, who entered and left at each
refresh, and the pre-aggregated daily event counts that keep "N times in the last 30 days" fast."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

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


def _move_daily_counts(db, workspace_id: int, winner_id: int, loser_id: int) -> None:
    """Merges move the loser's events to the winner; their folded daily counts follow them."""
    from tutti.reach.segments.eventcounts import move_counts

    move_counts(db, workspace_id=workspace_id, winner_id=winner_id, loser_id=loser_id)


def _register_merge_hook() -> None:
    from tutti.audience.contacts import MERGE_HOOKS

    if _move_daily_counts not in MERGE_HOOKS:
        MERGE_HOOKS.append(_move_daily_counts)


_register_merge_hook()
