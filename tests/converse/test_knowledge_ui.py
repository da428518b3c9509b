"""The knowledge pages: list, search, try a question, edit phrasings, import problems, gaps → FAQ."""

from __future__ import annotations

import re

import pytest

from tutti.converse.knowledge import gaps, service
from tutti.platform import workspaces
from tutti.platform.audit import Actor


@pytest.fixture(scope="module", autouse=True)
def embedding_cache(tmp_path_factory):
    from tutti.ai import embeddings

    embeddings.use_disk_cache(tmp_path_factory.mktemp("vectors") / "embeddings.sqlite")
    yield
    embeddings.use_disk_cache(None)


def _login(client, database, workspace_id: int, role: str = "admin") -> str:
    with database.session() as db:
        user = workspaces.create_user(
            db, email=f"{role}@example.com", password="correct horse battery", name=role
        )
        workspaces.add_member(db, workspace_id=workspace_id, user_id=user.id, role=role, actor=Actor.cli())
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    data = {"email": f"{role}@example.com", "password": "correct horse battery"}
    if token:
        data["csrf_token"] = token.group(1)
    client.post("/login", data=data, follow_redirects=False)
    listing = client.get("/knowledge")
    assert listing.status_code == 200, listing.text[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', listing.text).group(1)


def test_pages(client, database, workspace_id):
    with database.session() as db:
        item = service.create_item(
            db,
            workspace_id=workspace_id,
            actor=Actor.cli(),
            external_id="ship",
            answer="滿 NT$990 免運",
            phrasings=["運費多少？", "How much is shipping?"],
            topic="shipping",
        )
        gaps.record(db, workspace_id=workspace_id, question="你們有賣禮物卡嗎")
    csrf = _login(client, database, workspace_id)
    page = client.get("/knowledge?q=shipping")
    assert "運費多少？" in page.text or "ship" in page.text
    asked = client.post("/knowledge/ask", data={"question": "運費要多少錢", "csrf_token": csrf})
    assert 'data-action="answer"' in asked.text and "NT$990" in asked.text
    saved = client.post(
        f"/knowledge/{item.id}",
        data={
            "csrf_token": csrf,
            "title": "運費",
            "answer": "滿 NT$990 免運",
            "phrasings": "運費多少？\n免運門檻是多少",
            "enabled": "1",
        },
        follow_redirects=True,
    )
    assert saved.status_code == 200 and "免運門檻是多少" in saved.text
    bad = client.post(
        "/knowledge/import",
        data={"csrf_token": csrf},
        files={"file": ("kb.csv", b"id,question,answer\n,q,a\n", "text/csv")},
    )
    assert bad.status_code == 422 and "import-problems" in bad.text
    gaps_page = client.get("/knowledge/gaps")
    assert "你們有賣禮物卡嗎" in gaps_page.text
    ids = re.search(r'name="gap_ids" value="([^"]+)"', gaps_page.text).group(1)
    added = client.post(
        "/knowledge/gaps/faq",
        data={"csrf_token": csrf, "gap_ids": ids, "answer": "有，官網可購買禮物卡。"},
        follow_redirects=True,
    )
    assert added.status_code == 200 and "你們有賣禮物卡嗎" in added.text
    assert "knowledge.no_gaps" not in client.get("/knowledge/gaps").text


def test_a_gap_marked_out_of_scope_shows_in_the_list(client, database, workspace_id):
    with database.session() as db:
        gaps.record(db, workspace_id=workspace_id, question="你們有賣貓砂嗎")
    csrf = _login(client, database, workspace_id)
    gaps_page = client.get("/knowledge/gaps")
    assert 'data-testid="mark-out-of-scope"' in gaps_page.text
    ids = re.search(r'name="gap_ids" value="([^"]+)"', gaps_page.text).group(1)
    marked = client.post("/knowledge/gaps/out-of-scope", data={"csrf_token": csrf, "gap_ids": ids}, follow_redirects=True)
    assert marked.status_code == 200 and "你們有賣貓砂嗎" not in marked.text
    listing = client.get("/knowledge")
    assert "Out of scope" in listing.text and ("範圍外" in listing.text or "Out of scope: hand off" in listing.text)


def test_calibration_questions_are_uploaded_on_the_knowledge_page(client, database, workspace_id):
    import json

    from tutti.converse.knowledge import questions

    with database.session() as db:
        service.create_item(db, workspace_id=workspace_id, actor=Actor.cli(), external_id="ship",
                            answer="滿 NT$990 免運", phrasings=["運費多少？", "How much is shipping?"])
    csrf = _login(client, database, workspace_id)
    assert 'data-testid="calibration-form"' in client.get("/knowledge").text
    rows = [{"question": "我買八百塊要運費嗎", "expected": "ship"}, {"question": "有學生優惠嗎", "expected": None}]
    good = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    done = client.post("/knowledge/calibration-questions", data={"csrf_token": csrf},
                       files={"file": ("questions.jsonl", good, "application/json")})
    assert done.status_code == 200 and 'data-testid="calibration-summary"' in done.text
    bad = client.post("/knowledge/calibration-questions", data={"csrf_token": csrf},
                      files={"file": ("questions.csv", "question,expected\n點數呢,nope\n".encode(), "text/csv")})
    assert bad.status_code == 422 and "no item &#39;nope&#39; in this workspace" in bad.text
    with database.session() as db:  # the refused file changed nothing
        assert questions.counts(db, workspace_id=workspace_id) == {"questions": 2, "in_scope": 1, "out_of_scope": 1}
    client.cookies.set("tutti_locale", "zh-TW")
    page = client.get("/knowledge").text
    assert "目前：2 題（1 題有對應項目）" in page, re.search(r"calibration-counts\">[^<]*", page).group(0)
