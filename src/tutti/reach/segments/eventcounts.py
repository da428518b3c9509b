"""Daily event counts, folded incrementally from new events only (a watermark on event id).

`event_daily_count(workspace_id, contact_id, name, day, n)` holds, per UTC day, the events with id up to
`event_count_watermark.last_event_id`. `fold` adds the events above the watermark and moves it, in one
transaction, set-based (INSERT … SELECT … GROUP BY … ON CONFLICT add). The compiler counts a window as the
folded days inside it + the raw events of its partial first day + the raw events above the watermark, so
the count is exact whenever fold last ran.

The watermark must never pass an event id that a still-open transaction will commit later (its row would
never be folded). On SQLite writers are serialised, so the highest id seen inside a write transaction is
safe. On PostgreSQL ids come from a sequence and commit out of order, so the highest id is read while
holding `LOCK TABLE event IN SHARE MODE` for an instant: that waits for every open writer of `event` to
finish, and any id handed out afterwards is higher.
"""

from __future__ import annotations

from sqlalchemy import func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tutti.audience.models import Event
from tutti.platform.db import Database, utcnow
from tutti.platform.sql import insert_ignore
from tutti.reach.segments import sqlparts as sp
from tutti.reach.segments.models import EventCountWatermark, EventDailyCount

FOLD_BATCH = 2_000_000  # events per transaction when catching up, so a first fold of 10M events is not one huge transaction


def _insert(db: Session):
    return (postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert)(EventDailyCount.__table__)


def _add_on_conflict(statement):
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "contact_id", "name", "day"],
        set_={"n": EventDailyCount.__table__.c.n + statement.excluded.n})


def safe_max_event_id(database: Database, *, workspace_id: int) -> int:
    """The highest event id below which no event can still appear (see the module's note)."""
    with database.session() as db:
        if db.get_bind().dialect.name == "postgresql":
            db.execute(text("SET LOCAL lock_timeout = '10s'"))
            db.execute(text("LOCK TABLE event IN SHARE MODE"))
        return db.scalar(select(func.coalesce(func.max(Event.id), 0)).where(Event.workspace_id == workspace_id))


def fold(database: Database, *, workspace_id: int, upto: int | None = None, max_batches: int | None = None) -> int:
    """Fold the workspace's events above the watermark into the daily counts, FOLD_BATCH events per
    transaction (at most `max_batches` of them: the tick takes one per minute, so a first fold of a big
    history never holds up the other tick work). Returns the new watermark."""
    upto = safe_max_event_id(database, workspace_id=workspace_id) if upto is None else upto
    batches = 0
    while True:
        with database.session() as db:
            insert_ignore(db, EventCountWatermark, [{"workspace_id": workspace_id, "last_event_id": 0, "updated_at": utcnow()}],
                          conflict=("workspace_id",))
            # the row lock makes a second fold of the same workspace wait, then see the moved watermark
            mark = db.scalar(select(EventCountWatermark.last_event_id)
                             .where(EventCountWatermark.workspace_id == workspace_id).with_for_update())
            if mark >= upto or (max_batches is not None and batches >= max_batches):
                return mark
            batches += 1
            # the batch ends at an existing id so each transaction takes about FOLD_BATCH events
            end = db.scalar(select(Event.id).where(Event.workspace_id == workspace_id, Event.id > mark, Event.id <= upto)
                            .order_by(Event.id).offset(FOLD_BATCH - 1).limit(1)) or upto
            day = sp.utc_day(Event.occurred_at)
            rows = (select(Event.workspace_id, Event.contact_id, Event.name, day.label("day"), func.count().label("n"))
                    .where(Event.workspace_id == workspace_id, Event.id > mark, Event.id <= end)
                    .group_by(Event.workspace_id, Event.contact_id, Event.name, day))
            statement = _add_on_conflict(_insert(db).from_select(["workspace_id", "contact_id", "name", "day", "n"], rows))
            db.execute(statement)
            db.execute(EventCountWatermark.__table__.update()
                       .where(EventCountWatermark.workspace_id == workspace_id)
                       .values(last_event_id=end, updated_at=utcnow()))


def move_counts(db: Session, *, workspace_id: int, winner_id: int, loser_id: int) -> None:
    table = EventDailyCount.__table__
    moved = (select(table.c.workspace_id, literal(winner_id).label("contact_id"), table.c.name, table.c.day, table.c.n)
             .where(table.c.workspace_id == workspace_id, table.c.contact_id == loser_id))
    db.execute(_add_on_conflict(_insert(db).from_select(["workspace_id", "contact_id", "name", "day", "n"], moved)))
    db.execute(table.delete().where(table.c.workspace_id == workspace_id, table.c.contact_id == loser_id))


def workspaces_behind(db: Session) -> list[int]:
    """Workspaces with events above their watermark (a range scan of the event id index per workspace)."""
    from tutti.platform.models import Workspace

    mark = func.coalesce(select(EventCountWatermark.last_event_id)
                         .where(EventCountWatermark.workspace_id == Workspace.id).scalar_subquery(), 0)
    newer = select(Event.id).where(Event.workspace_id == Workspace.id, Event.id > mark).exists()
    return list(db.scalars(select(Workspace.id).where(newer)))
