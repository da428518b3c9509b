"""From a question to the best knowledge item and a calibrated confidence.

Three signals per item (see index.Index.features): the classifier's probability, the best cosine between
the question and the item's phrasings/passages (kNN), and the best normalised BM25 score. The item is the
argmax of a fused score; the confidence is a logistic (Platt) function of the fused score of that item
and its lead over the runner-up, fitted on validation questions (not the test set) — see
docs/knowledge.md for the figures. `in_scope` is confidence ≥ THRESHOLD, the point chosen on validation
to keep wrong answers at or below 2%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from tutti.converse.knowledge.index import Index, get_index

# How the three signals are fused, and the Platt calibration of the result. Chosen on validation
# splits (evals/knowledge.py --tune on evals/data/knowledge_validation.jsonl, evals/clinc150.py --tune
# on a held-out part of CLINC's validation split); see docs/knowledge.md.
PARAMS = {
    "mode": "fusion",  # fusion | knn | classifier
    "w_probability": 0.5,
    "w_cosine": 1.0,
    "w_passage": 1.0,
    "w_lexical": 0.0,
    "w_margin": 1.0,
    "cosine_floor": 0.80,  # e5 cosines between unrelated sentences sit around 0.75-0.8
    "platt_a": 3.3168,
    "platt_b": -4.0513,
}
THRESHOLD = 0.7775


@dataclass
class Candidate:
    item_id: int
    external_id: str
    title: str
    score: float
    cosine: float
    probability: float
    lexical: float


@dataclass
class Match:
    item_id: int | None
    confidence: float
    answer: str | None
    title: str | None
    source: dict | None  # {"kind", "external_id", "title", "passage"}: what the answer comes from
    in_scope: bool
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""
    external_id: str | None = None
    team: str | None = None
    topic: str | None = None


def raw_scores(features: dict, params: dict) -> np.ndarray:
    floor = params["cosine_floor"]
    cosine = np.maximum(features["cosine"] - floor, 0) / (1 - floor)
    if params.get("w_passage"):
        cosine = cosine + params["w_passage"] * np.maximum(features["passage"] - floor, 0) / (1 - floor)
    if params["mode"] == "knn":
        return cosine
    if params["mode"] == "classifier":
        return features["probability"]
    return (
        params["w_probability"] * features["probability"]
        + params["w_cosine"] * cosine
        + params["w_lexical"] * features["lexical"]
    )


def confidence_of(scores: np.ndarray, params: dict) -> tuple[int, float, float]:
    """(best position, its raw score, calibrated confidence)."""
    if len(scores) == 0:
        return -1, 0.0, 0.0
    if len(scores) == 1:
        best, second = 0, 0.0
    else:
        top2 = np.argpartition(-scores, 1)[:2]
        best, other = (top2[0], top2[1]) if scores[top2[0]] >= scores[top2[1]] else (top2[1], top2[0])
        second = float(scores[other])
    raw = float(scores[best])
    margin = raw - second
    z = params["platt_a"] * (raw + params["w_margin"] * margin) + params["platt_b"]
    return int(best), raw, 1 / (1 + math.exp(-z))


def decide(
    index: Index,
    question: str,
    *,
    params: dict | None = None,
    threshold: float | None = None,
    vector: np.ndarray | None = None,
) -> Match:
    params = params or PARAMS
    threshold = THRESHOLD if threshold is None else threshold
    if not question or not question.strip():
        return Match(None, 0.0, None, None, None, False, reason="empty question")
    if not index.items:
        return Match(None, 0.0, None, None, None, False, reason="the knowledge base is empty")
    features = index.features(question, vector)
    scores = raw_scores(features, params)
    best, _raw, confidence = confidence_of(scores, params)
    order = np.argsort(-scores)[:3]
    candidates = [
        Candidate(
            item_id=index.items[i].id,
            external_id=index.items[i].external_id,
            title=index.items[i].title,
            score=round(float(scores[i]), 4),
            cosine=round(float(features["cosine"][i]), 4),
            probability=round(float(features["probability"][i]), 4),
            lexical=round(float(features["lexical"][i]), 4),
        )
        for i in order
    ]
    item = index.items[best]
    row = int(features["best_row"][best])
    passage = index.row_text[row] if item.kind == "article" and row >= 0 else None
    in_scope = confidence >= threshold
    reason = (
        f"best match '{item.external_id}' with confidence {confidence:.2f} "
        f"{'≥' if in_scope else '<'} threshold {threshold:.2f}"
    )
    return Match(
        item_id=item.id,
        confidence=round(confidence, 4),
        answer=passage or item.answer,
        title=item.title,
        source={"kind": item.kind, "external_id": item.external_id, "title": item.title, "passage": passage},
        in_scope=in_scope,
        candidates=candidates,
        reason=reason,
        external_id=item.external_id,
        team=item.team,
        topic=item.topic,
    )


def match(db: Session, *, workspace_id: int, question: str) -> Match:
    """The best knowledge item for `question` in this workspace only, with a calibrated confidence."""
    index = get_index(db, workspace_id=workspace_id)
    return decide(index, question)
