"""What evals/knowledge.py and evals/clinc150.py share: a throw-away SQLite workspace, imported through
the real import service (as `tutti kb import` does), questions asked through the path of `tutti kb ask`
(the router's decide, offline), embeddings cached on disk under the data directory, and scoring.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def emit(**figure) -> None:
    print(json.dumps(figure, ensure_ascii=False), flush=True)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Workspace:
    """A fresh migrated SQLite database with one workspace, embeddings cached on disk."""

    def __init__(self, name: str = "eval"):
        self.tmp = Path(tempfile.mkdtemp(prefix="tutti-eval-"))
        os.environ.setdefault("TUTTI_DATA_DIR", str(ROOT / "tutti-data"))
        from tutti.ai import embeddings
        from tutti.platform import migrate, workspaces
        from tutti.platform.audit import Actor
        from tutti.platform.config import get_settings
        from tutti.platform.db import Database

        settings = get_settings()
        cache = Path(settings.data_dir).resolve() / "cache" / "embeddings.sqlite"
        embeddings.use_disk_cache(cache)
        url = f"sqlite:///{self.tmp / 'eval.db'}"
        migrate.upgrade(url)
        self.db = Database(url)
        with self.db.session() as s:
            self.workspace_id = workspaces.create_workspace(s, name=name).id
        self.actor = Actor.cli()

    def import_file(self, filename: str, data: str | bytes) -> dict:
        from tutti.converse.knowledge import service

        started = time.perf_counter()
        with self.db.session() as s:
            summary = service.import_file(
                s, workspace_id=self.workspace_id, actor=self.actor, filename=filename, data=data
            )
        with self.db.session() as s:
            summary["embedded"] = service.ensure_embeddings(s, workspace_id=self.workspace_id)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        return summary

    def set_floor(self, value: float | None) -> None:
        """The agent setting min_confidence of this workspace (a per-workspace confidence floor)."""
        from tutti.converse.agents.config import DEFAULTS
        from tutti.converse.agents.models import AgentConfig

        assert "min_confidence" in DEFAULTS
        with self.db.session() as s:
            row = s.get(AgentConfig, self.workspace_id)
            if row is None:
                s.add(AgentConfig(workspace_id=self.workspace_id, settings={"min_confidence": value}))
            else:
                row.settings = {**row.settings, "min_confidence": value}

    def index(self):
        from tutti.converse.knowledge.index import get_index

        with self.db.session() as s:
            return get_index(s, workspace_id=self.workspace_id)

    def ask(self, questions: list[str], progress_every: int = 500) -> list[dict]:
        """Each question through the `tutti kb ask` path (offline)."""
        from tutti.ai import embeddings
        from tutti.converse.knowledge.ask import ask

        embeddings.embed(questions, kind="query")  # fill the disk cache in batches first
        out = []
        started = time.perf_counter()
        with self.db.session() as s:
            for number, question in enumerate(questions, start=1):
                out.append(ask(s, workspace_id=self.workspace_id, question=question, use_llm=False))
                if progress_every and number % progress_every == 0:
                    note(f"  asked {number}/{len(questions)} ({time.perf_counter() - started:.0f} s)")
        return out


def score(results: list[dict], expected: list[str | None]) -> dict:
    """expected: the external id, or None for an out-of-scope question."""
    in_scope = [(r, e) for r, e in zip(results, expected) if e is not None]
    oos = [r for r, e in zip(results, expected) if e is None]
    answered = lambda r: r["action"] == "answer"
    correct = sum(1 for r, e in in_scope if answered(r) and r["external_id"] == e)
    wrong = sum(1 for r, e in in_scope if answered(r) and r["external_id"] != e)
    oos_answered = sum(1 for r in oos if answered(r))
    handed = sum(1 for r in oos if r["action"] == "handoff")
    return {
        "in_scope": len(in_scope),
        "out_of_scope": len(oos),
        "in_scope_correct": round(correct / max(len(in_scope), 1), 4),
        "in_scope_wrong": round(wrong / max(len(in_scope), 1), 4),
        "oos_handed_off": round(handed / max(len(oos), 1), 4),
        "oos_answered": round(oos_answered / max(len(oos), 1), 4),
        "wrong_of_all_answers": round((wrong + oos_answered) / max(correct + wrong + oos_answered, 1), 4),
    }


def features(index, questions: list[str]):
    """Per question: the index's features (for tuning and the kNN/classifier comparison)."""
    from tutti.ai import embeddings

    vectors = embeddings.embed(questions, kind="query")
    return [index.features(q, v) for q, v in zip(questions, vectors)]


