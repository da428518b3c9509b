"""Evaluation: CLINC150 (Larson et al., EMNLP 2019) through the knowledge base — data nobody here wrote.

    python evals/clinc150.py                          # reads ../shared/data/clinc150 in place
    python evals/clinc150.py --data PATH/clinc150_train_val.json

Each of the 150 intents becomes one knowledge item whose phrasings are its 100 training queries, and
CLINC's `oos_train` queries become one item of kind `out_of_scope` (examples to hand off), imported into a
fresh SQLite workspace through the real import service (as `tutti kb import`). Then what the knowledge job
does after an import: embedding, and fitting the workspace's own calibration (k-fold over its phrasings,
the out-of-scope examples asked of each fold's model). The validation queries — 3,000 in scope and 100 out
of scope — are asked through the path of `tutti kb ask` (the agent router's decide, offline). Prints JSON
lines: in-scope accuracy (answered with the right item) and out-of-scope recall (handed off), and the
right item first (no threshold) for plain kNN and the classifier over the same vectors.

Nothing is tuned on the validation queries that are reported. Embeddings are cached on disk under the
data directory (the first run embeds ~18k sentences: about ten minutes on this machine).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kbeval import ROOT, Workspace, emit, features, note, score, top1

DEFAULT = ROOT.parent / "shared" / "data" / "clinc150" / "clinc150_train_val.json"


def kb_jsonl(train: list[list[str]], oos_train: list[list[str]]) -> str:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in train:
        by_intent[intent].append(text)
    lines = [
        json.dumps({"id": intent, "title": intent.replace("_", " "), "answer": f"(CLINC150 intent: {intent})",
                    "language": "en", "questions": by_intent[intent]})
        for intent in sorted(by_intent)
    ]
    lines.append(json.dumps({"id": "clinc-oos", "kind": "out_of_scope", "language": "en",
                             "questions": [text for text, _ in oos_train]}))
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
    ws = Workspace("clinc150")
    summary = ws.import_file("clinc150.jsonl", kb_jsonl(data["train"], data["oos_train"]))
    note(f"workspace: {summary}")
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
        method="kb ask (classifier's item, the workspace's own calibration)",
        calibration={"threshold": index.calibration.threshold, **index.calibration.stats},
        targets={"in_scope_accuracy": ">=0.95", "out_of_scope_recall": ">=0.75"},
        actions=dict(actions),
    )
    val_feats = features(index, questions)
    emit(figure="clinc150_top1_no_threshold", knn=top1(index, val_feats, expected, "cosine"),
         classifier=top1(index, val_feats, expected, "probability"))


if __name__ == "__main__":
    main()
