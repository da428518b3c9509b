"""A workspace's calibration questions: real questions with the item that answers them, or none.

Left-out phrasings (the k-fold of calibration.py) are the stand-in for customers' questions that every
knowledge base has, but they were written by whoever wrote the items, and customers' questions are
answered with lower confidence than they are. A support team that has tried its knowledge base before
going live (`tutti kb ask`) holds the real thing: questions written the way its customers write, with the
right item, or none where the agent should hand off. Given enough of them, they weigh in the fit of the
confidence and choose the thresholds (calibration.fit); they are never searched and never learnt from by
the classifier, so nothing they contain can be answered because it was stored.

The file is JSONL (`{"question": ..., "expected": "ship-001"}`; `"expected": null` for a question to
hand off — the format `tutti kb ask` reads and the evaluations use) or CSV with the columns `question,
expected`. Putting a file replaces the workspace's questions, all or nothing.
"""

from __future__ import annotations

from pathlib import PurePath

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tutti.converse.knowledge import files
from tutti.converse.knowledge.models import KnowledgeCalibrationQuestion, KnowledgeItem
from tutti.converse.knowledge.service import bump_version
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.errors import InvalidInput

MAX_QUESTIONS = 20_000
MAX_CHARS = 2_000


def parse(filename: str, data: bytes | str) -> list[tuple[int, str, str | None]]:
    """(line, question, expected id or None) per row; InvalidInput naming every bad line. Rows are read
    as knowledge files are (files.csv_rows, files.jsonl_rows)."""
    text = files.decode(filename, data)
    found: list[files.Problem] = []
    csv_file = PurePath(filename).suffix.lower() == ".csv"
    rows = files.csv_rows(text, found, ("question",)) if csv_file else files.jsonl_rows(text, found)
    problems = [problem.as_dict() for problem in found]
    out = []
    for line, row in rows:
        question, expected = row.get("question"), row.get("expected")
        if csv_file:
            expected = expected or None  # an empty cell: hand off
        if not isinstance(question, str) or not question.strip():
            problems.append({"row": line, "field": "question", "message": "no question"})
        elif len(question) > MAX_CHARS:
            problems.append({"row": line, "field": "question", "message": f"longer than {MAX_CHARS} characters"})
        elif expected is not None and (not isinstance(expected, str) or not expected.strip()):
            problems.append({"row": line, "field": "expected", "message": "expected is an item id or null"})
        else:
            out.append((line, question.strip(), expected.strip() if expected is not None else None))
    if len(out) > MAX_QUESTIONS:
        problems.append({"row": 0, "field": "file", "message": f"more than {MAX_QUESTIONS} questions"})
    _raise(problems)
    return out


def replace(db: Session, *, workspace_id: int, actor: Actor, filename: str, data: bytes | str) -> dict:
    """The workspace's calibration questions become the file's; an expected id that is no item of this
    workspace is an error, and nothing changes."""
    rows = parse(filename, data)
    items = dict(db.execute(
        select(KnowledgeItem.external_id, KnowledgeItem.id).where(
            KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.kind != "out_of_scope")
    ).all())
    _raise([{"row": line, "field": "expected", "message": f"no item '{expected}' in this workspace"}
            for line, _, expected in rows if expected is not None and expected not in items])
    db.execute(delete(KnowledgeCalibrationQuestion).where(KnowledgeCalibrationQuestion.workspace_id == workspace_id))
    values = [{"workspace_id": workspace_id, "text": question, "item_id": items.get(expected) if expected else None}
              for _, question, expected in rows]
    for start in range(0, len(values), 1000):
        db.execute(KnowledgeCalibrationQuestion.__table__.insert(), values[start : start + 1000])
    bump_version(db, workspace_id=workspace_id)  # the knowledge job refits the calibration
    summary = {"questions": len(values), "in_scope": sum(1 for v in values if v["item_id"] is not None),
               "out_of_scope": sum(1 for v in values if v["item_id"] is None)}
    audit.record(db, workspace_id=workspace_id, actor=actor, action="knowledge.calibration_questions",
                 target_kind="knowledge", detail={"source": filename[:200], **summary})
    return summary


def counts(db: Session, *, workspace_id: int) -> dict:
    total, in_scope = db.execute(
        select(func.count(), func.count(KnowledgeCalibrationQuestion.item_id)).where(
            KnowledgeCalibrationQuestion.workspace_id == workspace_id)
    ).one()
    return {"questions": total, "in_scope": in_scope, "out_of_scope": total - in_scope}


def listed(db: Session, *, workspace_id: int, limit: int) -> list[dict]:
    """The questions in the order they were given, in the file's format."""
    rows = db.execute(
        select(KnowledgeCalibrationQuestion.text, KnowledgeItem.external_id)
        .outerjoin(KnowledgeItem, KnowledgeItem.id == KnowledgeCalibrationQuestion.item_id)
        .where(KnowledgeCalibrationQuestion.workspace_id == workspace_id)
        .order_by(KnowledgeCalibrationQuestion.id)
        .limit(limit)
    ).all()
    return [{"question": text, "expected": expected} for text, expected in rows]


def _raise(problems: list[dict]) -> None:
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s): row {problems[0]['row']}: {problems[0]['message']}",
                           field="file", details=problems[:50])
