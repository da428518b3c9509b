"""Audience's background work: imports and periodic housekeeping."""

from __future__ import annotations

from tutti.audience import imports, tags
from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick, task


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
