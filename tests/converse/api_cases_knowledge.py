"""Tenancy and role cases of /api/v1/knowledge (merged by tests/converse/api_cases.py)."""

from __future__ import annotations

import json

from tests.api_world import SEEDERS, Seed, foreign, listing, write
from tutti.converse.knowledge import gaps, questions, service
from tutti.platform.audit import Actor

V1 = "/api/v1"
K = f"{V1}/knowledge"


def _seed_knowledge(database, seed: Seed) -> None:
    with database.session() as db:
        item = service.create_item(
            db,
            workspace_id=seed.workspace_id,
            actor=Actor.cli(),
            external_id=f"{seed.marker}-faq",
            title=f"{seed.marker} shipping",
            answer=f"{seed.marker} ships free over NT$990",
            phrasings=[f"{seed.marker} how much is shipping"],
            topic="shipping",
        )
        gap = gaps.record(
            db,
            workspace_id=seed.workspace_id,
            question=f"{seed.marker} do you sell gift cards",
            confidence=0.1,
        )
        db.flush()
        questions.replace(db, workspace_id=seed.workspace_id, actor=Actor.cli(), filename="q.jsonl",
                          data=_questions_body(seed.marker)["content"])
        seed.parts["knowledge_item"] = item.id
        seed.parts["knowledge_gap"] = gap.id


SEEDERS.append(_seed_knowledge)


def _fresh_item(s: Seed) -> int:
    s.counter += 1
    with s.database.session() as db:
        return service.create_item(
            db,
            workspace_id=s.workspace_id,
            actor=Actor.cli(),
            answer=f"{s.marker} answer {s.counter}",
            phrasings=[f"{s.marker} question {s.counter}"],
        ).id


def _fresh_gap(s: Seed) -> int:
    s.counter += 1
    with s.database.session() as db:
        gap = gaps.record(db, workspace_id=s.workspace_id, question=f"{s.marker} unanswered {s.counter}")
        db.flush()
        return gap.id


def _import_body(marker: str) -> dict:
    line = json.dumps(
        {"id": f"{marker}-imported", "question": f"{marker} imported question", "answer": "imported"}
    )
    return {"filename": "kb.jsonl", "content": line}


def _questions_body(marker: str) -> dict:
    lines = [{"question": f"{marker} what does shipping cost", "expected": f"{marker}-faq"},
             {"question": f"{marker} do you sell cat food", "expected": None}]
    return {"filename": "questions.jsonl", "content": "\n".join(json.dumps(line) for line in lines)}


TENANCY = {
    ("GET", f"{K}/items"): listing(lambda m, t: f"{K}/items", lambda m, t: f"{K}/items?search=shipping"),
    ("POST", f"{K}/items"): write(
        lambda m, t: (f"{K}/items", {"answer": "ok", "phrasings": [f"{t.marker} q"]})
    ),
    ("GET", f"{K}/items/{{item_id}}"): foreign(lambda m, t: f"{K}/items/{t.parts['knowledge_item']}"),
    ("PATCH", f"{K}/items/{{item_id}}"): foreign(
        lambda m, t: (f"{K}/items/{t.parts['knowledge_item']}", {"answer": "hijacked"})
    ),
    ("DELETE", f"{K}/items/{{item_id}}"): foreign(lambda m, t: f"{K}/items/{t.parts['knowledge_item']}"),
    ("POST", f"{K}/import"): write(lambda m, t: (f"{K}/import", _import_body(m.marker))),
    ("GET", f"{K}/export"): listing(lambda m, t: f"{K}/export", lambda m, t: f"{K}/export?format=csv"),
    ("POST", f"{K}/ask"): write(lambda m, t: (f"{K}/ask", {"question": f"{m.marker} how much is shipping"})),
    ("GET", f"{K}/gaps"): listing(lambda m, t: f"{K}/gaps"),
    ("GET", f"{K}/calibration-questions"): listing(lambda m, t: f"{K}/calibration-questions"),
    ("PUT", f"{K}/calibration-questions"): write(lambda m, t: (f"{K}/calibration-questions", _questions_body(m.marker))),
    ("POST", f"{K}/gaps/faq"): foreign(
        lambda m, t: (f"{K}/gaps/faq", {"gap_ids": [t.parts["knowledge_gap"]], "answer": "stolen"})
    ),
    ("POST", f"{K}/gaps/out-of-scope"): foreign(
        lambda m, t: (f"{K}/gaps/out-of-scope", {"gap_ids": [t.parts["knowledge_gap"]]})
    ),
    ("POST", f"{K}/gaps/dismiss"): write(
        lambda m, t: (f"{K}/gaps/dismiss", {"gap_ids": [t.parts["knowledge_gap"]]}),
        lambda response, m, t: _dismissed_none(response),
    ),
}


def _dismissed_none(response) -> None:
    assert response.json()["dismissed"] == 0, "dismissed another workspace's questions"


ROLES = {
    ("GET", f"{K}/items"): ("knowledge.read", lambda s: f"{K}/items"),
    ("POST", f"{K}/items"): (
        "knowledge.manage",
        lambda s: (f"{K}/items", {"answer": "ok", "phrasings": ["a new question"]}),
    ),
    ("GET", f"{K}/items/{{item_id}}"): ("knowledge.read", lambda s: f"{K}/items/{s.parts['knowledge_item']}"),
    ("PATCH", f"{K}/items/{{item_id}}"): (
        "knowledge.manage",
        lambda s: (f"{K}/items/{s.parts['knowledge_item']}", {"topic": "x"}),
    ),
    ("DELETE", f"{K}/items/{{item_id}}"): ("knowledge.manage", lambda s: f"{K}/items/{_fresh_item(s)}"),
    ("POST", f"{K}/import"): ("knowledge.manage", lambda s: (f"{K}/import", _import_body(s.marker))),
    ("GET", f"{K}/export"): ("knowledge.read", lambda s: f"{K}/export"),
    ("POST", f"{K}/ask"): ("knowledge.read", lambda s: (f"{K}/ask", {"question": "how much is shipping"})),
    ("GET", f"{K}/gaps"): ("knowledge.read", lambda s: f"{K}/gaps"),
    ("GET", f"{K}/calibration-questions"): ("knowledge.read", lambda s: f"{K}/calibration-questions"),
    ("PUT", f"{K}/calibration-questions"): ("knowledge.manage", lambda s: (f"{K}/calibration-questions", _questions_body(s.marker))),
    ("POST", f"{K}/gaps/faq"): (
        "knowledge.manage",
        lambda s: (f"{K}/gaps/faq", {"gap_ids": [_fresh_gap(s)], "answer": "We do."}),
    ),
    ("POST", f"{K}/gaps/out-of-scope"): (
        "knowledge.manage",
        lambda s: (f"{K}/gaps/out-of-scope", {"gap_ids": [_fresh_gap(s)]}),
    ),
    ("POST", f"{K}/gaps/dismiss"): (
        "knowledge.manage",
        lambda s: (f"{K}/gaps/dismiss", {"gap_ids": [_fresh_gap(s)]}),
    ),
}
