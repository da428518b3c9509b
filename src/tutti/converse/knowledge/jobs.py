"""Background work of the knowledge base: embedding what an import or an edit changed, so the next
customer question does not wait for it."""

from __future__ import annotations

from tutti.platform.db import get_database
from tutti.platform.jobs import task


@task()
def embed_knowledge(workspace_id: int) -> None:
    """Embed the workspace's new or changed phrasings and passages (repeated messages are harmless:
    rows already embedded for their text are skipped)."""
    from tutti.converse.knowledge import service

    with get_database().session() as db:
        service.ensure_embeddings(db, workspace_id=workspace_id)
