"""The imports service: upload a file, preview and save its mapping, start it, and show it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience.filereader import Table, read_table
from tutti.audience.imports.fields import _check_kind, fields_for
from tutti.audience.imports.mapping import check_mapping, guess_mapping
from tutti.audience.imports.validation import Settings, Validation, validate
from tutti.audience.models import ImportJob
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.models import Workspace


def _settings(db: Session, workspace_id: int) -> Settings:
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace with id {workspace_id}")
    try:
        zone = ZoneInfo(workspace.timezone or "Asia/Taipei")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Asia/Taipei")
    types = {key: d.type for key, d in attrs.definitions(db, workspace_id=workspace_id).items()}
    return Settings(region=workspace.default_region or "TW", zone=zone, currency=workspace.currency or "TWD", attribute_types=types)


def _read(job: ImportJob) -> Table:
    return read_table(job.content, job.filename, file_format=job.file_format, encoding=job.encoding,
                      delimiter=job.delimiter, header_row=job.header_row)


def create_import(db: Session, *, workspace_id: int, kind: str, filename: str, content: bytes, actor: Actor) -> ImportJob:
    """Store an uploaded file as an import, with what was detected about it and a guessed mapping."""
    _check_kind(kind)
    filename = Path(filename or "upload").name[:300] or "upload"
    table = read_table(content, filename)
    if table.total_rows == 0:
        raise InvalidInput("the file has a header but no data rows", field="file")
    job = ImportJob(
        workspace_id=workspace_id, kind=kind, filename=filename, content=content, encoding=table.encoding,
        file_format=table.file_format, delimiter=table.delimiter, header_row=table.header_row, headers=table.headers,
        mapping=guess_mapping(table.headers, kind), status="uploaded", total_rows=table.total_rows, errors=[],
        created_by=actor.id if actor.kind == "user" else None,
    )
    db.add(job)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="import.create", target_kind="import", target_id=job.id,
                 detail={"kind": kind, "filename": filename, "rows": table.total_rows})
    return job


def get_import(db: Session, *, workspace_id: int, import_id: int) -> ImportJob:
    job = db.get(ImportJob, import_id)
    if job is None or job.workspace_id != workspace_id:
        raise NotFound(f"no import with id {import_id}")
    return job


def list_imports(db: Session, *, workspace_id: int, limit: int = 50) -> list[ImportJob]:
    return list(db.scalars(select(ImportJob).where(ImportJob.workspace_id == workspace_id)
                           .order_by(ImportJob.id.desc()).limit(limit)))


def as_dict(job: ImportJob, *, errors: int | None = 1000) -> dict:
    """The import as the API and the CLI show it (never the file itself)."""
    stored = job.errors or []
    return {
        "id": job.id, "kind": job.kind, "filename": job.filename, "status": job.status,
        "file_format": job.file_format, "encoding": job.encoding, "delimiter": job.delimiter, "header_row": job.header_row,
        "headers": job.headers or [], "mapping": job.mapping or {}, "fields": fields_for(job.kind),
        "total_rows": job.total_rows, "processed_rows": job.processed_rows, "ok_rows": job.ok_rows, "error_rows": job.error_rows,
        "progress": round(job.processed_rows / job.total_rows, 4) if job.total_rows else 0.0,
        "errors": stored if errors is None else stored[:errors], "errors_truncated": errors is not None and len(stored) > errors,
        "message": job.message, "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }


def preview(db: Session, *, workspace_id: int, import_id: int, mapping: dict | None = None, limit: int = 20) -> dict:
    """Check every row with the mapping (an edited one is saved on the import) and write no contacts."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    if not 0 <= limit <= 200:
        raise InvalidInput("limit must be between 0 and 200", field="limit")
    table = _read(job)
    clean = check_mapping(job.mapping if mapping is None else mapping, table.headers, job.kind)
    if clean != job.mapping:
        _check_mapping_may_change(job)
        job.mapping = clean
    result = validate(table, clean, job.kind, _settings(db, workspace_id), sample_size=limit)
    return _report(result, clean)


def save_mapping(db: Session, *, workspace_id: int, import_id: int, mapping: dict) -> ImportJob:
    """Check a mapping against the file's headers and keep it, without reading the rows (the preview does)."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    clean = check_mapping(mapping, job.headers or [], job.kind)
    if clean != job.mapping:
        _check_mapping_may_change(job)
        job.mapping = clean
    return job


def _check_mapping_may_change(job: ImportJob) -> None:
    if job.status not in ("uploaded", "failed"):
        raise Conflict(f"import {job.id} is {job.status}; its mapping can no longer change", field="mapping")
    if job.processed_rows:
        raise Conflict(f"import {job.id} has imported {job.processed_rows} rows with its mapping already; resume it as it "
                       "is, or upload the file again", field="mapping")


def _report(result: Validation, mapping: dict, *, max_errors: int = 1000) -> dict:
    errors = result.error_list()
    return {"total_rows": result.total_rows, "ok_rows": result.ok_rows, "error_rows": result.error_rows,
            "errors": errors[:max_errors], "errors_truncated": len(errors) > max_errors, "sample": result.sample,
            "mapping": mapping}


def start(db: Session, *, workspace_id: int, import_id: int, mapping: dict | None = None, actor: Actor) -> ImportJob:
    """Queue the import; the job runs once this transaction commits."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    if job.status in ("queued", "running"):
        raise Conflict(f"import {import_id} is {job.status} already")
    if job.status == "done":
        raise Conflict(f"import {import_id} is done; upload the file again to import it again")
    if mapping is not None or job.status == "uploaded":
        clean = check_mapping(job.mapping if mapping is None else mapping, job.headers or _read(job).headers, job.kind)
        if clean != job.mapping:
            _check_mapping_may_change(job)
            job.mapping = clean
    job.status = "queued"
    job.heartbeat_at = utcnow()
    job.message = None
    audit.record(db, workspace_id=workspace_id, actor=actor, action="import.start", target_kind="import", target_id=job.id,
                 detail={"kind": job.kind, "filename": job.filename, "rows": job.total_rows, "resume_at": job.processed_rows})
    _after_commit(db, lambda: _enqueue(job.id))
    return job


def _enqueue(import_id: int) -> None:
    from tutti.audience.jobs import run_import

    run_import(import_id)


def _after_commit(db: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session commits: a worker must find the row it is told about."""
    event.listen(db, "after_commit", lambda _session: action(), once=True)
