"""The worker's side of the inbox: storing the pending batches, oldest first, one workspace at a time and
several batches per transaction; retrying after deadlocks; finding a batch that breaks storing among the
others and setting it aside after MAX_ATTEMPTS; letting a burst of requests in the same process go first;
the backlog and the batches set aside."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select, true, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from tutti.audience.models import InboundBatch
from tutti.audience.tracking import intake
from tutti.audience.tracking.message import Message
from tutti.audience.tracking.parse import parse_request
from tutti.audience.tracking.storing import store
from tutti.audience.tracking.wire import TYPES, unpack_body
from tutti.platform import metrics
from tutti.platform.db import Database, get_database, utcnow
from tutti.platform.models import Workspace

log = logging.getLogger("tutti.tracking")

MAX_ATTEMPTS = 3  # failed processing attempts before a batch is set aside (kept, marked failed_at)
PROCESS_MAX_MESSAGES = 5_000  # messages stored per processing transaction (several batches at once)
BUSY_DEFER_SECONDS = 30.0  # the longest an embedded worker lets batches wait while its API is busy
_QUIET_SECONDS = 0.2  # no request accepted for this long: the API is not busy
_ERROR_CHARS = 2_000


_RETRYABLE = ("40P01", "40001")  # deadlock detected, serialization failure


def _retryable(error: Exception) -> bool:
    if isinstance(error, IntegrityError):  # a concurrent request created the same identity first
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in _RETRYABLE or "database is locked" in str(error)


@dataclass
class _Claimed:
    id: int
    workspace_id: int
    received_at: datetime
    endpoint: str
    message_count: int
    messages: list[Message] = field(default_factory=list)


class _BatchFailed(Exception):
    def __init__(self, batch_id: int, error: BaseException):
        super().__init__(f"batch {batch_id}: {error}")
        self.batch_id = batch_id
        self.error = error


class _GroupFailed(Exception):
    """Storing several batches together failed (rolled back), not for the database's sake."""

    def __init__(self, batch_ids: list[int], error: BaseException):
        super().__init__(f"batches {batch_ids}: {error}")
        self.batch_ids = batch_ids
        self.error = error


_average_messages = 100.0  # per batch, learned: how many rows to claim for one transaction's budget


def _claim_limit(max_messages: int) -> int:
    return max(2, min(500, int(max_messages / max(_average_messages, 1.0)) + 2))


_WORKSPACE_LOCK_CLASS = 0x74757474  # "tutt": the high half of the advisory lock key of a workspace's inbox


def _claim(db: Session, *, skip: set[int], only: int | None, max_messages: int) -> list[_Claimed]:
    """The oldest pending batches of one workspace, up to max_messages together (at least one), locked
    for this transaction.

    PostgreSQL: the oldest workspace with pending batches whose advisory lock this transaction gets, then
    its batches FOR UPDATE SKIP LOCKED. Several workers share the load across workspaces while each
    workspace's batches are stored by one worker at a time, in order: two workers storing the same
    shop's customers at once mostly wait on each other's row locks (and deadlock), which measured at
    half the rate of one. SQLite: the write transaction (BEGIN IMMEDIATE) already has the database to
    itself; the batches are those of the oldest one's workspace."""
    table = InboundBatch.__table__
    c = table.c
    pending = [c.failed_at.is_(None)]
    if only is not None:
        pending.append(c.id == only)
    elif skip:
        pending.append(c.id.not_in(skip))
    postgres = db.get_bind().dialect.name == "postgresql"
    candidates = list(dict.fromkeys(db.scalars(select(c.workspace_id).where(*pending).order_by(c.id).limit(100 if postgres else 1))))
    workspace_id = None
    for candidate in candidates:
        if not postgres or db.scalar(sql_text("SELECT pg_try_advisory_xact_lock(CAST(:key AS bigint))"),
                                     {"key": (_WORKSPACE_LOCK_CLASS << 32) | (candidate & 0xFFFFFFFF)}):
            workspace_id = candidate
            break
    if workspace_id is None:
        return []
    query = (select(c.id, c.workspace_id, c.received_at, c.endpoint, c.message_count).where(*pending, c.workspace_id == workspace_id)
             .order_by(c.id).limit(_claim_limit(max_messages)))
    if postgres:
        query = query.with_for_update(skip_locked=True)
    taken: list[_Claimed] = []
    total = 0
    for row in db.execute(query):
        if taken and total + row.message_count > max_messages:
            break
        taken.append(_Claimed(row.id, row.workspace_id, row.received_at, row.endpoint, row.message_count))
        total += row.message_count
    return taken


