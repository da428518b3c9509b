"""The tracking API's request path: validate a request fully (endpoint, body, write key, every message), keep
it durably as one row of the inbox, then wake the worker. A 200 means that row is committed; the worker
(`inbox.process_inbound`) stores the messages. A refused request stores nothing."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import insert, select

from tutti.audience.models import InboundBatch
from tutti.audience.tracking.message import Message
from tutti.audience.tracking.parse import parse_request
from tutti.audience.tracking.wire import TYPES, TrackingError, TrackingUnauthorized, unpack_body, write_key_of
from tutti.platform import metrics
from tutti.platform.db import Database, get_database, utcnow
from tutti.platform.models import Workspace

log = logging.getLogger("tutti.tracking")

_WRITE_KEY_SECONDS = 5.0
_write_keys: dict[tuple[str, str], tuple[float, int, str]] = {}
_last_accept = 0.0  # time.monotonic() of this process's last accepted request (read by inbox)


def _workspace_of(database: Database, write_key: str) -> tuple[int, str]:
    """The workspace id and phone region of a write key. Remembered for a few seconds: a busy shop sends
    many requests a second, and a rotated key stops working within those seconds."""
    cache_key = (database.url, write_key)
    hit = _write_keys.get(cache_key)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1], hit[2]
    with database.read_session() as db:
        row = db.execute(select(Workspace.id, Workspace.default_region).where(Workspace.write_key == write_key)).first()
    if row is None:
        raise TrackingUnauthorized("this write key is not valid", field="authorization")
    if len(_write_keys) > 10_000:
        _write_keys.clear()
    _write_keys[cache_key] = (now + _WRITE_KEY_SECONDS, row[0], row[1])
    return row[0], row[1]


def validate(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
             database: Database | None = None, received_at: datetime | None = None) -> tuple[int, bytes, list[Message]]:
    """Everything the API checks before answering: the workspace, the JSON bytes and the valid messages.
    Raises TrackingError (400/401) naming what is wrong; nothing is stored."""
    database = database or get_database()
    if endpoint not in TYPES and endpoint not in ("batch", "import"):
        raise TrackingError(f"unknown endpoint '/v1/{endpoint}'", field="type")
    raw, payload = unpack_body(body, content_encoding=content_encoding, single=endpoint in TYPES)
    write_key = write_key_of(authorization, payload)
    workspace_id, region = _workspace_of(database, write_key)
    messages = parse_request(payload, endpoint=endpoint, region=region, received_at=received_at)
    return workspace_id, raw, messages


def accept(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
           database: Database | None = None) -> tuple[int, int]:
    """Validate a request fully, then store it durably as one row of the inbox; returns (batch id, messages).

    The caller answers 200 once this returns (the row is committed) and wakes the worker; the worker
    stores the messages (`process_inbound`). A refused request stores nothing.

    The parsed messages are not kept for the worker, even one in this process: parsing again costs less
    than what holding thousands of Message objects did to the API (the garbage collector walking them
    during a burst took the SQLite API from 25k to 14k events/s in bench/ingest.py)."""
    database = database or get_database()
    received_at = utcnow()
    workspace_id, raw, messages = validate(endpoint=endpoint, body=body, authorization=authorization,
                                           content_encoding=content_encoding, database=database, received_at=received_at)
    if not messages:  # an empty batch: valid, nothing to keep
        return 0, 0
    with database.session() as db:
        batch_id = db.execute(insert(InboundBatch.__table__).returning(InboundBatch.__table__.c.id), {
            "workspace_id": workspace_id, "received_at": received_at, "endpoint": endpoint,
            "message_count": len(messages), "payload": raw, "attempts": 0}).scalar_one()
    global _last_accept
    _last_accept = time.monotonic()
    metrics.EVENTS_ACCEPTED.inc(len(messages))
    return batch_id, len(messages)


def ingest(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
           database: Database | None = None) -> int:
    """The tracking API's request path: accept into the inbox (committed), then wake the worker; returns
    the number of messages accepted. The queue message is only a wake-up call: a lost one delays the batch
    until the next tick, and a failing queue never turns an accepted request into an error."""
    batch_id, accepted = accept(endpoint=endpoint, body=body, authorization=authorization, content_encoding=content_encoding,
                                database=database)
    if batch_id:
        from tutti.audience import jobs  # the jobs module imports this one

        try:
            jobs.process_inbound_task()  # after the commit: an inline run (tests) must not wait on our own lock
        except Exception:
            log.exception("tracking: could not wake the worker; batch %d waits for the next tick", batch_id)
    return accepted
