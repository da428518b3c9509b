"""Evaluation: the demo brand's knowledge base, asked test questions written differently from its phrasings.

    python evals/knowledge.py            # report on evals/data/knowledge_questions.jsonl
    python evals/knowledge.py --tune     # choose fusion weights, calibration and threshold on validation

The knowledge base (src/tutti/converse/knowledge/data/faq.jsonl and articles/*.md) goes into a fresh
SQLite workspace through the import service (as `tutti kb import`); each test question goes through the
path of `tutti kb ask` (the agent router's decide, offline). Prints one JSON line per figure: the share of
in-scope questions answered correctly and wrongly, and the share of out-of-scope questions handed off
(targets ≥ 85%, ≤ 2%, ≥ 90%), overall and per kind (in-scope, cross-lingual). Then, computed from the same
index on the same test questions, kNN alone vs the classifier alone vs the fusion, each with its own
calibration and threshold fitted on the validation set only.

Tuning data (never the test set): evals/data/knowledge_validation.jsonl, plus one held-out phrasing per
item (items with 4+ phrasings) asked against an index built without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kbeval import ROOT, Workspace, emit, evaluate_offline, features, note, score, tune

FAQ = ROOT / "src/tutti/converse/knowledge/data/faq.jsonl"
ARTICLES = ROOT / "src/tutti/converse/knowledge/data/articles"
TEST = ROOT / "evals/data/knowledge_questions.jsonl"
VALIDATION = ROOT / "evals/data/knowledge_validation.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_kb(workspace: Workspace, faq_text: str) -> None:
    summary = workspace.import_file("faq.jsonl", faq_text)
    note(f"imported {summary}")
    if ARTICLES.is_dir():
        for path in sorted(ARTICLES.glob("*.md")):
            workspace.import_file(path.name, path.read_bytes())


def held_out(faq_rows: list[dict]) -> tuple[str, list[tuple[str, str]]]:
    """The FAQ without the last phrasing of each item that has 4+, and those phrasings with their ids."""
    rows, out = [], []
    for row in faq_rows:
        questions = list(row.get("questions") or [])
        if len(questions) >= 4:
            out.append((questions[-1], row["id"]))
            row = {**row, "questions": questions[:-1]}
        rows.append(row)
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows), out


GRID = (
    [{"mode": "knn", "w_probability": 0, "w_cosine": 1, "w_passage": wa, "w_lexical": 0, "w_margin": m,
      "cosine_floor": 0.8} for wa in (0.0, 1.0) for m in (0.0, 1.0, 2.0)]
    + [{"mode": "classifier", "w_probability": 1, "w_cosine": 0, "w_passage": 0, "w_lexical": 0, "w_margin": m,
        "cosine_floor": 0.8} for m in (0.0, 0.5, 1.0)]
    + [{"mode": "fusion", "w_probability": wp, "w_cosine": 1.0, "w_passage": wa, "w_lexical": wl, "w_margin": m,
        "cosine_floor": 0.8}
       for wp in (0.5, 1.0, 2.0) for wa in (0.0, 1.0) for wl in (0.0, 0.2) for m in (0.0, 1.0)]
)


def tuning_set(faq_text: str, faq_rows: list[dict]):
    validation = read(VALIDATION)
    full = Workspace("knowledge-eval")
    load_kb(full, faq_text)
    index = full.index()
    questions = [v["question"] for v in validation]
    expected = [v.get("expected") for v in validation]
    feats = features(index, questions)
    reduced_text, extra = held_out([dict(r) for r in faq_rows])
    reduced = Workspace("knowledge-eval-heldout")
    load_kb(reduced, reduced_text)
    reduced_index = reduced.index()
    # features from the reduced index, with items in the same order as the full one (both sorted by import)
    feats += features(reduced_index, [q for q, _ in extra])
    expected += [e for _, e in extra]
    assert [i.external_id for i in index.items] == [i.external_id for i in reduced_index.items]
    return full, index, feats, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tune", action="store_true", help="fit weights, calibration and threshold on validation"
    )
    parser.add_argument("--faq", type=Path, default=FAQ)
    args = parser.parse_args()
    faq_text = args.faq.read_text(encoding="utf-8")
    faq_rows = read(args.faq)
    test = read(TEST)
    from tutti.converse.knowledge import matching

    full, index, tune_feats, tune_expected = tuning_set(faq_text, faq_rows)
    emit(
        figure="knowledge_base",
        items=len(index.items),
        phrasings=len(index.row_text),
        classifier=index.model is not None,
        test_questions=len(test),
        tuning_questions=len(tune_expected),
    )
    best = tune(index, tune_feats, tune_expected, GRID)
    if args.tune:
        emit(
            figure="tuned", params=best["params"], threshold=best["threshold"], validation=best["validation"]
        )
        return

    # the real path: every test question through `tutti kb ask` (decide, offline)
    questions = [t["question"] for t in test]
    expected = [t.get("expected") for t in test]
    results = full.ask(questions)
    overall = score(results, expected)
    emit(
        figure="knowledge_eval",
        answered_correctly=overall["in_scope_correct"],
        answered_wrongly=overall["in_scope_wrong"],
        out_of_scope_handed_off=overall["oos_handed_off"],
        targets={
            "answered_correctly": ">=0.85",
            "answered_wrongly": "<=0.02",
            "out_of_scope_handed_off": ">=0.90",
        },
        **{k: overall[k] for k in ("in_scope", "out_of_scope", "wrong_of_all_answers")},
        params=matching.PARAMS,
        threshold=matching.THRESHOLD,
    )
    for kind in sorted({t.get("kind", "in_scope") for t in test} - {"out_of_scope"}):
        subset = [i for i, t in enumerate(test) if t.get("kind") == kind]
        part = score([results[i] for i in subset], [expected[i] for i in subset])
        emit(
            figure=f"knowledge_eval_{kind}",
            questions=len(subset),
            answered_correctly=part["in_scope_correct"],
            answered_wrongly=part["in_scope_wrong"],
        )
    misses = [
        {
            "question": q,
            "expected": e,
            "got": r["external_id"],
            "action": r["action"],
            "confidence": r["confidence"],
            "handoff_reason": r["handoff_reason"],
        }
        for q, e, r in zip(questions, expected, results)
        if (e is None and r["action"] == "answer")
        or (e is not None and r["external_id"] != e)
        or (e is not None and r["action"] != "answer")
    ]
    for miss in misses:
        note(json.dumps(miss, ensure_ascii=False))

    # kNN vs classifier vs fusion, each calibrated and thresholded on the tuning set, scored on test
    test_feats = features(index, questions)
    for mode in ("knn", "classifier", "fusion"):
        chosen = tune(index, tune_feats, tune_expected, [g for g in GRID if g["mode"] == mode])
        part = evaluate_offline(index, test_feats, expected, chosen["params"], chosen["threshold"])
        emit(
            figure=f"knowledge_eval_{mode}",
            answered_correctly=part["in_scope_correct"],
            answered_wrongly=part["in_scope_wrong"],
            out_of_scope_handed_off=part["oos_handed_off"],
            threshold=chosen["threshold"],
            params=chosen["params"],
        )


if __name__ == "__main__":
    main()
