"""Background work of the knowledge base: embedding what an import or an edit changed and fitting the
workspace's confidence calibration on it, so the next customer question waits for neither."""

from __future__ import annotations

from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick, task


def embed_after_commit(db, workspace_id: int) -> None:
    """Queue the knowledge job once this session's change is committed (a rolled-back change queues nothing;
    several changes in one transaction queue it once)."""
    from sqlalchemy import event

    queued = db.info.setdefault("knowledge_job_queued", set())
    if workspace_id in queued:
        return
    queued.add(workspace_id)

    def queue(session) -> None:
        session.info.get("knowledge_job_queued", set()).discard(workspace_id)
        embed_knowledge(workspace_id)

    event.listen(db, "after_commit", queue, once=True)


@task()
def embed_knowledge(workspace_id: int) -> None:
    """Embed and calibrate (repeated messages are harmless: see embed_and_calibrate)."""
    embed_and_calibrate(get_database(), workspace_id=workspace_id)


def embed_and_calibrate(database, *, workspace_id: int) -> dict:
    """Embed the workspace's new or changed phrasings and passages, then fit its calibration unless a usable
    one was fitted at the current version (rows already embedded for their text are skipped). Also what
    `tutti kb import` and the demo run in the foreground."""
    from tutti.converse.knowledge import calibration, index, service

    with database.session() as db:
        embedded = service.ensure_embeddings(db, workspace_id=workspace_id)
    with database.session() as db:
        version, _token, calibrated = service.version_key(db, workspace_id=workspace_id)
        stored, _ = service.stored_calibration(db, workspace_id=workspace_id)
        current = calibrated == version and calibration.from_json(stored, fitted_at=calibrated) is not None
        fitted = None if current else index.calibrate(db, workspace_id=workspace_id)
    return {"embedded": embedded, "threshold": fitted.threshold if fitted else None}


@on_tick
def refit_outdated_calibrations() -> None:
    """Queue the knowledge job for workspaces whose stored calibration was fitted on other signals (an
    upgrade changed them): until it is refitted such a workspace decides on the DEFAULT calibration."""
    from sqlalchemy import select

    from tutti.converse.knowledge import calibration
    from tutti.converse.knowledge.models import KnowledgeVersion

    with get_database().read_session() as db:
        stored = db.execute(select(KnowledgeVersion.workspace_id, KnowledgeVersion.calibration)
                            .where(KnowledgeVersion.calibration.is_not(None))).all()
    for workspace_id, data in stored:
        if calibration.from_json(data, fitted_at=None) is None:
            embed_knowledge(workspace_id)
