"""Audience's background work: imports and periodic housekeeping."""

from __future__ import annotations

from tutti.audience import tags
from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick


@on_tick
def sweep_expired_tags() -> None:
    with get_database().session() as db:
        tags.sweep_expired(db)