def evaluate_offline(
    index, feats: list[dict], expected: list[str | None], params: dict, threshold: float
) -> dict:
    """Decide with `params` on precomputed features (no DB): the same arithmetic as matching.decide."""
    from tutti.converse.knowledge.matching import confidence_of, raw_scores

    results = []
    for f in feats:
        best, _, confidence = confidence_of(raw_scores(f, params), params)
        item = index.items[best] if best >= 0 else None
        results.append(
            {
                "action": "answer" if item and confidence >= threshold else "handoff",
                "external_id": item.external_id if item else None,
                "confidence": confidence,
            }
        )
    return score(results, expected)


def _top(feats: list[dict], params: dict):
    from tutti.converse.knowledge.matching import raw_scores

    best, z = [], []
    for f in feats:
        scores = raw_scores(f, params)
        order = np.argsort(-scores)[:2]
        top = float(scores[order[0]])
        second = float(scores[order[1]]) if len(order) > 1 else 0.0
        best.append(int(order[0]))
        z.append(top + params["w_margin"] * (top - second))
    return np.asarray(best), np.asarray(z)


def fit_platt(z: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """Logistic regression of label on z (one feature), by Newton's method."""
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a * z + b)))
        w = np.maximum(p * (1 - p), 1e-9)
        g = np.array([np.sum((p - label) * z), np.sum(p - label)]) + 1e-3 * np.array([a, 0])
        h = np.array([[np.sum(w * z * z) + 1e-3, np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, in_scope: np.ndarray, max_wrong: float = 0.02
):
    """The threshold that maximises (in-scope correct share + out-of-scope hand-off share) while in-scope
    wrong answers stay ≤ max_wrong."""
    best = (None, -1.0)
    n_in, n_out = max(in_scope.sum(), 1), max((~in_scope).sum(), 1)
    for t in np.unique(np.round(confidence, 4)):
        answered = confidence >= t
        wrong = (answered & in_scope & ~correct).sum() / n_in
        if wrong > max_wrong:
            continue
        value = (answered & correct).sum() / n_in + (~answered & ~in_scope).sum() / n_out
        if value > best[1]:
            best = (float(t), value)
    return best[0] if best[0] is not None else 0.999


def tune(
    index, feats: list[dict], expected: list[str | None], grid: list[dict], max_wrong: float = 0.02
) -> dict:
    """For each parameter set in `grid`: fit the Platt calibration and the threshold on these (validation)
    questions; return the best set with its calibration and threshold."""
    ids = np.asarray([item.external_id for item in index.items])
    in_scope = np.asarray([e is not None for e in expected])
    results = []
    for params in grid:
        best, z = _top(feats, params)
        correct = np.asarray([e is not None and ids[b] == e for b, e in zip(best, expected)])
        a, b = fit_platt(z, correct.astype(float))
        confidence = 1 / (1 + np.exp(-(a * z + b)))
        threshold = choose_threshold(confidence, correct, in_scope, max_wrong)
        answered = confidence >= threshold
        value = {
            "correct": float((answered & correct).sum() / max(in_scope.sum(), 1)),
            "wrong": float((answered & in_scope & ~correct).sum() / max(in_scope.sum(), 1)),
            "oos_handed_off": float((~answered & ~in_scope).sum() / max((~in_scope).sum(), 1)),
            "top1": float(correct.sum() / max(in_scope.sum(), 1)),
        }
        results.append(
            ({**params, "platt_a": round(a, 4), "platt_b": round(b, 4)}, round(threshold, 4), value)
        )
    results.sort(key=lambda r: -(r[2]["correct"] + r[2]["oos_handed_off"]))
    return {
        "params": results[0][0],
        "threshold": results[0][1],
        "validation": results[0][2],
        "all": [(r[0], r[1], r[2]) for r in results],
    }
