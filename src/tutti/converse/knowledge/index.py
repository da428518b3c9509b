"""The in-memory search index of one workspace's knowledge, cached per workspace and rebuilt when the
workspace's knowledge version moves.

It holds: the unit vectors of every phrasing and passage (loaded from the database, embedded only when
missing), a BM25 index over phrasings, passages and titles, and a softmax classifier trained on the
phrasings (one class per FAQ item). `features(question)` returns, per item, the best cosine (kNN), the
best normalised BM25 score and the classifier's probability; tutti.converse.knowledge.matching turns them
into a decision.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.ai import bm25, classifier, embeddings
from tutti.converse.knowledge.models import KnowledgeItem, KnowledgePassage, KnowledgePhrasing
from tutti.converse.knowledge.service import ensure_embeddings, version_key

# Above this many items or phrasings the classifier is not trained (its training time grows with
# items × phrasings); matching then uses the fused kNN + BM25 score alone.
CLASSIFIER_MAX_ITEMS = 1500
CLASSIFIER_MAX_ROWS = 60_000


@dataclass
class ItemInfo:
    id: int
    external_id: str
    kind: str
    title: str
    answer: str
    team: str | None
    topic: str | None


@dataclass
class Index:
    workspace_id: int
    version: tuple
    items: list[ItemInfo]
    vectors: np.ndarray  # (rows, d) phrasings then passages
    row_item: np.ndarray  # (rows,) item position of each row
    row_text: list[str]
    row_is_phrasing: np.ndarray  # (rows,) bool
    bm25: bm25.BM25 | None
    bm25_item: np.ndarray  # item position of each BM25 document
    model: classifier.SoftmaxClassifier | None
    model_items: np.ndarray  # item position of each classifier class
    built_seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def features(self, question: str, vector: np.ndarray | None = None) -> dict:
        n = len(self.items)
        if vector is None:
            vector = embeddings.embed([question], kind="query")[0]
        cosine = np.full(n, -1.0, dtype=np.float32)  # best phrasing
        passage = np.full(n, -1.0, dtype=np.float32)  # best passage (an FAQ's answer, an article's section)
        best_row = np.full(n, -1, dtype=np.int64)
        if len(self.row_item):
            sims = self.vectors @ vector
            # per-item maxima in one pass each (no sorting: this runs for every question)
            phrasing = self.row_is_phrasing
            np.maximum.at(cosine, self.row_item[phrasing], sims[phrasing])
            np.maximum.at(passage, self.row_item[~phrasing], sims[~phrasing])
            best = np.maximum(cosine, passage)
            # the best row of each item: a row whose similarity equals its item's maximum
            hits = np.flatnonzero(sims >= best[self.row_item])
            best_row[self.row_item[hits]] = hits
        lexical = np.zeros(n, dtype=np.float32)
        if self.bm25 is not None:
            raw = self.bm25.scores(question)
            top = self.bm25.self_score(question)
            if top > 0:
                np.maximum.at(lexical, self.bm25_item, raw / top)
        probability = np.zeros(n, dtype=np.float32)
        if self.model is not None:
            probability[self.model_items] = self.model.proba(vector)[0]
        return {
            "cosine": cosine,
            "passage": passage,
            "lexical": np.clip(lexical, 0, 1),
            "probability": probability,
            "best_row": best_row,
            "vector": vector,
        }


_cache: dict[tuple, Index] = {}
_lock = threading.Lock()


def get_index(db: Session, *, workspace_id: int) -> Index:
    """The workspace's index, rebuilt when its knowledge changed since it was built."""
    current = version_key(db, workspace_id=workspace_id)
    # keyed by database too: tests and evaluations open several databases whose workspace ids coincide
    key = (str(db.get_bind().engine.url), workspace_id)
    cached = _cache.get(key)
    if cached is not None and cached.version == current:
        return cached
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == current:
            return cached
        index = build(db, workspace_id=workspace_id, at_version=current)
        _cache[key] = index
        return index


def forget(workspace_id: int | None = None) -> None:
    with _lock:
        for key in [k for k in _cache if workspace_id is None or k[1] == workspace_id]:
            del _cache[key]


def build(db: Session, *, workspace_id: int, at_version: tuple) -> Index:
    started = time.perf_counter()
    if ensure_embeddings(db, workspace_id=workspace_id):
        db.flush()
    items_rows = db.execute(
        select(
            KnowledgeItem.id,
            KnowledgeItem.external_id,
            KnowledgeItem.kind,
            KnowledgeItem.title,
            KnowledgeItem.answer,
            KnowledgeItem.team,
            KnowledgeItem.topic,
        )
        .where(KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.enabled.is_(True))
        .order_by(KnowledgeItem.id)
    ).all()
    items = [ItemInfo(*row) for row in items_rows]
    position = {item.id: i for i, item in enumerate(items)}
    texts, owners, blobs, is_phrasing = [], [], [], []
    for table, phrasing in ((KnowledgePhrasing, True), (KnowledgePassage, False)):
        rows = db.execute(
            select(table.item_id, table.text, table.embedding)
            .where(table.workspace_id == workspace_id)
            .order_by(table.item_id, table.position)
        )
        for item_id, text, blob in rows:
            if item_id in position and blob is not None:
                texts.append(text)
                owners.append(position[item_id])
                blobs.append(blob)
                is_phrasing.append(phrasing)
    dim = embeddings.DIMENSION
    vectors = (
        np.vstack([embeddings.from_bytes(b) for b in blobs])
        if blobs
        else np.zeros((0, dim), dtype=np.float32)
    )
    row_item = np.asarray(owners, dtype=np.int64)
    documents = texts + [item.title for item in items]
    document_item = np.concatenate([row_item, np.arange(len(items), dtype=np.int64)])
    lexical = bm25.BM25(documents) if documents else None
    model, model_items = _train(vectors, row_item, np.asarray(is_phrasing, dtype=bool), len(items))
    return Index(
        workspace_id=workspace_id,
        version=at_version,
        items=items,
        vectors=vectors,
        row_item=row_item,
        row_text=texts,
        row_is_phrasing=np.asarray(is_phrasing, dtype=bool),
        bm25=lexical,
        bm25_item=document_item,
        model=model,
        model_items=model_items,
        built_seconds=time.perf_counter() - started,
        stats={"items": len(items), "rows": len(texts), "classifier": model is not None},
    )


def _train(vectors: np.ndarray, row_item: np.ndarray, is_phrasing: np.ndarray, n_items: int):
    """The classifier over every stored row (phrasings and passages), one class per item; None when there
    are too few classes to learn from or too many to train quickly."""
    classes = np.unique(row_item) if len(row_item) else np.zeros(0, dtype=np.int64)
    if len(classes) < 2 or len(classes) > CLASSIFIER_MAX_ITEMS or len(row_item) > CLASSIFIER_MAX_ROWS:
        return None, np.zeros(0, dtype=np.int64)
    label_of = np.full(n_items, -1, dtype=np.int64)
    label_of[classes] = np.arange(len(classes))
    labels = label_of[row_item]
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float32)
    weights = 1.0 / counts[labels]  # every item weighs the same however many phrasings it has
    model = classifier.train(vectors, labels, len(classes), weights=weights, scale=10.0, steps=400)
    return model, classes.astype(np.int64)
