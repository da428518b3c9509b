"""The import job: resume at the checkpoint and write the rest chunk by chunk, each chunk's writes and its
checkpoint in one transaction; and the imports whose worker was lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutti.audience.imports.service import _read, _settings, as_dict
from tutti.audience.imports.validation import Settings, Validation, validate
from tutti.audience.imports.writing import _write_members, _write_orders
from tutti.audience.models import ImportJob
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import Database, get_database, utcnow

CHUNK_SIZE = 1000
STALE_AFTER = timedelta(minutes=2)
MAX_STORED_ERRORS = 10_000


class _Superseded(Exception):
    """Another worker has moved the checkpoint: this one stops without writing."""


def stalled_imports(db: Session, *, now: datetime | None = None) -> list[int]:
    """Imports queued or running whose worker has not been heard of for a while (it died, or the message was lost)."""
    cutoff = (now or utcnow()) - STALE_AFTER
    return list(db.scalars(select(ImportJob.id).where(ImportJob.status.in_(("queued", "running")),
                                                      (ImportJob.heartbeat_at.is_(None)) | (ImportJob.heartbeat_at < cutoff))
                           .order_by(ImportJob.id)))


def run(
    import_id: int,
    *,
    database: Database | None = None,
    chunk_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict | None:
    """The job body: resume the import at its checkpoint and write the rest chunk by chunk."""
    chunk_size = chunk_size or CHUNK_SIZE  # read at call time, so a changed CHUNK_SIZE takes effect
    database = database or get_database()
    with database.session() as db:
        job = db.scalar(select(ImportJob).where(ImportJob.id == import_id).with_for_update())
        if job is None or job.status in ("uploaded", "done"):
            return None
        now = utcnow()
        if job.status == "running" and job.heartbeat_at and now - job.heartbeat_at < STALE_AFTER:
            return None  # a live worker has it
        job.status, job.heartbeat_at, job.message = "running", now, None
        job.started_at = job.started_at or now
        workspace_id, kind, mapping, start_at = job.workspace_id, job.kind, dict(job.mapping), job.processed_rows
        settings = _settings(db, workspace_id)
        table = _read(job)
    try:
        result = validate(table, mapping, kind, settings, sample_size=0)
        position = start_at
        if progress:
            progress(position, result.total_rows)
        while position < result.total_rows:
            end = min(position + chunk_size, result.total_rows)
            _commit_chunk(database, import_id, workspace_id, result, position, end, settings)
            position = end
            if progress:
                progress(position, result.total_rows)
        with database.session() as db:
            job = db.get(ImportJob, import_id)
            if job.status != "running" or job.processed_rows != result.total_rows:
                return None
            job.status, job.finished_at, job.heartbeat_at = "done", utcnow(), utcnow()
            job.message = f"{job.ok_rows} rows imported, {job.error_rows} skipped"
            audit.record(db, workspace_id=workspace_id, actor=Actor.system("import"), action="import.finish",
                         target_kind="import", target_id=import_id, detail={"ok_rows": job.ok_rows, "error_rows": job.error_rows})
            return as_dict(job, errors=None)
    except _Superseded:
        return None
    except Exception as error:
        with database.session() as db:
            job = db.get(ImportJob, import_id)
            if job is not None and job.status == "running":
                job.status = "failed"
                at = table.rows[job.processed_rows][0] if job.processed_rows < table.total_rows else table.header_row
                job.message = f"stopped at row {at}: {error.__class__.__name__}: {error}"[:2000]
        raise


def _commit_chunk(database: Database, import_id: int, workspace_id: int, result: Validation, start: int, end: int,
                  settings: Settings) -> None:
    """One chunk's writes and its checkpoint, in one transaction."""
    with database.session() as db:
        job = db.scalar(select(ImportJob).where(ImportJob.id == import_id).with_for_update())
        if job is None or job.status != "running" or job.processed_rows != start:
            raise _Superseded()
        _write_chunk(db, workspace_id, result, start, end, settings)
        new_errors = result.error_list(start, end)
        bad = sum(1 for index in result.errors if start <= index < end)
        stored = list(job.errors or [])
        stored.extend(new_errors[: max(0, MAX_STORED_ERRORS - len(stored))])
        changed = db.execute(
            update(ImportJob).where(ImportJob.id == import_id, ImportJob.processed_rows == start)
            .values(processed_rows=end, ok_rows=ImportJob.ok_rows + (end - start - bad), error_rows=ImportJob.error_rows + bad,
                    errors=stored, heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            raise _Superseded()


def _write_chunk(db: Session, workspace_id: int, result: Validation, start: int, end: int, settings: Settings) -> None:
    if result.kind == "members":
        _write_members(db, workspace_id, [result.records[i] for i in range(start, end) if i in result.records], result, settings)
    else:
        orders = [o for o in result.orders.values() if o.indexes and start <= o.indexes[0] < end]
        _write_orders(db, workspace_id, orders, settings)
