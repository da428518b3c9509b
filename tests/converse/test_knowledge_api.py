"""/api/v1/knowledge end to end: items, import (multipart and JSON), export, ask, and the gaps report."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bearer
from tutti.converse.knowledge import gaps

K = "/api/v1/knowledge"
FAQ = "\n".join(
    json.dumps(row, ensure_ascii=False)
    for row in [
        {"id": "ship", "answer": "滿 NT$990 免運。", "questions": ["運費多少？", "How much is shipping?"]},
        {"id": "returns", "answer": "7 天內可退貨。", "questions": ["怎麼退貨", "How do I return an item?"]},
    ]
)


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory):
    from tutti.ai import embeddings

    embeddings.use_disk_cache(tmp_path_factory.mktemp("vectors") / "embeddings.sqlite")
    yield
    embeddings.use_disk_cache(None)


def test_items_import_export_and_ask(client, make_workspace):
    _, key, _ = make_workspace("API shop")
    auth = bearer(key)
    response = client.post(
        f"{K}/import", headers=auth, files={"file": ("faq.jsonl", FAQ.encode(), "application/x-ndjson")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    bad = client.post(
        f"{K}/import", headers=auth, json={"filename": "x.csv", "content": "id,question,answer\n,q,a\n"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["row"] == 2

    created = client.post(
        f"{K}/items", headers=auth, json={"answer": "週一至週五 9–18 點", "phrasings": ["客服幾點上班"]}
    )
    assert created.status_code == 201 and created.json()["external_id"].startswith("faq-")
    item_id = created.json()["id"]
    patched = client.patch(
        f"{K}/items/{item_id}", headers=auth, json={"phrasings": ["客服幾點上班", "What are your hours?"]}
    )
    assert patched.json()["phrasings"] == ["客服幾點上班", "What are your hours?"]
    listed = client.get(f"{K}/items?search=hours", headers=auth).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == item_id

    exported = client.get(f"{K}/export?format=jsonl", headers=auth)
    assert exported.status_code == 200 and exported.text.count("\n") == 3

    answer = client.post(f"{K}/ask", headers=auth, json={"question": "請問運費要多少"}).json()
    assert answer["action"] == "answer" and answer["external_id"] == "ship" and "NT$990" in answer["answer"]
    unknown = client.post(f"{K}/ask", headers=auth, json={"question": "你們老闆喜歡什麼顏色"}).json()
    assert unknown["action"] == "handoff"

    assert client.delete(f"{K}/items/{item_id}", headers=auth).status_code == 204
    assert client.get(f"{K}/items/{item_id}", headers=auth).status_code == 404


def test_gaps_are_clustered_and_become_an_faq(client, database, make_workspace):
    workspace_id, key, _ = make_workspace("Gap shop")
    auth = bearer(key)
    with database.session() as db:
        for question, confidence in [
            ("你們有賣禮物卡嗎", 0.2),
            ("請問有禮物卡可以買嗎", 0.3),
            ("do you sell gift cards?", 0.1),
            ("可以開公司發票嗎", 0.2),
        ]:
            gaps.record(db, workspace_id=workspace_id, question=question, confidence=confidence)
    clusters = client.get(f"{K}/gaps", headers=auth).json()["clusters"]
    assert sum(c["count"] for c in clusters) == 4
    biggest = clusters[0]
    assert biggest["count"] >= 2 and ("禮物卡" in biggest["question"] or "gift" in biggest["question"])
    added = client.post(
        f"{K}/gaps/faq",
        headers=auth,
        json={"gap_ids": biggest["gap_ids"], "answer": "有，門市與官網皆可購買禮物卡。"},
    )
    assert added.status_code == 201, added.text
    assert set(added.json()["phrasings"]) == set(biggest["questions"])
    left = client.get(f"{K}/gaps", headers=auth).json()["clusters"]
    assert sum(c["count"] for c in left) == 4 - biggest["count"]
    answer = client.post(f"{K}/ask", headers=auth, json={"question": "有沒有賣禮物卡"}).json()
    assert answer["knowledge_id"] == added.json()["id"]


def test_gaps_marked_out_of_scope_are_handed_off_from_then_on(client, database, make_workspace):
    workspace_id, key, _ = make_workspace("Out of scope shop")
    auth = bearer(key)
    shipping = {"answer": "滿 NT$990 免運", "phrasings": ["運費多少", "How much is shipping?"]}
    assert client.post(f"{K}/items", headers=auth, json=shipping).status_code == 201
    with database.session() as db:
        for question in ("你們有賣貓砂嗎", "有沒有賣貓砂"):
            gaps.record(db, workspace_id=workspace_id, question=question, confidence=0.3)
    cluster = client.get(f"{K}/gaps", headers=auth).json()["clusters"][0]
    marked = client.post(f"{K}/gaps/out-of-scope", headers=auth, json={"gap_ids": cluster["gap_ids"]})
    assert marked.status_code == 200, marked.text
    item = marked.json()
    assert item["kind"] == "out_of_scope" and set(item["phrasings"]) == set(cluster["questions"])
    assert client.get(f"{K}/gaps", headers=auth).json()["clusters"] == []
    with database.session() as db:  # a later cluster joins the same item
        gap = gaps.record(db, workspace_id=workspace_id, question="Do you sell cat litter?", confidence=0.2)
        db.flush()
        gap_id = gap.id
    again = client.post(f"{K}/gaps/out-of-scope", headers=auth, json={"gap_ids": [gap_id]}).json()
    assert again["id"] == item["id"] and "Do you sell cat litter?" in again["phrasings"]
    asked = client.post(f"{K}/ask", headers=auth, json={"question": "你們有賣貓砂嗎"}).json()
    assert asked["action"] == "handoff" and asked["knowledge_id"] != item["id"]
    answered = client.post(f"{K}/ask", headers=auth, json={"question": "運費要多少錢"}).json()
    assert answered["action"] == "answer"
    assert client.post(f"{K}/gaps/out-of-scope", headers=auth, json={"gap_ids": [999999]}).status_code == 404
