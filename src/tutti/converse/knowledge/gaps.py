"""The gaps report: questions the agent handed off for low confidence, grouped into clusters of the same
need, biggest first, each with a representative question and a one-click "add as FAQ".

Clustering is greedy threshold clustering over e5 vectors (a question joins the first cluster whose
centroid it is close enough to), which is enough for the hundreds of open questions a workspace has and
needs no parameters but the similarity bar.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutti.ai import embeddings
from tutti.converse.knowledge.models import KnowledgeGap
from tutti.platform.audit import Actor
from tutti.platform.errors import InvalidInput, NotFound

SIMILAR = 0.88  # e5 cosine from which two questions ask for the same thing
MAX_OPEN = 5000


def record(
    db: Session,
    *,
    workspace_id: int,
    question: str,
    confidence: float = 0.0,
    best_item_id: int | None = None,
    reason: str | None = None,
    contact_id: int | None = None,
    conversation_id: int | None = None,
) -> KnowledgeGap:
    question = (question or "").strip()[:2000]
    gap = KnowledgeGap(
        workspace_id=workspace_id,
        question=question,
        confidence=float(confidence or 0.0),
        best_item_id=best_item_id,
        reason=(reason or "")[:200] or None,
        contact_id=contact_id,
        conversation_id=conversation_id,
        status="open",
    )
    db.add(gap)
    return gap


def report(db: Session, *, workspace_id: int, limit: int = 50) -> list[dict]:
    """Clusters of open gaps: [{"count", "question" (representative), "questions" (up to 5),
    "gap_ids", "best_item_id"}], biggest first."""
    gaps = list(
        db.scalars(
            select(KnowledgeGap)
            .where(KnowledgeGap.workspace_id == workspace_id, KnowledgeGap.status == "open")
            .order_by(KnowledgeGap.id.desc())
            .limit(MAX_OPEN)
        )
    )
    if not gaps:
        return []
    missing = [g for g in gaps if g.embedding is None]
    if missing:
        vectors = embeddings.embed([g.question for g in missing], kind="query")
        for gap, vector in zip(missing, vectors):
            gap.embedding = embeddings.to_bytes(vector)
        db.flush()
    vectors = np.vstack([embeddings.from_bytes(g.embedding) for g in gaps])
    clusters: list[dict] = []
    centroids: list[np.ndarray] = []
    for gap, vector in zip(gaps, vectors):
        if centroids:
            sims = np.vstack(centroids) @ vector
            best = int(np.argmax(sims))
            if sims[best] >= SIMILAR:
                cluster = clusters[best]
                cluster["members"].append((gap, vector))
                total = np.sum([v for _, v in cluster["members"]], axis=0)
                centroids[best] = total / np.linalg.norm(total)
                continue
        clusters.append({"members": [(gap, vector)]})
        centroids.append(vector)
    out = []
    for cluster, centroid in zip(clusters, centroids):
        members = cluster["members"]
        representative = max(members, key=lambda m: float(m[1] @ centroid))[0]
        best_items = [g.best_item_id for g, _ in members if g.best_item_id]
        out.append(
            {
                "count": len(members),
                "question": representative.question,
                "questions": list(dict.fromkeys(g.question for g, _ in members))[:5],
                "gap_ids": [g.id for g, _ in members],
                "best_item_id": max(set(best_items), key=best_items.count) if best_items else None,
                "last_at": max(g.created_at for g, _ in members).isoformat(),
            }
        )
    out.sort(key=lambda c: (-c["count"], c["question"]))
    return out[:limit]


def add_as_faq(
    db: Session,
    *,
    workspace_id: int,
    actor: Actor,
    gap_ids: list[int],
    answer: str,
    question: str | None = None,
    title: str = "",
    topic: str | None = None,
    team: str | None = None,
):
    """Create an FAQ item whose phrasings are the cluster's questions, and close those gaps."""
    from tutti.converse.knowledge import service

    gaps = _gaps(db, workspace_id, gap_ids)
    phrasings = ([question] if question else []) + [g.question for g in gaps]
    item = service.create_item(
        db,
        workspace_id=workspace_id,
        actor=actor,
        answer=answer,
        phrasings=phrasings,
        title=title,
        topic=topic,
        team=team,
    )
    db.execute(
        update(KnowledgeGap)
        .where(KnowledgeGap.id.in_([g.id for g in gaps]))
        .values(status="added", added_item_id=item.id)
    )
    return item


OUT_OF_SCOPE_ID = "out-of-scope"


def mark_out_of_scope(db: Session, *, workspace_id: int, actor: Actor, gap_ids: list[int]):
    """Add the cluster's questions to the workspace's out-of-scope examples (one item of kind
    `out_of_scope`, made on first use) and close those gaps: questions like them are handed off without
    guessing, and the next calibration learns from them."""
    from tutti.converse.knowledge import service
    from tutti.converse.knowledge.models import KnowledgeItem

    gaps = _gaps(db, workspace_id, gap_ids)
    item = db.scalar(select(KnowledgeItem).where(KnowledgeItem.workspace_id == workspace_id,
                                                 KnowledgeItem.external_id == OUT_OF_SCOPE_ID))
    questions = [g.question for g in gaps]
    if item is None:
        item = service.create_item(db, workspace_id=workspace_id, actor=actor, external_id=OUT_OF_SCOPE_ID,
                                   kind="out_of_scope", answer="", title="範圍外 Out of scope", phrasings=questions)
    else:
        known = service.phrasings_of(db, workspace_id=workspace_id, item_ids=[item.id])[item.id]
        item = service.update_item(db, workspace_id=workspace_id, actor=actor, item_id=item.id,
                                   changes={"phrasings": known + questions})
    db.execute(
        update(KnowledgeGap)
        .where(KnowledgeGap.id.in_([g.id for g in gaps]))
        .values(status="added", added_item_id=item.id)
    )
    return item


def _gaps(db: Session, workspace_id: int, gap_ids: list[int]) -> list[KnowledgeGap]:
    if not gap_ids:
        raise InvalidInput("name the questions (gap_ids)", field="gap_ids")
    gaps = list(db.scalars(select(KnowledgeGap).where(KnowledgeGap.workspace_id == workspace_id,
                                                      KnowledgeGap.id.in_(gap_ids))))
    if len(gaps) != len(set(gap_ids)):
        raise NotFound("some of these questions are not in this workspace's gaps")
    return gaps


def dismiss(db: Session, *, workspace_id: int, gap_ids: list[int]) -> int:
    result = db.execute(
        update(KnowledgeGap)
        .where(KnowledgeGap.workspace_id == workspace_id, KnowledgeGap.id.in_(gap_ids))
        .values(status="dismissed")
    )
    return result.rowcount or 0
