"""`tutti import`: a whole import in the CLI's own process, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from tutti.audience.filereader import read_table
from tutti.audience.imports.fields import _check_kind
from tutti.audience.imports.job import run
from tutti.audience.imports.mapping import check_mapping, guess_mapping
from tutti.audience.imports.service import _report, _settings, as_dict, create_import
from tutti.audience.imports.validation import validate
from tutti.audience.models import ImportJob
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import Database, utcnow


def run_from_cli(db: Database, *, workspace_id: int, kind: str, path: Path | str, mapping: dict | None = None,
                 dry_run: bool = False) -> dict:
    """`tutti import`: the whole import in this process, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    _check_kind(kind)
    path = Path(path)
    content = path.read_bytes()
    if dry_run:
        table = read_table(content, path.name)
        with db.read_session() as session:
            settings = _settings(session, workspace_id)
        clean = check_mapping(mapping if mapping is not None else guess_mapping(table.headers, kind), table.headers, kind)
        return {"dry_run": True, "file": path.name, **_report(validate(table, clean, kind, settings, sample_size=5), clean)}
    with db.session() as session:
        job = create_import(session, workspace_id=workspace_id, kind=kind, filename=path.name, content=content, actor=Actor.cli())
        job.mapping = check_mapping(mapping if mapping is not None else job.mapping, job.headers, kind)
        job.status, job.heartbeat_at = "queued", utcnow()
        audit.record(session, workspace_id=workspace_id, actor=Actor.cli(), action="import.start", target_kind="import",
                     target_id=job.id, detail={"kind": kind, "filename": path.name, "rows": job.total_rows})
        import_id = job.id
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"{path.name}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run(import_id, database=db, progress=advance)
    with db.read_session() as session:
        job = session.get(ImportJob, import_id)
        report = as_dict(job, errors=None)
    for key in ("fields", "headers", "progress", "errors_truncated"):
        report.pop(key, None)
    return {"import_id": import_id, **report}
