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
        """Import through the import service, then do what the knowledge job does after an import: embed
        and fit the workspace's calibration."""
        from tutti.converse.knowledge import service
        from tutti.converse.knowledge.index import calibrate

        started = time.perf_counter()
        with self.db.session() as s:
            summary = service.import_file(
                s, workspace_id=self.workspace_id, actor=self.actor, filename=filename, data=data
            )
        with self.db.session() as s:
            summary["embedded"] = service.ensure_embeddings(s, workspace_id=self.workspace_id)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        with self.db.session() as s:
            fitted = calibrate(s, workspace_id=self.workspace_id)
        summary["calibration"] = {"threshold": fitted.threshold, "source": fitted.source, **fitted.stats,
                                  "seconds": round(time.perf_counter() - started, 1)}
        return summary

    def set_calibration_questions(self, filename: str, data: str | bytes) -> dict:
        """Replace the workspace's calibration questions (as `tutti kb calibrate`), embed, refit."""
        from tutti.converse.knowledge import questions, service
        from tutti.converse.knowledge.index import calibrate

        started = time.perf_counter()
        with self.db.session() as s:
            summary = questions.replace(s, workspace_id=self.workspace_id, actor=self.actor, filename=filename,
                                        data=data)
        with self.db.session() as s:
            summary["embedded"] = service.ensure_embeddings(s, workspace_id=self.workspace_id)
        with self.db.session() as s:
            fitted = calibrate(s, workspace_id=self.workspace_id)
        summary["calibration"] = {"threshold": fitted.threshold, "threshold_other_language": fitted.threshold_other_language,
                                  **fitted.stats, "seconds": round(time.perf_counter() - started, 1)}
        return summary

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


def top1(index, feats: list[dict], expected: list[str | None], signal: str) -> float:
    """Share of in-scope questions whose right item has the highest `signal` (no threshold)."""
    ids = [item.external_id for item in index.items]
    pairs = [(f, e) for f, e in zip(feats, expected) if e is not None]
    return round(sum(ids[int(np.argmax(f[signal]))] == e for f, e in pairs) / max(len(pairs), 1), 4)


def thresholded(index, tune_feats, tune_expected, feats, expected, signal: str, max_wrong: float = 0.02) -> dict:
    """A baseline: answer the item with the highest `signal` when that value passes a threshold chosen
    on the tuning questions (the most right answers plus hand-offs with at most `max_wrong` wrong), scored
    on `feats`."""
    from tutti.converse.knowledge.calibration import choose_threshold

    ids = np.asarray([item.external_id for item in index.items])

    def decide(fs, es):
        best = np.asarray([int(np.argmax(f[signal])) for f in fs])
        value = np.asarray([float(f[signal][b]) for f, b in zip(fs, best)])
        right = np.asarray([e is not None and ids[b] == e for b, e in zip(best, es)])
        return value, right

    value, right = decide(tune_feats, tune_expected)
    threshold, _ = choose_threshold(value, right, np.asarray([e is not None for e in tune_expected]), max_wrong)
    value, right = decide(feats, expected)
    results = [{"action": "answer" if v >= threshold else "handoff",
                "external_id": ids[int(np.argmax(f[signal]))]} for v, f in zip(value, feats)]
    return {**score(results, expected), "threshold": round(threshold, 4)}
