"""Checks the demo knowledge base and its eval sets (run: python evals/check_kb_data.py).

JSON per line, required fields, unique ids, 4-50 distinct phrasings per item, every expected id exists,
no test or validation question equals (after normalising NFKC, case, spaces and punctuation) or nearly
equals (difflib ratio >= 0.9) a stored phrasing, the two test sets and the validation set are disjoint
(none nearly copies another's question), no out-of-scope
example (shipped: src/tutti/converse/knowledge/data/out_of_scope.txt; the demo brand's own:
out_of_scope_demo.jsonl) copies a test or validation question or a stored phrasing, and counts
per kind and language. Exits 1 on
any problem, so a data edit that breaks the eval's premise is caught before the eval runs.
"""

from __future__ import annotations

import difflib
import json
import sys
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "src/tutti/converse/knowledge/data/faq.jsonl"
NEGATIVES = ROOT / "src/tutti/converse/knowledge/data/out_of_scope.txt"
BRAND_NEGATIVES = ROOT / "src/tutti/converse/knowledge/data/out_of_scope_demo.jsonl"
SETS = {
    "test": ROOT / "evals/data/knowledge_questions_2.jsonl",
    "validation": ROOT / "src/tutti/converse/knowledge/data/calibration_questions.jsonl",
}
LANGUAGES = {"zh-TW", "en", "both"}
TEAMS = {"support", "sales", "billing"}
KINDS = {"in_scope", "out_of_scope", "cross_lingual"}
NEAR_COPY = 0.9  # a test question this similar (difflib ratio) to a stored phrasing is a copy with a typo


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c)[0] in "PS"))


def read_jsonl(path: Path, problems: list[str]) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path.name}:{n}: not JSON ({error})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path.name}:{n}: not an object")
            continue
        row["_line"] = n
        rows.append(row)
    return rows


def _two_lines(answer: str) -> bool:
    lines = answer.split("\n")
    has_han = [any("\u4e00" <= c <= "\u9fff" for c in line) for line in lines]
    return has_han == [True, False]


def check_faq(problems: list[str]) -> dict[str, dict]:
    items: dict[str, dict] = {}
    for row in read_jsonl(FAQ, problems):
        where = f"faq.jsonl:{row['_line']}"
        for key in ("id", "title", "answer", "language", "topic", "team", "questions"):
            if not row.get(key):
                problems.append(f"{where}: missing {key}")
        if row.get("id") in items:
            problems.append(f"{where}: duplicate id {row['id']}")
        if row.get("language") not in LANGUAGES:
            problems.append(f"{where}: language {row.get('language')!r}")
        if row.get("team") not in TEAMS:
            problems.append(f"{where}: team {row.get('team')!r}")
        questions = row.get("questions") or []
        if row.get("language") == "both" and not _two_lines(row.get("answer", "")):
            problems.append(f"{where}: a 'both' answer is two lines, Chinese then English")
        if not 4 <= len(questions) <= 50:
            problems.append(f"{where}: {len(questions)} phrasings (want 4-50)")
        if len({norm(q) for q in questions}) != len(questions):
            problems.append(f"{where}: repeated phrasing")
        items[row.get("id")] = row
    owner: dict[str, str] = {}
    for item_id, row in items.items():
        for q in row.get("questions", []):
            other = owner.setdefault(norm(q), item_id)
            if other != item_id:
                problems.append(f"phrasing {q!r} is in both {other} and {item_id}")
    return items


def _near_copy(text: str, stored: set[str]) -> str | None:
    for phrasing in stored:
        matcher = difflib.SequenceMatcher(None, text, phrasing, autojunk=False)
        if (
            matcher.real_quick_ratio() >= NEAR_COPY
            and matcher.quick_ratio() >= NEAR_COPY
            and matcher.ratio() >= NEAR_COPY
        ):
            return phrasing
    return None


