"""Segments: saved rule trees, live counts, samples, CSV export, and materialised membership.

`refresh` recomputes a segment's members set-based in one transaction: who entered (members now, not in
`segment_member`) and who left (in `segment_member`, not members now) are written to `segment_change`
with the refresh's id, then `segment_member` is brought in line. Journeys trigger on those change rows.
Segments refresh on the one-minute tick when due (`refresh_minutes`, hourly by default) and on demand.
"""

from __future__ import annotations

import csv
import io
import time as clock
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tutti.audience.models import Contact, Identity
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import Database, utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.reach.segments import compiler
from tutti.reach.segments import schema as s
from tutti.reach.segments.models import Segment, SegmentChange, SegmentMember, SegmentRefresh

DEFAULT_REFRESH_MINUTES = 60
EXPORT_COLUMNS = ("contact_id", "name", "email", "phone", "line_uid", "external_id", "city")


# --- rules -------------------------------------------------------------------------------------------------


def check_rules(db: Session, *, workspace_id: int, rules, segment_id: int | None = None) -> dict:
    """Parse and check rules against the workspace (attribute types, referenced segments); returns the
    JSON to store, with each custom attribute's declared type recorded. Errors name the path."""
    parsed = s.parse(rules)
    types = compiler.load_attribute_types(db, workspace_id=workspace_id)
    for path, node in s.walk(parsed.root):
        if isinstance(node, s.Attribute):
            if node.field not in s.BUILTIN_FIELDS and node.field not in types:
                raise InvalidInput(f"{path}.field: no attribute '{node.field}' in this workspace", field=f"{path}.field")
            type_ = compiler.attribute_type(node, types)
            compiler.check_attribute(node, type_, path)
            if node.field not in s.BUILTIN_FIELDS:
                node.type = type_
    # compiling resolves referenced segments (and finds cycles) and checks values such as dates
    compiler.members_select(workspace_id=workspace_id, rules=parsed, db=db, attribute_types=types, segment_id=segment_id)
    return s.dump(parsed)


def members_select(*, workspace_id: int, rules, now: datetime | None = None, db: Session | None = None):
    """SELECT of the member contact ids (column `contact_id`): the contract other parts build on."""
    return compiler.members_select(workspace_id=workspace_id, rules=rules, now=now, db=db)


def count(db: Session, *, workspace_id: int, rules, now: datetime | None = None) -> int:
    statement = compiler.members_select(workspace_id=workspace_id, rules=rules, now=now, db=db)
    return db.scalar(select(func.count()).select_from(statement.subquery()))


# --- segments ----------------------------------------------------------------------------------------------


def get_segment(db: Session, *, workspace_id: int, segment_id: int) -> Segment:
    segment = db.scalar(select(Segment).where(Segment.id == segment_id, Segment.workspace_id == workspace_id))
    if segment is None:
        raise NotFound(f"no segment {segment_id}", field="segment_id")
    return segment


def list_segments(db: Session, *, workspace_id: int) -> list[Segment]:
    return list(db.scalars(select(Segment).where(Segment.workspace_id == workspace_id).order_by(Segment.name)))


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("a segment name needs 1 to 200 characters", field="name")
    return name


def _minutes(value: int | None) -> int:
    if value is None:
        return DEFAULT_REFRESH_MINUTES
    if value < 0 or value > 60 * 24 * 31:
        raise InvalidInput("refresh_minutes is 0 (on demand only) to 44640 (a month)", field="refresh_minutes")
    return value


def create_segment(db: Session, *, workspace_id: int, name: str, rules, description: str = "",
                   refresh_minutes: int | None = None, actor: Actor, created_by: int | None = None) -> Segment:
    stored = check_rules(db, workspace_id=workspace_id, rules=rules)
    segment = Segment(workspace_id=workspace_id, name=_name(name), description=description or "", rules=stored,
                      refresh_minutes=_minutes(refresh_minutes), created_by=created_by)
    try:
        with db.begin_nested():
            db.add(segment)
            db.flush()
    except IntegrityError:
        raise Conflict(f"a segment named '{segment.name}' exists", field="name") from None
    audit.record(db, workspace_id=workspace_id, actor=actor, action="segment.create", target_kind="segment", target_id=segment.id,
                 detail={"name": segment.name})
    return segment


