"""The knowledge base: import/export formats, all-or-nothing imports, CRUD, and matching (real e5)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tutti.converse.knowledge import index, service
from tutti.converse.knowledge.models import KnowledgeItem, KnowledgePassage, KnowledgePhrasing
from tutti.platform.audit import Actor
from tutti.platform.errors import Conflict, InvalidInput, NotFound

ACTOR = Actor.cli()

FAQ = [
    {
        "id": "ship-fee",
        "answer": "滿 NT$990 免運，未滿收 NT$80。",
        "topic": "shipping",
        "questions": ["運費多少？", "買多少錢可以免運", "How much is shipping?"],
    },
    {
        "id": "returns",
        "answer": "收到商品 7 天內可申請退貨。",
        "topic": "returns",
        "team": "support",
        "questions": ["怎麼退貨", "可以退貨嗎", "How do I return an item?"],
    },
    {
        "id": "hours",
        "answer": "客服時間為週一至週五 9:00–18:00。",
        "questions": ["客服幾點上班", "你們的營業時間", "What are your opening hours?"],
    },
    {
        "id": "points",
        "answer": "每消費 NT$100 累積 1 點，1 點折抵 NT$1。",
        "questions": ["點數怎麼累積", "紅利點數可以折抵嗎", "How do loyalty points work?"],
    },
]


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory):
    """The same sentences are embedded in many tests: compute each once (real e5, cached on disk)."""
    from tutti.ai import embeddings

    embeddings.use_disk_cache(tmp_path_factory.mktemp("vectors") / "embeddings.sqlite")
    yield
    embeddings.use_disk_cache(None)


def jsonl(rows) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)


@pytest.fixture
def kb(database, workspace_id):
    with database.session() as db:
        service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="faq.jsonl", data=jsonl(FAQ))
    return workspace_id


def test_import_jsonl_creates_items_and_phrasings(database, kb):
    with database.session() as db:
        items, total = service.list_items(db, workspace_id=kb)
        assert total == 4
        returns = next(i for i in items if i["external_id"] == "returns")
        assert returns["phrasings"] == ["怎麼退貨", "可以退貨嗎", "How do I return an item?"]
        assert returns["language"] == "both" and returns["team"] == "support"


def test_csv_rows_with_the_same_id_add_phrasings_and_reimport_updates(database, workspace_id):
    csv_text = "id,question,answer,topic\nA1,運費多少,NT$80,shipping\nA1,How much is shipping?,,\nB2,退貨,7 天,returns\n"
    with database.session() as db:
        first = service.import_file(
            db, workspace_id=workspace_id, actor=ACTOR, filename="kb.csv", data=csv_text
        )
        assert first["created"] == 2 and first["phrasings"] == 3
        again = service.import_file(
            db,
            workspace_id=workspace_id,
            actor=ACTOR,
            filename="kb.csv",
            data="id,question,answer\nA1,運費?,NT$60\n",
            replace=True,
        )
        assert (again["created"], again["updated"], again["deleted"]) == (0, 1, 1)
        items, _ = service.list_items(db, workspace_id=workspace_id)
        assert [(i["external_id"], i["answer"], i["phrasings"]) for i in items] == [
            ("A1", "NT$60", ["運費?"])
        ]


def test_bad_rows_are_all_reported_and_nothing_is_stored(database, workspace_id):
    bad = "id,question,answer\nA1,q1,a1\nA1,q2,another answer\n,q3,a3\nC3,q4,\n"
    with database.session() as db:
        with pytest.raises(InvalidInput) as caught:
            service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="kb.csv", data=bad)
        rows = sorted((d["row"], d["field"]) for d in caught.value.details)
        assert rows == [(3, "answer"), (4, "id"), (5, "answer")]
        assert db.scalar(select(func.count()).select_from(KnowledgeItem)) == 0
    with database.session() as db, pytest.raises(InvalidInput) as caught:
        service.import_file(
            db,
            workspace_id=workspace_id,
            actor=ACTOR,
            filename="kb.jsonl",
            data='{"id": "x", "question": "q", "answer": "a"}\n{broken\n',
        )
    assert caught.value.details[0]["row"] == 2
    with database.session() as db, pytest.raises(InvalidInput):
        service.import_file(db, workspace_id=workspace_id, actor=ACTOR, filename="kb.xlsx", data="x")


def test_markdown_articles_split_into_passages_and_round_trip(database, workspace_id):
    md = (
        "# 退換貨政策\n<!-- id: policy-returns -->\n\n收到商品 7 天內可退貨。\n\n## 運費\n\n退貨運費由我們負擔。\n\n"
        "## 例外\n\n貼身衣物拆封後不接受退貨。\n\n# Warranty\n\nOne year for electronics.\n"
    )
    with database.session() as db:
        summary = service.import_file(
            db, workspace_id=workspace_id, actor=ACTOR, filename="policies.md", data=md
        )
        assert summary["created"] == 2 and summary["passages"] == 4
        items, _ = service.list_items(db, workspace_id=workspace_id)
        assert {i["external_id"] for i in items} == {"policy-returns", "warranty"}
        headings = db.scalars(select(KnowledgePassage.heading).order_by(KnowledgePassage.id)).all()
        assert headings == ["退換貨政策", "運費", "例外", "Warranty"]
        exported = service.export(db, workspace_id=workspace_id, format="markdown")
    with database.session() as db:
        again = service.import_file(
            db, workspace_id=workspace_id, actor=ACTOR, filename="x.md", data=exported
        )
        assert (again["created"], again["updated"]) == (0, 2)


def test_export_jsonl_and_csv_round_trip(database, kb):
    with database.session() as db:
        for fmt, name in (("jsonl", "out.jsonl"), ("csv", "out.csv")):
            exported = service.export(db, workspace_id=kb, format=fmt)
            summary = service.import_file(db, workspace_id=kb, actor=ACTOR, filename=name, data=exported)
            assert (summary["created"], summary["updated"], summary["phrasings"]) == (0, 4, 12)


def test_crud_and_errors(database, kb, make_workspace):
    other = make_workspace("Other")[0]
    with database.session() as db:
        item = service.create_item(
            db,
            workspace_id=kb,
            actor=ACTOR,
            answer="Yes, gift wrapping is free.",
            phrasings=["Do you gift wrap?", "可以包裝成禮物嗎"],
        )
        assert item.external_id.startswith("faq-") and item.language == "both"
        with pytest.raises(Conflict):
            service.create_item(
                db, workspace_id=kb, actor=ACTOR, external_id="returns", answer="x", phrasings=["y"]
            )
        with pytest.raises(InvalidInput):
            service.create_item(db, workspace_id=kb, actor=ACTOR, answer="x", phrasings=[])
        service.update_item(
            db,
            workspace_id=kb,
            actor=ACTOR,
            item_id=item.id,
            changes={"phrasings": ["Gift wrap?"], "enabled": False},
        )
        assert db.scalars(
            select(KnowledgePhrasing.text).where(KnowledgePhrasing.item_id == item.id)
        ).all() == ["Gift wrap?"]
        with pytest.raises(NotFound):
            service.get_item(db, workspace_id=other, item_id=item.id)
        with pytest.raises(NotFound):
            service.delete_item(db, workspace_id=other, actor=ACTOR, item_id=item.id)
        service.delete_item(db, workspace_id=kb, actor=ACTOR, item_id=item.id)
        assert db.scalar(select(func.count()).where(KnowledgePhrasing.item_id == item.id)) == 0


def test_match_finds_the_item_across_languages_and_hands_off_the_unknown(database, kb):
    index.forget()
    with database.session() as db:
        found = service.match(db, workspace_id=kb, question="請問運費要多少錢")
        assert found.external_id == "ship-fee" and found.in_scope and "NT$990" in found.answer
        english = service.match(db, workspace_id=kb, question="can I send back something I bought?")
        assert english.external_id == "returns" and english.in_scope
        simplified = service.match(db, workspace_id=kb, question="积分怎么累积")
        assert simplified.external_id == "points"
        unknown = service.match(db, workspace_id=kb, question="你們老闆的星座是什麼")
        assert not unknown.in_scope and unknown.confidence < found.confidence
        assert found.candidates[0].external_id == "ship-fee" and len(found.candidates) == 3


def test_vectors_are_stored_and_the_index_follows_changes(database, kb):
    index.forget()
    with database.session() as db:
        service.match(db, workspace_id=kb, question="運費")
        assert db.scalar(select(func.count()).where(KnowledgePhrasing.embedding.is_(None))) == 0
        assert service.ensure_embeddings(db, workspace_id=kb) == 0  # nothing stale: loads, no embedding
        before = service.version(db, workspace_id=kb)
        service.create_item(
            db,
            workspace_id=kb,
            actor=ACTOR,
            external_id="pets",
            answer="歡迎帶寵物入店。",
            phrasings=["可以帶狗進店裡嗎", "Can I bring my dog to the store?"],
        )
        assert service.version(db, workspace_id=kb) == before + 1
        assert service.match(db, workspace_id=kb, question="寵物可以進去嗎").external_id == "pets"


def test_workspaces_never_see_each_other(database, kb, make_workspace):
    other = make_workspace("Other")[0]
    empty = make_workspace("Empty")[0]
    index.forget()
    with database.session() as db:
        service.import_file(
            db,
            workspace_id=other,
            actor=ACTOR,
            filename="o.jsonl",
            data=jsonl([{"id": "o1", "answer": "Other shop answer", "questions": ["運費多少？"]}]),
        )
        assert service.match(db, workspace_id=other, question="運費多少？").external_id == "o1"
        assert service.match(db, workspace_id=kb, question="運費多少？").external_id == "ship-fee"
        nothing = service.match(db, workspace_id=empty, question="運費多少？")
        assert nothing.item_id is None and not nothing.in_scope
