"""Writing a batch's events as rows of the event table, built as driver parameters: multi-row INSERTs, or
COPY through a temporary table on PostgreSQL when there are many. ON CONFLICT DO NOTHING RETURNING on the
unique (workspace_id, message_id) key is the de-duplication, and tells which messages are new."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy.orm import Session

from tutti.audience.tracking.message import SOURCE, Message
from tutti.platform.db import utcnow

_EVENT_COLUMNS = ("workspace_id", "contact_id", "kind", "name", "occurred_at", "received_at", "properties", "context", "source",
                  "message_id")
_ROWS_PER_STATEMENT = 500  # 5,000 parameters: within SQLite's and PostgreSQL's limits


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's UTCDateTime stores on SQLite (naive UTC, always with microseconds)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond:06d}"


def _insert_events(db: Session, workspace_id: int, messages: list[Message]) -> set[str]:
    """Insert the events, skipping message ids stored before; returns the message ids that are new.

    The unique (workspace_id, message_id) key is the de-duplication: it holds against a concurrent retry
    of the same batch too, and RETURNING tells which messages are new without querying the event table
    first. The rows are those `events.record` writes, but built here as driver parameters (JSON by
    orjson, times pre-formatted) in multi-row statements: the hot path of ingestion, where SQLAlchemy's
    per-value type processing cost more than the database's own work."""
    sqlite_engine = db.get_bind().dialect.name == "sqlite"
    now = utcnow()
    dumps = orjson.dumps
    if sqlite_engine:
        received: dict = {None: _sqlite_time(now)}  # a few distinct times (one per request): format each once
        for m in messages:
            if m.received_at not in received:
                received[m.received_at] = _sqlite_time(m.received_at)
        rows = [(workspace_id, m.contact_id, m.type, m.name, _sqlite_time(m.occurred_at), received[m.received_at],
                 dumps(m.properties).decode(), None if m.context is None else dumps(m.context).decode(), SOURCE, m.message_id)
                for m in messages]
        one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    else:
        rows = [(workspace_id, m.contact_id, m.type, m.name, m.occurred_at, m.received_at or now, dumps(m.properties).decode(),
                 None if m.context is None else dumps(m.context).decode(), SOURCE, m.message_id) for m in messages]
        one = "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"
    inserted: set[str] = set()
    connection = db.connection()
    if not sqlite_engine and len(rows) >= _COPY_FROM_ROWS:
        return _copy_events(connection, rows)
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        sql = (f"INSERT INTO event ({', '.join(_EVENT_COLUMNS)}) VALUES {', '.join([one] * len(chunk))} "
               "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id")
        inserted.update(row[0] for row in connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row)))
    return inserted


_COPY_FROM_ROWS = 100
_EVENT_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS tutti_event_in (workspace_id bigint, contact_id bigint, kind text, name text, "
                  "occurred_at timestamptz, received_at timestamptz, properties jsonb, context jsonb, source text, message_id text)")


def _copy_events(connection, rows: list[tuple]) -> set[str]:
    """PostgreSQL, many rows (the worker stores thousands at once): COPY into a session's temporary table,
    then one INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING; about twice the rate of multi-row INSERTs."""
    raw = connection.connection.driver_connection
    columns = ", ".join(_EVENT_COLUMNS)
    with raw.cursor() as cursor:
        cursor.execute(_EVENT_STAGING)
        with cursor.copy(f"COPY tutti_event_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO event ({columns}) SELECT {columns} FROM tutti_event_in "
                       "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id")
        inserted = {row[0] for row in cursor.fetchall()}
        cursor.execute("TRUNCATE tutti_event_in")  # not DELETE: a temporary table is never vacuumed
    return inserted