def check_set(
    name: str, path: Path, items: dict[str, dict], stored: set[str], problems: list[str]
) -> list[dict]:
    rows = read_jsonl(path, problems)
    seen: set[str] = set()
    for row in rows:
        where = f"{path.name}:{row['_line']}"
        q, kind, expected = row.get("question"), row.get("kind"), row.get("expected", "missing")
        if not q or kind not in KINDS or expected == "missing" or not row.get("language"):
            problems.append(f"{where}: needs question, kind, expected, language")
            continue
        if (kind == "out_of_scope") != (expected is None):
            problems.append(f"{where}: kind {kind} with expected {expected!r}")
        if expected is not None and expected not in items:
            problems.append(f"{where}: expected {expected!r} is not an item")
        if norm(q) in stored:
            problems.append(f"{where}: copies a stored phrasing: {q!r}")
        elif near := _near_copy(norm(q), stored):
            problems.append(f"{where}: nearly copies the stored phrasing {near!r}: {q!r}")
        if norm(q) in seen:
            problems.append(f"{where}: repeated question {q!r}")
        seen.add(norm(q))
        if expected in items:
            item_lang, q_lang = items[expected]["language"], row["language"]
            crosses = item_lang not in ("both", q_lang)
            if crosses != (kind == "cross_lingual"):
                problems.append(
                    f"{where}: kind {kind} but item {expected} is {item_lang} and the question {q_lang}"
                )
    return rows


def main() -> int:
    problems: list[str] = []
    items = check_faq(problems)
    stored = {norm(q) for row in items.values() for q in row.get("questions", [])}
    sets = {
        name: check_set(name, path, items, stored, problems) for name, path in SETS.items() if path.exists()
    }
    # the out-of-scope examples (shipped for every workspace, and the demo brand's own) calibrate the
    # threshold: none may be (nearly) a test or validation question, or a stored phrasing (it would teach
    # the calibration to hand off a question the knowledge base answers)
    negatives = [(NEGATIVES.name, line.strip()) for line in NEGATIVES.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#")]
    for row in read_jsonl(BRAND_NEGATIVES, problems):
        if row.get("kind") != "out_of_scope" or not row.get("questions"):
            problems.append(f"{BRAND_NEGATIVES.name}:{row['_line']}: want kind out_of_scope with questions")
        negatives += [(BRAND_NEGATIVES.name, q) for q in row.get("questions") or []]
    held_out = {name: {norm(r["question"]) for r in rows} for name, rows in sets.items()}
    if len({norm(q) for _, q in negatives}) != len(negatives):
        problems.append("a repeated out-of-scope example")
    for where, negative in negatives:
        for name, questions in held_out.items():
            if norm(negative) in questions or _near_copy(norm(negative), questions):
                problems.append(f"{where}: {negative!r} (nearly) copies a {name} question")
        if norm(negative) in stored or _near_copy(norm(negative), stored):
            problems.append(f"{where}: {negative!r} (nearly) copies a stored phrasing")
    names = sorted(sets)
    for i, first in enumerate(names):  # the sets are disjoint, and none nearly copies another's question
        for second in names[i + 1:]:
            for row in sets[first]:
                q = norm(row["question"])
                if q in held_out[second] or _near_copy(q, held_out[second]):
                    problems.append(f"{first} question (nearly) in {second}: {row['question']!r}")
    print(
        json.dumps(
            {
                "items": len(items),
                "phrasings": sum(len(r.get("questions", [])) for r in items.values()),
                "by_language": Counter(r.get("language") for r in items.values()),
                "by_topic": Counter(r.get("topic") for r in items.values()),
            },
            ensure_ascii=False,
        )
    )
    for name, rows in sets.items():
        covered = {r["expected"] for r in rows if r.get("expected")}
        print(
            json.dumps(
                {
                    "set": name,
                    "questions": len(rows),
                    "by_kind": Counter(r.get("kind") for r in rows),
                    "by_language": Counter(r.get("language") for r in rows),
                    "items_covered": len(covered),
                    "items_total": len(items),
                },
                ensure_ascii=False,
            )
        )
    for p in problems:
        print("PROBLEM", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
