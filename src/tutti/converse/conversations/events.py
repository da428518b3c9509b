"""Work that must wait for the commit: real-time events and deliveries to channels.

Services run inside the caller's transaction; telling the inbox "a message arrived" (or pushing it to
LINE) before the commit would let a client reload and not find it, and a rollback would have told a lie.
So services queue callbacks on the session, run by SQLAlchemy's after_commit (dropped on rollback)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("tutti.conversations")
_KEY = "converse_after_commit"


def after_commit(db: Session, callback: Callable[[], None]) -> None:
    db.info.setdefault(_KEY, []).append(callback)


def publish(db: Session, workspace_id: int, payload: dict) -> None:
    """Publish a realtime event once this transaction commits (nothing happens if realtime is absent)."""
    def send() -> None:
        try:
            from tutti.converse import realtime
        except ImportError:
            return
        realtime.publish(workspace_id, payload)

    after_commit(db, send)


@event.listens_for(Session, "after_commit")
def _run(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT released: the real commit is still to come
        return
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit work failed")


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    # fires for the outermost rollback only (a SAVEPOINT rolled back is not a DBAPI rollback); what a
    # rolled-back savepoint queued is dropped with the whole transaction's, or sent with its commit —
    # a spurious "something changed" only costs a reload
    if session.in_nested_transaction():
        return
    session.info.pop(_KEY, None)