def update_segment(db: Session, *, workspace_id: int, segment_id: int, actor: Actor, name: str | None = None,
                   rules=None, description: str | None = None, refresh_minutes: int | None = None) -> Segment:
    segment = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    if name is not None:
        segment.name = _name(name)
    if description is not None:
        segment.description = description
    if refresh_minutes is not None:
        segment.refresh_minutes = _minutes(refresh_minutes)
    if rules is not None:
        segment.rules = check_rules(db, workspace_id=workspace_id, rules=rules, segment_id=segment_id)
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        raise Conflict(f"a segment named '{segment.name}' exists", field="name") from None
    audit.record(db, workspace_id=workspace_id, actor=actor, action="segment.update", target_kind="segment", target_id=segment.id)
    return segment


def delete_segment(db: Session, *, workspace_id: int, segment_id: int, actor: Actor) -> None:
    segment = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    users = [other.name for other in list_segments(db, workspace_id=workspace_id)
             if other.id != segment_id and f'"segment_id": {segment_id}' in _compact(other.rules)]
    if users:
        raise Conflict(f"segment {segment_id} is used by {', '.join(users)}", field="segment_id")
    db.delete(segment)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="segment.delete", target_kind="segment", target_id=segment_id,
                 detail={"name": segment.name})


def _compact(rules: dict) -> str:
    import json

    return json.dumps(rules, separators=(",", ": "))


# --- refresh -----------------------------------------------------------------------------------------------


def refresh(db: Session, *, workspace_id: int, segment_id: int, now: datetime | None = None,
            trigger: str = "manual") -> tuple[int, int, int]:
    """Materialise the members; record who entered and left. Returns (size, entered, left)."""
    started = clock.perf_counter()
    now = now or utcnow()
    segment = db.scalar(select(Segment).where(Segment.id == segment_id, Segment.workspace_id == workspace_id).with_for_update())
    if segment is None:
        raise NotFound(f"no segment {segment_id}", field="segment_id")
    run = SegmentRefresh(workspace_id=workspace_id, segment_id=segment_id, at=now, trigger=trigger)
    db.add(run)
    db.flush()
    members = compiler.members_select(workspace_id=workspace_id, rules=segment.rules, now=now, db=db, segment_id=segment_id)
    current = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id)
    change_columns = ["workspace_id", "segment_id", "contact_id", "change", "at", "refresh_id"]

    def change_rows(ids, change: str):
        return select(literal(workspace_id), literal(segment_id), ids, literal(change), literal(now, SegmentChange.at.type),
                      literal(run.id))

    # the members' statement one level deep in both: SQLite's parser has a fixed stack, and an RFM rule one
    # level deeper (… NOT IN (SELECT m.contact_id FROM (members) AS m)) overflowed it
    entering = members.subquery("m")
    db.execute(insert(SegmentChange).from_select(
        change_columns, change_rows(entering.c.contact_id, "entered").where(entering.c.contact_id.not_in(current))))
    db.execute(insert(SegmentChange).from_select(
        change_columns, change_rows(SegmentMember.contact_id, "left")
        .where(SegmentMember.segment_id == segment_id, SegmentMember.contact_id.not_in(members))))
    # counted, not taken from rowcount: the PostgreSQL driver answers -1 for INSERT … SELECT here
    tally = dict(db.execute(select(SegmentChange.change, func.count()).where(SegmentChange.refresh_id == run.id)
                            .group_by(SegmentChange.change)).all())
    entered, left = tally.get("entered", 0), tally.get("left", 0)
    changed = select(SegmentChange.contact_id).where(SegmentChange.refresh_id == run.id)
    db.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment_id,
                                           SegmentMember.contact_id.in_(changed.where(SegmentChange.change == "left")))
               .execution_options(synchronize_session=False))
    db.execute(insert(SegmentMember).from_select(
        ["segment_id", "contact_id", "workspace_id", "since"],
        select(literal(segment_id), SegmentChange.contact_id, literal(workspace_id), literal(now, SegmentMember.since.type))
        .where(SegmentChange.refresh_id == run.id, SegmentChange.change == "entered")))
    size = db.scalar(select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == segment_id))
    run.size, run.entered, run.left = size, entered, left
    run.seconds = round(clock.perf_counter() - started, 3)
    segment.size, segment.refreshed_at = size, now
    db.flush()
    return size, entered, left


