"""One sender per campaign at a time, and a lock that dies with its holder.

The sender that holds a campaign's lock owns every delivery of it that is `sending`; a new sender that
gets the lock therefore knows such rows were left by a dead one and resends them with the same keys.
The lock must vanish when its process is killed (SIGKILL included), never wait for a timeout:
PostgreSQL: a session-level advisory lock on a connection of its own (the server drops it when the
connection closes); SQLite: an flock on a file beside the database file (the kernel drops it when the
process dies), which every process using that database file sees.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tutti.platform.db import Database

_LOCK_CLASS = 0x63616D70  # "camp": the first half of the two-int advisory lock key; the campaign id is the second


@contextmanager
def campaign_lock(database: Database, campaign_id: int) -> Iterator[bool]:
    """Yields True when this caller holds the campaign's lock, False when another sender does."""
    if database.dialect == "postgresql":
        with _postgres_lock(database, campaign_id) as held:
            yield held
    else:
        with _file_lock(database, campaign_id) as held:
            yield held


@contextmanager
def _postgres_lock(database: Database, campaign_id: int) -> Iterator[bool]:
    connection = database.engine.connect()
    try:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:c, :k)"),
                                       {"c": _LOCK_CLASS, "k": campaign_id % 2**31}).scalar())
        connection.commit()  # the lock is the session's; no transaction stays open on this connection
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:c, :k)"), {"c": _LOCK_CLASS, "k": campaign_id % 2**31})
                connection.commit()
    finally:
        connection.close()


def _lock_path(database: Database, campaign_id: int) -> str:
    path = make_url(database.url).database or "memory"
    return f"{os.path.abspath(path)}.campaign-{campaign_id}.lock"


@contextmanager
def _file_lock(database: Database, campaign_id: int) -> Iterator[bool]:
    path = _lock_path(database, campaign_id)
    handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)
