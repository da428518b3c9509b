"""Segments' background work: on the one-minute tick, fold new events into the daily counts and new or
changed orders into the order facts, and refresh the segments that are due. Each workspace and segment is its own transaction: one failing is logged and
the others go on."""

from __future__ import annotations

import logging

from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick, task
from tutti.reach.segments import eventcounts, orderfacts, service

log = logging.getLogger(__name__)


def fold_all() -> None:
    database = get_database()
    with database.read_session() as db:
        behind = eventcounts.workspaces_behind(db)
    for workspace_id in behind:
        try:
            eventcounts.fold(database, workspace_id=workspace_id, max_batches=1)
        except Exception:  # the next tick tries again; counts stay exact meanwhile
            log.exception("folding event counts failed", extra={"workspace_id": workspace_id})
    with database.read_session() as db:
        behind = orderfacts.workspaces_behind(db)
    for workspace_id in behind:
        try:
            orderfacts.fold(database, workspace_id=workspace_id)
        except Exception:  # likewise: unfolded contacts are read from their orders meanwhile
            log.exception("folding order facts failed", extra={"workspace_id": workspace_id})


def refresh_due() -> int:
    database = get_database()
    with database.read_session() as db:
        due = service.due_segments(db)
    done = 0
    for workspace_id, segment_id in due:
        try:
            with database.session() as db:
                service.refresh(db, workspace_id=workspace_id, segment_id=segment_id, trigger="schedule")
            done += 1
        except Exception:  # a broken segment must not stop the others
            log.exception("segment refresh failed", extra={"workspace_id": workspace_id, "segment_id": segment_id})
    return done


@on_tick
def segments_tick() -> None:
    fold_all()
    refresh_due()


@task()
def refresh_segment(workspace_id: int, segment_id: int) -> None:
    """On-demand refresh in the background (the message names the row only)."""
    service.refresh_with_counts(get_database(), workspace_id=workspace_id, segment_id=segment_id, trigger="api")