def _parse_claimed(db: Session, claimed: list[_Claimed]) -> None:
    """Read each claimed batch's payload and parse it again, as at the request (same received_at); a batch
    that no longer parses raises _BatchFailed naming it."""
    table = InboundBatch.__table__
    payloads = dict(db.execute(select(table.c.id, table.c.payload).where(table.c.id.in_([b.id for b in claimed]))).all())
    regions = dict(db.execute(select(Workspace.id, Workspace.default_region).where(
        Workspace.id.in_({b.workspace_id for b in claimed}))).all())
    for batch in claimed:
        try:
            _, payload = unpack_body(bytes(payloads[batch.id]), content_encoding=None, single=batch.endpoint in TYPES)
            batch.messages = parse_request(payload, endpoint=batch.endpoint, region=regions[batch.workspace_id],
                                           received_at=batch.received_at)
        except Exception as error:
            raise _BatchFailed(batch.id, error) from error


def _transient(error: BaseException) -> bool:
    """The database, not the batch, is the problem (connection lost, locked, timed out): retry later, as is."""
    return isinstance(error, (OperationalError, InterfaceError)) or bool(getattr(error, "connection_invalidated", False))


def _store_claimed(database: Database, *, skip: set[int], only: int | None, max_messages: int) -> tuple[list[_Claimed], dict[str, int]] | None:
    """One transaction: claim batches, store their messages, delete them. None when nothing is pending.
    Retried whole after a deadlock or a concurrent insert of the same identity.

    On SQLite the batches are read and parsed before the write transaction (which locks the whole
    database, the API's inserts included) and, inside it, only those still pending are stored: another
    process may have stored some meanwhile. On PostgreSQL claiming locks only the rows."""
    global _average_messages
    sqlite_engine = database.dialect == "sqlite"
    table = InboundBatch.__table__
    for attempt in range(5):
        try:
            claimed: list[_Claimed] = []
            if sqlite_engine:
                with database.read_session() as db:
                    claimed = _claim(db, skip=skip, only=only, max_messages=max_messages)
                    if not claimed:
                        return None
                    _parse_claimed(db, claimed)
            with database.session() as db:
                if sqlite_engine:
                    pending = set(db.scalars(select(table.c.id).where(table.c.id.in_([b.id for b in claimed]), table.c.failed_at.is_(None))))
                    claimed = [b for b in claimed if b.id in pending]
                    if not claimed:  # stored by another process meanwhile
                        return [], {}
                else:
                    claimed = _claim(db, skip=skip, only=only, max_messages=max_messages)
                    if not claimed:
                        return None
                    _parse_claimed(db, claimed)
                _average_messages = 0.8 * _average_messages + 0.2 * (sum(b.message_count for b in claimed) / len(claimed))
                by_workspace: dict[int, list[Message]] = defaultdict(list)
                for batch in claimed:  # oldest first, so a later identify's traits win
                    by_workspace[batch.workspace_id].extend(batch.messages)
                counts: dict[str, int] = defaultdict(int)
                for workspace_id, messages in by_workspace.items():
                    for kind, n in store(db, workspace_id=workspace_id, messages=messages).items():
                        counts[kind] += n
                db.execute(delete(table).where(table.c.id.in_([b.id for b in claimed])))
            return claimed, counts
        except _BatchFailed:
            raise
        except Exception as error:
            if isinstance(error, (OperationalError, IntegrityError)) and attempt < 4 and _retryable(error):
                log.info("tracking: retrying inbox batches after %s", getattr(getattr(error, "orig", None), "sqlstate", "lock"))
                continue
            if _transient(error):
                raise
            raise _GroupFailed([b.id for b in claimed], error) from error
    raise AssertionError("unreachable")


def _record_failure(database: Database, batch_id: int, error: BaseException) -> bool:
    """Count a failed attempt on a batch; after MAX_ATTEMPTS it is set aside (failed_at). True if set aside."""
    table = InboundBatch.__table__
    text = f"{type(error).__name__}: {error}"[:_ERROR_CHARS]
    with database.session() as db:
        query = select(table.c.attempts, table.c.workspace_id).where(table.c.id == batch_id, table.c.failed_at.is_(None))
        if db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = db.execute(query).first()
        if row is None:  # another worker has it, or it is gone
            return False
        attempts = row.attempts + 1
        given_up = attempts >= MAX_ATTEMPTS
        db.execute(update(table).where(table.c.id == batch_id).values(
            attempts=attempts, error=text, failed_at=utcnow() if given_up else None))
    if given_up:
        metrics.INBOUND_FAILED.inc()
        log.error("tracking: inbox batch %d set aside after %d failed attempts: %s", batch_id, attempts, text,
                  extra={"batch_id": batch_id, "workspace_id": row.workspace_id, "attempts": attempts})
    else:
        log.warning("tracking: inbox batch %d failed (attempt %d of %d): %s", batch_id, attempts, MAX_ATTEMPTS, text,
                    extra={"batch_id": batch_id, "workspace_id": row.workspace_id, "attempts": attempts})
    return given_up