def due_segments(db: Session, *, now: datetime | None = None) -> list[tuple[int, int]]:
    """(workspace_id, segment_id) of segments whose scheduled refresh is due."""
    now = now or utcnow()
    rows = db.execute(select(Segment.workspace_id, Segment.id, Segment.refresh_minutes, Segment.refreshed_at)
                      .where(Segment.refresh_minutes > 0))
    return [(w, i) for w, i, minutes, at in rows if at is None or at + timedelta(minutes=minutes) <= now]


def refresh_with_counts(database: Database, *, workspace_id: int, segment_id: int, trigger: str = "manual") -> tuple[int, int, int]:
    """Fold new events and orders into the state first (so the refresh reads few raw rows), then refresh."""
    from tutti.reach.segments import eventcounts, orderfacts

    eventcounts.fold(database, workspace_id=workspace_id)
    orderfacts.fold(database, workspace_id=workspace_id)
    with database.session() as db:
        return refresh(db, workspace_id=workspace_id, segment_id=segment_id, trigger=trigger)


def changes(db: Session, *, workspace_id: int, segment_id: int, after_id: int = 0, limit: int = 1000) -> list[SegmentChange]:
    """Entered/left rows after an id, oldest first: what a journey reads to trigger."""
    return list(db.scalars(select(SegmentChange).where(SegmentChange.workspace_id == workspace_id, SegmentChange.segment_id == segment_id,
                                                       SegmentChange.id > after_id).order_by(SegmentChange.id).limit(limit)))


# --- members: sample, pages, export ------------------------------------------------------------------------


def _identity(kind: str, workspace_id: int):
    return (select(func.min(Identity.value)).where(Identity.contact_id == Contact.id, Identity.workspace_id == workspace_id,
                                                   Identity.kind == kind).correlate(Contact).scalar_subquery().label(kind))


def _people(workspace_id: int, ids_select):
    ids = ids_select.subquery("ids")
    return (select(Contact.id.label("contact_id"), Contact.name, _identity("email", workspace_id), _identity("phone", workspace_id),
                   _identity("line_uid", workspace_id), _identity("external_id", workspace_id), Contact.city)
            .join(ids, ids.c.contact_id == Contact.id))


def members_page(db: Session, *, workspace_id: int, rules, after: int = 0, limit: int = 50, now: datetime | None = None) -> list[dict]:
    """Members by the rules as they stand (live), by contact id, `limit` after `after`."""
    statement = compiler.members_select(workspace_id=workspace_id, rules=rules, now=now, db=db)
    statement = statement.where(Contact.id > after).order_by(Contact.id).limit(limit)
    return [dict(r._mapping) for r in db.execute(_people(workspace_id, statement).order_by(Contact.id))]


def export_csv(database: Database, *, workspace_id: int, segment_id: int, chunk: int = 5000) -> Iterator[str]:
    """The members at the segment's last refresh as CSV text chunks (with a BOM so Excel reads the
    Chinese), streamed: pages of `chunk` members by contact id, each its own short read transaction, so a
    long download holds nothing open. Callers refresh first (the API does)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(EXPORT_COLUMNS)
    after = 0
    while True:
        with database.read_session() as db:
            ids = (select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id,
                                                          SegmentMember.workspace_id == workspace_id, SegmentMember.contact_id > after)
                   .order_by(SegmentMember.contact_id).limit(chunk))
            rows = [dict(r._mapping) for r in db.execute(_people(workspace_id, ids).order_by(Contact.id))]
        for row in rows:
            writer.writerow([row[c] if row[c] is not None else "" for c in EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < chunk:
            return
        after = rows[-1]["contact_id"]


def refresh_status(segment: Segment, *, now: datetime | None = None) -> dict:
    now = now or utcnow()
    age = None if segment.refreshed_at is None else int((now - segment.refreshed_at).total_seconds() // 60)
    return {"refreshed_at": segment.refreshed_at, "minutes_ago": age, "size": segment.size}


def recent_refreshes(db: Session, *, workspace_id: int, segment_id: int, limit: int = 10) -> list[SegmentRefresh]:
    return list(db.scalars(select(SegmentRefresh).where(SegmentRefresh.workspace_id == workspace_id, SegmentRefresh.segment_id == segment_id)
                           .order_by(SegmentRefresh.id.desc()).limit(limit)))


def clear_members(db: Session, *, workspace_id: int, segment_id: int) -> None:
    db.execute(update(Segment).where(Segment.id == segment_id, Segment.workspace_id == workspace_id).values(size=None, refreshed_at=None))
    db.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment_id))
