"""Audience's background work: the tracking API's inbox, imports and periodic housekeeping."""

from __future__ import annotations

import threading

from tutti.audience import imports, tags, tracking
from tutti.platform.db import get_database
from tutti.platform.jobs import huey, on_tick, task


@on_tick
def sweep_expired_tags() -> None:
    with get_database().session() as db:
        tags.sweep_expired(db)


@task()
def run_import(import_id: int) -> None:
    """The import job; the message only names the row, so a repeated or late message is harmless."""
    imports.run(import_id)


@on_tick
def resume_stalled_imports() -> None:
    """Imports whose worker died (or whose queue message was lost) are picked up again at their checkpoint."""
    with get_database().read_session() as db:
        stalled = imports.stalled_imports(db)
    for import_id in stalled:
        run_import(import_id)


_draining = threading.Lock()
_wanted = threading.Event()


def drain_inbox() -> None:
    """Store the tracking API's accepted batches until the inbox is empty.

    Every accepted request wakes the worker, so many wake-ups arrive while a run is going: one run per
    process at a time, and a wake-up during a run makes that run look again before it ends (so none is
    lost). Other processes (`tutti worker` ×N on PostgreSQL) drain in parallel, each taking different
    batches (FOR UPDATE SKIP LOCKED). When the worker shares the process with the API (embedded), a
    burst of requests goes first (`tracking.process_inbound`, defer_to_requests); an immediate queue
    (tests) stores before the request is answered."""
    _wanted.set()
    while _wanted.is_set():
        if not _draining.acquire(blocking=False):
            return  # the running drain sees _wanted once it releases the lock
        try:
            _wanted.clear()
            tracking.process_inbound(defer_to_requests=not huey.immediate)
        finally:
            _draining.release()


@task()
def process_inbound_task() -> None:
    """Wake-up call sent after each accepted tracking request; the batches themselves are rows."""
    drain_inbox()


@on_tick
def process_inbound_backlog() -> None:
    """Batches whose wake-up was lost, or whose worker died mid-transaction (rolled back), are stored here."""
    drain_inbox()