def _defer_to_requests(database: Database) -> None:
    """While this process's API is accepting requests, wait (the worker and the API share the process and,
    on SQLite, the write lock) — but never let the oldest pending batch wait more than BUSY_DEFER_SECONDS."""
    while time.monotonic() - intake._last_accept < _QUIET_SECONDS:
        table = InboundBatch.__table__
        with database.read_session() as db:
            oldest = db.scalar(select(table.c.received_at).where(table.c.failed_at.is_(None)).order_by(table.c.id).limit(1))
        if oldest is None or (utcnow() - oldest).total_seconds() >= BUSY_DEFER_SECONDS:
            return
        time.sleep(0.05)


def process_inbound(*, database: Database | None = None, max_messages: int = PROCESS_MAX_MESSAGES,
                    defer_to_requests: bool = False) -> dict[str, int]:
    """Store the inbox's pending batches, oldest first, until none is left; returns what was done.

    Each transaction takes several batches (up to max_messages), runs `store` on all their messages and
    deletes the batch rows, so a crash anywhere loses nothing and stores nothing twice (and a replay is
    harmless anyway: messages are de-duplicated by messageId). When a transaction fails for a reason that
    is not the database's (a bug, a payload that no longer parses), its batches are stored one by one; the
    one that fails gets an attempt counted and is skipped for the rest of this run, and after MAX_ATTEMPTS
    runs it is set aside, kept with its error. A database problem (connection lost, locked) is raised as
    is: nothing was changed, and the next run or the one-minute tick starts again.

    defer_to_requests (the embedded worker, in the API's own process): during a burst of requests the
    API goes first and the batches wait, at most BUSY_DEFER_SECONDS, then both share the process."""
    database = database or get_database()
    skip: set[int] = set()
    done = {"batches": 0, "messages": 0, "stored": 0, "failed": 0, "set_aside": 0}

    def tally(result) -> None:
        claimed, counts = result
        done["batches"] += len(claimed)
        done["messages"] += sum(b.message_count for b in claimed)
        done["stored"] += sum(counts.values())
        for kind, n in counts.items():
            metrics.EVENTS_INGESTED.labels(kind).inc(n)

    def fail(batch_id: int, error: BaseException) -> None:
        skip.add(batch_id)
        done["failed"] += 1
        if _record_failure(database, batch_id, error):
            done["set_aside"] += 1

    while True:
        if defer_to_requests:
            _defer_to_requests(database)
        try:
            result = _store_claimed(database, skip=skip, only=None, max_messages=max_messages)
        except _BatchFailed as failed:
            fail(failed.batch_id, failed.error)
            continue
        except _GroupFailed as group:
            error = group.error
            # one of these batches is bad, or several: store them one by one to find out which
            ids = group.batch_ids
            if not ids:  # failed before it knew its batches: the oldest ones
                table = InboundBatch.__table__
                with database.read_session() as db:
                    ids = list(db.scalars(select(table.c.id).where(table.c.failed_at.is_(None), table.c.id.not_in(skip) if skip else true())
                                          .order_by(table.c.id).limit(_claim_limit(max_messages))))
            progress = done["batches"] + done["failed"]
            for batch_id in ids:
                try:
                    single = _store_claimed(database, skip=skip, only=batch_id, max_messages=max_messages)
                except _BatchFailed as failed:
                    fail(failed.batch_id, failed.error)
                    continue
                except _GroupFailed as alone:
                    log.debug("tracking: batch %d failed alone", batch_id, exc_info=alone.error)
                    fail(batch_id, alone.error)
                    continue
                if single is not None:
                    tally(single)
            if done["batches"] + done["failed"] == progress:  # all taken by other workers meanwhile: leave it to them
                log.warning("tracking: inbox batches failed together but none alone: %s", error)
                return done
            continue
        if result is None:
            return done
        tally(result)


def backlog(database: Database | None = None) -> tuple[int, int]:
    """Pending inbox batches and the messages they hold (set-aside batches excluded)."""
    database = database or get_database()
    table = InboundBatch.__table__
    with database.read_session() as db:
        batches, messages = db.execute(select(func.count(), func.coalesce(func.sum(table.c.message_count), 0))
                                       .where(table.c.failed_at.is_(None))).one()
    return int(batches), int(messages)


def set_aside(database: Database | None = None, *, workspace_id: int) -> list[dict]:
    """The workspace's batches given up on, newest first, for inspection."""
    database = database or get_database()
    table = InboundBatch.__table__
    with database.read_session() as db:
        rows = db.execute(select(table.c.id, table.c.received_at, table.c.endpoint, table.c.message_count, table.c.attempts,
                                 table.c.error, table.c.failed_at)
                          .where(table.c.workspace_id == workspace_id, table.c.failed_at.is_not(None)).order_by(table.c.id.desc()))
        return [dict(row._mapping) for row in rows]
