"""`tutti kb ask` and the evaluations share this: one question in, one JSON-ready answer out, through the
agent's router (`tutti.converse.agents.router.decide`, contact_id None) exactly as a customer message
without a known contact would go."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from tutti.converse.knowledge.models import KnowledgeItem


def read_questions(lines) -> list[dict]:
    """Questions from text lines: JSON objects with "question" (other fields are passed through, e.g. an
    "id" or "expected"), or plain text one per line. Blank lines are skipped."""
    out = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict) and isinstance(value.get("question"), str):
                out.append(value)
                continue
        out.append({"question": text})
    return out


def ask(db: Session, *, workspace_id: int, question: str, use_llm: bool = True) -> dict:
    from tutti.converse.agents.router import decide

    decision = decide(db, workspace_id=workspace_id, contact_id=None, text=question, use_llm=use_llm)
    external_id = None
    if decision.knowledge_id is not None:
        item = db.get(KnowledgeItem, decision.knowledge_id)
        external_id = item.external_id if item is not None and item.workspace_id == workspace_id else None
    return {
        "action": decision.action,
        "knowledge_id": decision.knowledge_id,
        "external_id": external_id,
        "confidence": None if decision.confidence is None else round(float(decision.confidence), 4),
        "answer": decision.answer,
        "reason": decision.reason,
        "handoff_reason": decision.handoff_reason,
        "tool": decision.tool,
    }
