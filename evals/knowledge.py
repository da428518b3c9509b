"""Evaluation: the demo brand's knowledge base, asked test questions written differently from its phrasings.

    python evals/knowledge.py                   # report on the test set, evals/data/knowledge_questions_2.jsonl
    python evals/knowledge.py --cross-validate  # the calibration questions' weight and wrong-answer cap
    python evals/knowledge.py --tune            # the k-fold wrong-answer budgets (no calibration questions)

The knowledge base (src/tutti/converse/knowledge/data/faq.jsonl, the brand's own out-of-scope examples in
out_of_scope_demo.jsonl, and articles/*.md) goes into a fresh
SQLite workspace through the import service (as `tutti kb import`), followed by what the knowledge job does
after an import: embedding and fitting the workspace's own calibration (k-fold over its phrasings, see
tutti.converse.knowledge.calibration). The validation set then becomes the workspace's calibration
questions (as `tutti kb calibrate`), which refits the calibration with them and chooses its thresholds on
them. Each test question then goes through the path of `tutti kb ask`
(the agent router's decide, offline). Prints one JSON line per figure: the share of in-scope questions
answered correctly and wrongly, and the share of out-of-scope questions handed off (targets ≥ 85%, ≤ 2%,
≥ 90%), overall and per kind (in-scope, cross-lingual). Then kNN alone vs the classifier alone on the
same index: the right item first (no threshold), and answered right/wrong with a threshold chosen on the
validation set.

Tuning data and calibration questions (never the test set): src/tutti/converse/knowledge/data/calibration_questions.jsonl.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kbeval import ROOT, Workspace, emit, features, note, score, thresholded, top1

FAQ = ROOT / "src/tutti/converse/knowledge/data/faq.jsonl"
BRAND_OUT_OF_SCOPE = ROOT / "src/tutti/converse/knowledge/data/out_of_scope_demo.jsonl"
ARTICLES = ROOT / "src/tutti/converse/knowledge/data/articles"
TEST = ROOT / "evals/data/knowledge_questions_2.jsonl"
VALIDATION = ROOT / "src/tutti/converse/knowledge/data/calibration_questions.jsonl"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_kb(workspace: Workspace, faq_text: str, out_of_scope_text: str = "") -> None:
    # one import, so the knowledge job's calibration is fitted once, with the brand's out-of-scope examples
    summary = workspace.import_file("faq.jsonl", faq_text + out_of_scope_text)
    note(f"imported {summary}")
    if ARTICLES.is_dir():
        for path in sorted(ARTICLES.glob("*.md")):
            workspace.import_file(path.name, path.read_bytes())


BUDGETS = (0.01, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06)
OTHER_LANGUAGE_BUDGETS = (0.0, 0.01, 0.02, 0.035, 0.05, 0.08, 0.12)


def tune_budget(workspace: Workspace, index) -> None:
    """For each pair of k-fold wrong-answer budgets (same-language matches, cross-lingual matches): the
    thresholds they give and what they do to the validation questions. calibration.MAX_WRONG and
    MAX_WRONG_OTHER_LANGUAGE are the pair answering the most of them rightly with at most 1% wrong (ties:
    the one handing off the most out-of-scope questions).

    The questions are asked once through the `tutti kb ask` path; each pair only moves the thresholds (the
    confidences come from the same logistic regression whatever the budgets), so each pair's decisions
    are that run's knowledge decisions held against its thresholds. The chosen pair is then asked again
    through the real path, and both figures are printed."""
    from tutti.ai.text import has_han
    from tutti.converse.knowledge import calibration
    from tutti.converse.knowledge.index import calibration_examples

    validation = read(VALIDATION)
    questions = [v["question"] for v in validation]
    expected = [v.get("expected") for v in validation]
    examples, items = calibration_examples(index)
    results = workspace.ask(questions, progress_every=0)
    position = {item.external_id: i for i, item in enumerate(index.items)}
    cross = [r["external_id"] in position and not index.item_language[position[r["external_id"]], int(has_han(q))]
             for q, r in zip(questions, results, strict=True)]
    best = None
    for same in BUDGETS:
        for other in OTHER_LANGUAGE_BUDGETS:
            fitted = calibration.fit(examples, items, max_wrong=same, max_wrong_other_language=other)
            assert fitted.weights == index.calibration.weights, "the stored calibration was fitted on other examples"
            part = score([_held_against(r, fitted, c) for r, c in zip(results, cross, strict=True)], expected)
            emit(figure="budget", max_wrong_kfold=same, max_wrong_other_language_kfold=other,
                 threshold=fitted.threshold, threshold_other_language=fitted.threshold_other_language,
                 validation_right=part["in_scope_correct"], validation_wrong=part["in_scope_wrong"],
                 validation_out_of_scope_handed_off=part["oos_handed_off"])
            rank = (part["in_scope_correct"], part["oos_handed_off"])
            if part["in_scope_wrong"] <= 0.01 and (best is None or rank > best[0]):
                best = (rank, same, other, fitted)
    for same in BUDGETS:  # for comparison: one threshold for both kinds of match
        fitted = calibration.fit(examples, items, max_wrong=same, one_threshold=True)
        part = score([_held_against(r, fitted, c) for r, c in zip(results, cross, strict=True)], expected)
        emit(figure="budget_one_threshold", max_wrong_kfold=same, threshold=fitted.threshold,
             validation_right=part["in_scope_correct"], validation_wrong=part["in_scope_wrong"],
             validation_out_of_scope_handed_off=part["oos_handed_off"])
    if best is not None:
        _, same, other, fitted = best
        index.calibration = fitted  # the index `ask` uses
        part = score(workspace.ask(questions, progress_every=0), expected)
        emit(figure="chosen_budgets", max_wrong_kfold=same, max_wrong_other_language_kfold=other, kfold=fitted.stats,
             validation_right=part["in_scope_correct"], validation_wrong=part["in_scope_wrong"],
             validation_out_of_scope_handed_off=part["oos_handed_off"])
    examples, items = calibration_examples(index, classify=False)
    fitted = calibration.fit(examples, items)
    emit(figure="default_calibration", weights=fitted.weights, bias=fitted.bias, threshold=fitted.threshold,
         kfold=fitted.stats)


WEIGHTS = (5.0, 20.0, 50.0, 100.0)
CAPS = (0.01, 0.015, 0.02)
HAND_OFF_VALUES = (1.0, 0.5, 1 / 3)


def cross_validate(index, folds: int = 5, repeats: int = 3) -> None:
    """For each (question weight, wrong-answer cap, hand-off value): the validation questions split in `folds`, each part
    held out in turn while the rest are the workspace's calibration questions; the held-out parts'
    decisions pooled (right, wrong, out of scope handed off), averaged over `repeats` random splits.
    calibration.QUESTION_WEIGHT and MAX_WRONG_QUESTIONS are the pair with the most right answers while
    the pooled wrong answers stay at most 2% and out-of-scope hand-offs at least 90%, else the most right
    answers plus hand-offs."""
    import numpy as np

    from tutti.ai import embeddings
    from tutti.converse.knowledge import calibration
    from tutti.converse.knowledge.index import _ask, calibration_examples

    validation = read(VALIDATION)
    position = {item.external_id: i for i, item in enumerate(index.items)}
    vectors = embeddings.embed([v["question"] for v in validation], kind="query")
    asked = _ask(index, [(v["question"], vector, position[v["expected"]] if v.get("expected") else -1)
                         for v, vector in zip(validation, vectors, strict=True)])
    examples, items = calibration_examples(index)
    in_scope = np.array([a[2] for a in asked])
    saved = calibration.QUESTION_WEIGHT, calibration.MAX_WRONG_QUESTIONS, calibration.HAND_OFF_VALUE
    try:
        for weight, cap, hand_off_value in itertools.product(WEIGHTS, CAPS, HAND_OFF_VALUES):
            calibration.QUESTION_WEIGHT, calibration.MAX_WRONG_QUESTIONS = weight, cap
            calibration.HAND_OFF_VALUE = hand_off_value
            totals = np.zeros(3)
            for repeat in range(repeats):
                fold = np.random.default_rng(repeat).integers(0, folds, len(asked))
                for k in range(folds):
                    fitted = calibration.fit(examples, items, questions=[a for a, f in zip(asked, fold) if f != k])
                    for (signals, right, scope), f in zip(asked, fold):
                        if f == k and fitted.confidence(signals) >= fitted.threshold_for(signals):
                            totals += (scope and right, scope and not right, not scope)
            n_in, n_out = in_scope.sum() * repeats, (~in_scope).sum() * repeats
            emit(figure="cross_validation", question_weight=weight, max_wrong_questions=cap,
                 hand_off_value=round(hand_off_value, 3),
                 right=round(totals[0] / n_in, 4), wrong=round(totals[1] / n_in, 4),
                 out_of_scope_handed_off=round(1 - totals[2] / n_out, 4))
    finally:
        calibration.QUESTION_WEIGHT, calibration.MAX_WRONG_QUESTIONS, calibration.HAND_OFF_VALUE = saved


def _held_against(result: dict, fitted, cross_lingual: bool) -> dict:
    """A knowledge decision (answered, or handed off for low confidence) held against `fitted`'s thresholds."""
    knowledge = result["action"] == "answer" or result["handoff_reason"] == "low_confidence"
    if not knowledge or result["knowledge_id"] is None or result["confidence"] is None:
        return result
    answered = result["confidence"] >= fitted.threshold_of(cross_lingual=cross_lingual)
    return {**result, "action": "answer" if answered else "handoff", "handoff_reason": None if answered else "low_confidence"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", action="store_true", help="choose the k-fold budget on the validation set")
    parser.add_argument("--cross-validate", action="store_true",
                        help="5-fold cross-validation of the calibration questions' weight and wrong-answer cap")
    parser.add_argument("--faq", type=Path, default=FAQ)
    parser.add_argument("--test", type=Path, default=TEST,
                        help=f"the test set (default {TEST.name})")
    parser.add_argument("--out-of-scope", type=Path, default=BRAND_OUT_OF_SCOPE,
                        help="the brand's own out-of-scope examples (JSONL, an item of kind out_of_scope)")
    args = parser.parse_args()
    for given in (args.test, args.faq, args.out_of_scope):
        if not given.is_file():
            parser.error(f"no such file: {given}")
    test = read(args.test)
    workspace = Workspace("knowledge-eval")
    load_kb(workspace, args.faq.read_text(encoding="utf-8"), args.out_of_scope.read_text(encoding="utf-8"))
    index = workspace.index()
    emit(
        figure="knowledge_base",
        items=len(index.items),
        rows=len(index.row_text),
        classifier=index.model is not None,
        test_questions=len(test),
        calibration={"source": index.calibration.source, "threshold": index.calibration.threshold,
                     "threshold_other_language": index.calibration.threshold_other_language,
                     **index.calibration.stats},
    )
    if args.tune:  # the k-fold path: a workspace without calibration questions
        tune_budget(workspace, index)
        return
    if args.cross_validate:
        cross_validate(index)
        return
    # the brand's calibration questions: the validation set (as `tutti kb calibrate`)
    summary = workspace.set_calibration_questions(VALIDATION.name, VALIDATION.read_text(encoding="utf-8"))
    emit(figure="calibration", **summary)
    index = workspace.index()

    # the real path: every test question through `tutti kb ask` (decide, offline)
    questions = [t["question"] for t in test]
    expected = [t.get("expected") for t in test]
    results = workspace.ask(questions)
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
        threshold=index.calibration.threshold,
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

    # kNN alone vs the classifier alone on the same index: right item first, and with a threshold
    # chosen on the validation set
    validation = read(VALIDATION)
    tune_feats = features(index, [v["question"] for v in validation])
    tune_expected = [v.get("expected") for v in validation]
    test_feats = features(index, questions)
    for name, signal in (("knn", "cosine"), ("classifier", "probability")):
        part = thresholded(index, tune_feats, tune_expected, test_feats, expected, signal)
        emit(
            figure=f"knowledge_eval_{name}",
            top1=top1(index, test_feats, expected, signal),
            answered_correctly=part["in_scope_correct"],
            answered_wrongly=part["in_scope_wrong"],
            out_of_scope_handed_off=part["oos_handed_off"],
            threshold=part["threshold"],
        )


if __name__ == "__main__":
    main()
