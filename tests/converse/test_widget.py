"""The chat widget's public endpoints: the script, sessions and identity verification, CORS, messages,
history and the SSE stream (resume with Last-Event-ID)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import serving
from tutti.audience.models import Identity
from tutti.converse.widget import service
from tutti.converse.widget.api import minify

ANON = "a" * 8 + "1234567890abcdef"


@pytest.fixture
def widget(database, workspace_id):
    with database.session() as db:
        config = service.config_for(db, workspace_id=workspace_id)
        return {"key": config.public_key, "secret": config.secret, "workspace_id": workspace_id}


def _post(client, path, body, **kw):
    return client.post(path, content=json.dumps(body), headers={"Content-Type": "text/plain", **kw.pop("headers", {})}, **kw)


def test_widget_js_is_small_gzipped_and_cacheable(client):
    plain = client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("application/javascript")
    assert "attachShadow" in plain.text and "EventSource" in plain.text and "\n//" not in plain.text
    zipped = client.get("/widget.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert len(plain.content) < 16_000 and int(zipped.headers["content-length"]) < 5_500
    again = client.get("/widget.js", headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304


def test_minify_keeps_code_and_drops_comment_lines():
    assert minify("// a comment\n  var a = 1; // trailing kept\n\n    b();\n") == "var a = 1; // trailing kept\nb();"


def test_anonymous_session_creates_one_contact_per_browser(client, database, widget):
    first = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["token"] and body["conversation_id"] is None and body["messages"] == []
    assert body["look"]["greeting"]["zh-TW"]
    again = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON}).json()
    with database.read_session() as db:
        owners = db.scalars(select(Identity.contact_id).where(Identity.kind == "anonymous_id", Identity.value == ANON.lower())).all()
        owners = owners or db.scalars(select(Identity.contact_id).where(Identity.kind == "anonymous_id")).all()
    assert len(owners) == 1
    assert service.read_token("test-secret", again["token"], workspace_id=widget["workspace_id"]).contact_id == owners[0]


def test_signed_identity_lands_on_the_customer_and_a_forged_hash_is_refused(client, database, widget):
    good = service.identity_hash(widget["secret"], "cust-42")
    response = _post(client, f"/widget/api/{widget['key']}/session",
                     {"anonymous_id": ANON, "user_id": "cust-42", "user_hash": good, "name": "林小美"})
    assert response.status_code == 200, response.text
    with database.read_session() as db:
        rows = db.execute(select(Identity.kind, Identity.value, Identity.contact_id)).all()
    kinds = {kind: contact for kind, _, contact in rows}
    assert kinds["external_id"] == kinds["anonymous_id"]  # one person: the anonymous history joins the customer
    forged = _post(client, f"/widget/api/{widget['key']}/session",
                   {"anonymous_id": ANON, "user_id": "cust-43", "user_hash": good})
    assert forged.status_code == 403 and "does not match" in forged.json()["error"]["message"]
    missing = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON, "user_id": "cust-43"})
    assert missing.status_code == 403
    with database.read_session() as db:
        assert db.scalar(select(Identity).where(Identity.value == "cust-43")) is None


def test_unknown_key_bad_anonymous_id_and_tokens_of_another_widget(client, database, widget, make_workspace):
    assert _post(client, "/widget/api/wk_nope/session", {"anonymous_id": ANON}).status_code == 404
    assert _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": "x"}).status_code == 422
    assert _post(client, f"/widget/api/{widget['key']}/session", {}).status_code == 422
    other_ws = make_workspace("Other")[0]
    with database.session() as db:
        other_key = service.config_for(db, workspace_id=other_ws).public_key
    token = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON}).json()["token"]
    stolen = client.get(f"/widget/api/{other_key}/messages", params={"token": token})
    assert stolen.status_code == 401
    assert client.get(f"/widget/api/{widget['key']}/messages", params={"token": token + "x"}).status_code == 401


def test_cors_only_for_allowed_origins(client, database, widget):
    with database.session() as db:
        service.update_config(db, workspace_id=widget["workspace_id"], allowed_origins=["https://shop.example"])
    from tutti.converse.widget import api

    api._origins.clear()
    ok = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON}, headers={"Origin": "https://shop.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
    evil = _post(client, f"/widget/api/{widget['key']}/session", {"anonymous_id": ANON}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    preflight = client.options(f"/widget/api/{widget['key']}/session", headers={"Origin": "https://shop.example",
                                                                                 "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and "POST" in preflight.headers["access-control-allow-methods"]


def test_config_validation(database, widget):
    from tutti.platform.errors import InvalidInput

    with database.session() as db:
        with pytest.raises(InvalidInput, match="origin"):
            service.update_config(db, workspace_id=widget["workspace_id"], allowed_origins=["shop.example/path"])
        with pytest.raises(InvalidInput, match="colour"):
            service.update_config(db, workspace_id=widget["workspace_id"], color="red")
        config = service.update_config(db, workspace_id=widget["workspace_id"], color="#112233",
                                       greeting={"zh-TW": "哈囉", "en": "Hello"})
        assert config.color == "#112233" and config.greeting["en"] == "Hello"


def _events(lines, count, timeout=20.0):
    """Read `count` SSE message events from an httpx line iterator."""
    got, current, deadline = [], {}, time.monotonic() + timeout
    for line in lines:
        if line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and current:
            if current.get("event") == "message":
                got.append(current)
            current = {}
            if len(got) >= count or time.monotonic() > deadline:
                break
    return got


def test_message_history_and_stream_resume(app, database, widget):
    from tutti.converse.conversations import service as conversations

    with serving(app) as base:
        api = f"{base}/widget/api/{widget['key']}"
        session = httpx.post(f"{api}/session", content=json.dumps({"anonymous_id": ANON})).json()
        token = session["token"]
        sent = httpx.post(f"{api}/messages", content=json.dumps({"token": token, "text": "你好,請問營業時間?", "client_id": "abc123xyz"}),
                          timeout=60)
        assert sent.status_code == 200, sent.text
        conversation_id = sent.json()["conversation_id"]
        again = httpx.post(f"{api}/messages", content=json.dumps({"token": token, "text": "你好,請問營業時間?", "client_id": "abc123xyz"}),
                           timeout=60)
        assert again.json()["message"]["id"] == sent.json()["message"]["id"]  # a retried send is stored once
        history = httpx.get(f"{api}/messages", params={"token": token}).json()["messages"]
        assert history[0]["author"] == "customer" and len(history) >= 2  # the bot answered or handed off
        assert all(m["kind"] not in ("note", "event") for m in history)
        first_id = history[0]["id"]

        received = {}

        def listen():
            with httpx.stream("GET", f"{api}/stream", params={"token": token, "conversation": conversation_id},
                              headers={"Last-Event-ID": str(first_id)}, timeout=30) as response:
                received["type"] = response.headers["content-type"]
                received["events"] = _events(response.iter_lines(), len(history))

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(1.0)
        with database.session() as db:
            agent_message = conversations.post_agent_message(db, workspace_id=widget["workspace_id"], conversation_id=conversation_id,
                                                             user_id=None, text="我是客服小林,來幫您")
            conversations.add_note(db, workspace_id=widget["workspace_id"], conversation_id=conversation_id, user_id=None,
                                   text="內部備註:不要給客人看")
        listener.join(30)
        ids = [e["id"] for e in received["events"]]
        assert received["type"].startswith("text/event-stream")
        # resumed after the first message: the rest of the history, then the live agent reply, no note
        assert ids == [m["id"] for m in history[1:]] + [agent_message.id]
        assert received["events"][-1]["data"]["text"] == "我是客服小林,來幫您"
        assert not any("內部備註" in (e["data"]["text"] or "") for e in received["events"])

        other = httpx.get(f"{api}/stream", params={"token": httpx.post(f"{api}/session", content=json.dumps(
            {"anonymous_id": "b" * 24})).json()["token"], "conversation": conversation_id})
        assert other.status_code == 403  # another visitor cannot read this conversation


def test_shop_page_needs_the_demo_workspace(client, database, widget):
    from tutti.platform import audit
    from tutti.platform.audit import Actor

    assert client.get("/shop").status_code == 404
    with database.session() as db:
        audit.record(db, workspace_id=widget["workspace_id"], actor=Actor.cli(), action="demo.build")
    page = client.get("/shop")
    assert page.status_code == 200 and f'data-workspace="{widget["key"]}"' in page.text and "/widget.js" in page.text
    assert "data-user-hash" not in page.text
