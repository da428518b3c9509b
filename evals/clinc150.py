"""Evaluation: CLINC150 (Larson et al., EMNLP 2019) through the knowledge base — data nobody here wrote.

    python evals/clinc150.py                          # reads /work/shared/data/clinc150 in place
    python evals/clinc150.py --data PATH/clinc150_train_val.json

Each of the 150 intents becomes one knowledge item whose phrasings are its 100 training queries, imported
into a fresh SQLite workspace through the real import service (as `tutti kb import`). The validation
queries — 3,000 in scope and 100 out of scope — are asked through the path of `tutti kb ask` (the agent
router's decide, offline). Prints JSON lines: in-scope accuracy (answered with the right item) and
out-of-scope recall (handed off), for the shipped method and for plain kNN over the same e5 vectors.

Tuning, honestly: nothing is tuned on the validation queries that are reported. The per-workspace
confidence floor (the agent setting min_confidence) is chosen on a separate split: 10 of each intent's
100 training queries held out from a second workspace built on the other 90, plus CLINC's `oos_train`
queries as out-of-scope examples. The kNN baseline's threshold is chosen on the same split.
Embeddings are cached on disk under the data directory (the first run embeds ~18k sentences: minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from kbeval import ROOT, Workspace, emit, evaluate_offline, features, note, score, tune

DEFAULT = ROOT.parent / "shared" / "data" / "clinc150" / "clinc150_train_val.json"
HELD_OUT = 10


def kb_jsonl(train: list[list[str]], keep=None) -> str:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append(text)
    lines = []
    for intent in sorted(by_intent):
        questions = by_intent[intent] if keep is None else keep(by_intent[intent])
        lines.append(
            json.dumps(
                {
                    "id": intent,
                    "title": intent.replace("_", " "),
                    "answer": f"(CLINC150 intent: {intent})",
                    "language": "en",
                    "questions": questions,
                }
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT, help="clinc150_train_val.json")
    args = parser.parse_args()
    if not args.data.exists():
        print(
            f"CLINC150 data not found at {args.data}: nothing to evaluate (pass --data PATH)", file=sys.stderr
        )
        emit(figure="clinc150", status="data absent", path=str(args.data))
        sys.exit(2)
    data = json.loads(args.data.read_text(encoding="utf-8"))
    from tutti.converse.knowledge import matching

    # 1. the tuning split: 90 phrasings per intent in the KB, the other 10 + oos_train asked
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in data["train"]:
        by_intent[intent].append(text)
    tuning_ws = Workspace("clinc150-tuning")
    summary = tuning_ws.import_file(
        "clinc_tuning.jsonl", kb_jsonl(data["train"], keep=lambda q: q[:-HELD_OUT])
    )
    note(f"tuning workspace: {summary}")
    tuning_index = tuning_ws.index()
    held = [(q, intent) for intent in sorted(by_intent) for q in by_intent[intent][-HELD_OUT:]]
    tune_questions = [q for q, _ in held] + [q for q, _ in data["oos_train"]]
    tune_expected = [i for _, i in held] + [None] * len(data["oos_train"])
    tune_feats = features(tuning_index, tune_questions)
    shipped = dict(matching.PARAMS)
    floor_pick = tune(tuning_index, tune_feats, tune_expected, [shipped], max_wrong=1.0)
    # the floor maximising accuracy + oos recall on the tuning split, with the shipped calibration
    from kbeval import _top

    best, z = _top(tune_feats, shipped)
    ids = np.asarray([item.external_id for item in tuning_index.items])
    correct = np.asarray([e is not None and ids[b] == e for b, e in zip(best, tune_expected)])
    in_scope = np.asarray([e is not None for e in tune_expected])
    confidence = 1 / (1 + np.exp(-(shipped["platt_a"] * z + shipped["platt_b"])))
    floor, value = matching.THRESHOLD, -1.0
    for t in np.unique(np.round(confidence, 4)):
        answered = confidence >= t
        v = (answered & correct).sum() / in_scope.sum() + (~answered & ~in_scope).sum() / (~in_scope).sum()
        if v > value:
            floor, value = float(t), v
    floor = max(floor, matching.THRESHOLD)
    knn = tune(
        tuning_index,
        tune_feats,
        tune_expected,
        [{**shipped, "mode": "knn", "w_passage": 0.0, "w_margin": m} for m in (0.0, 1.0)],
        max_wrong=1.0,
    )
    emit(
        figure="clinc150_tuning",
        held_out_in_scope=len(held),
        oos_train=len(data["oos_train"]),
        min_confidence=round(floor, 4),
        top1=floor_pick["validation"]["top1"],
    )

    # 2. the reported run: all 100 phrasings per intent, validation asked through `kb ask`
    ws = Workspace("clinc150")
    summary = ws.import_file("clinc150.jsonl", kb_jsonl(data["train"]))
    note(f"workspace: {summary}")
    ws.set_floor(floor)
    index = ws.index()
    questions = [q for q, _ in data["val"]] + [q for q, _ in data["oos_val"]]
    expected = [i for _, i in data["val"]] + [None] * len(data["oos_val"])
    results = ws.ask(questions)
    overall = score(results, expected)
    actions = defaultdict(int)
    for r in results:
        actions[r["action"] if r["action"] != "handoff" else f"handoff:{r['handoff_reason']}"] += 1
    emit(
        figure="clinc150",
        in_scope_accuracy=overall["in_scope_correct"],
        out_of_scope_recall=overall["oos_handed_off"],
        in_scope_wrong=overall["in_scope_wrong"],
        in_scope=overall["in_scope"],
        out_of_scope=overall["out_of_scope"],
        method="kb ask (fusion of classifier + kNN, calibrated)",
        min_confidence=round(floor, 4),
        targets={"in_scope_accuracy": ">=0.95", "out_of_scope_recall": ">=0.75"},
        actions=dict(actions),
    )

    # 3. the same index, plain kNN (nearest phrasing, threshold chosen on the tuning split)
    val_feats = features(index, questions)
    part = evaluate_offline(index, val_feats, expected, knn["params"], knn["threshold"])
    emit(
        figure="clinc150_knn_baseline",
        in_scope_accuracy=part["in_scope_correct"],
        out_of_scope_recall=part["oos_handed_off"],
        threshold=knn["threshold"],
    )
    classifier = tune(
        tuning_index,
        tune_feats,
        tune_expected,
        [{**shipped, "mode": "classifier", "w_margin": m} for m in (0.0, 1.0)],
        max_wrong=1.0,
    )
    part = evaluate_offline(index, val_feats, expected, classifier["params"], classifier["threshold"])
    emit(
        figure="clinc150_classifier_only",
        in_scope_accuracy=part["in_scope_correct"],
        out_of_scope_recall=part["oos_handed_off"],
        threshold=classifier["threshold"],
    )
    top1 = {
        key: round(
            float(
                np.mean(
                    [
                        index.items[int(np.argmax(f[key]))].external_id == e
                        for f, e in zip(val_feats, expected)
                        if e
                    ]
                )
            ),
            4,
        )
        for key in ("cosine", "probability")
    }
    emit(figure="clinc150_top1_no_threshold", knn=top1["cosine"], classifier=top1["probability"])


if __name__ == "__main__":
    main()
