"""The inbox pages (TestClient): queues and counts, the conversation with the profile, replies and notes,
assign/tags/resolve, bulk actions, canned responses, widget settings, metrics, permissions and tenancy."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import seed_workspace, sign_in


@pytest.fixture
def conversation(database, seeded):
    """王小明 wrote on the website; the bot is still on it. Returns the conversation id."""
    from tutti.converse.conversations import service

    with database.session() as db:
        message = service.receive_customer_message(db, workspace_id=seeded.workspace_id, contact_id=seeded.contacts["王小明"],
                                                   channel="web", text="我的訂單 O-1001 到哪裡了?", run_agent=False)
        return message.conversation_id


def test_inbox_lists_queues_and_shows_conversation_with_profile(owner_client, seeded, conversation):
    page = owner_client.get("/inbox?queue=bot")
    assert page.status_code == 200, page.text
    assert "王小明" in page.text and f'data-id="{conversation}"' in page.text
    assert re.search(r'data-count="bot">\s*1<', page.text)
    opened = owner_client.get(f"/inbox?queue=bot&c={conversation}")
    assert opened.status_code == 200
    html = opened.text
    assert "我的訂單 O-1001 到哪裡了?" in html
    assert "O-1001" in html and "completed" in html  # recent orders with status, beside the thread
    assert "VIP" in html and "C001" in html  # tags and identities
    assert 'hx-post="/inbox/c/' in html  # the reply box


def test_reply_note_assign_tag_resolve(owner_client, database, seeded, conversation):
    from tutti.converse.conversations.models import Conversation, Message

    headers = {"X-CSRF-Token": owner_client.csrf}
    thread = owner_client.post(f"/inbox/c/{conversation}/reply", data={"text": "您好,我來幫您查"}, headers=headers)
    assert thread.status_code == 200 and "您好,我來幫您查" in thread.text
    note = owner_client.post(f"/inbox/c/{conversation}/reply", data={"text": "客人很急", "note": "1"}, headers=headers)
    assert "msg-note" in note.text and "客人很急" in note.text
    empty = owner_client.post(f"/inbox/c/{conversation}/reply", data={"text": "  "}, headers=headers)
    assert empty.status_code == 200 and "alert" in empty.text
    tagged = owner_client.post(f"/inbox/c/{conversation}/tags", data={"add": "物流, 急件", "queue": "mine"}, headers=headers,
                               follow_redirects=False)
    assert tagged.status_code == 303
    resolved = owner_client.post(f"/inbox/c/{conversation}/resolve", data={"queue": "mine"}, headers=headers, follow_redirects=False)
    assert resolved.status_code == 303
    with database.read_session() as db:
        row = db.get(Conversation, conversation)
        kinds = [(m.author, m.kind) for m in db.query(Message).filter(Message.conversation_id == conversation).order_by(Message.id)]
    assert row.status == "resolved" and row.assignee_user_id == seeded.owner_id and row.tags == ["物流", "急件"]
    assert ("agent", "text") in kinds and ("agent", "note") in kinds


def test_bulk_resolve_and_assign(owner_client, database, seeded, conversation):
    from tutti.converse.conversations import service
    from tutti.converse.conversations.models import Conversation

    with database.session() as db:
        other = service.receive_customer_message(db, workspace_id=seeded.workspace_id, contact_id=seeded.contacts["林美玲"],
                                                 channel="web", text="請問有門市嗎", run_agent=False).conversation_id
    answer = owner_client.post("/inbox/bulk", data={"ids": [str(conversation), str(other)], "action": "assign_me", "queue": "bot"},
                               headers={"X-CSRF-Token": owner_client.csrf}, follow_redirects=False)
    assert answer.status_code == 303 and "done=2" in answer.headers["location"]
    mine = owner_client.get("/inbox?queue=mine")
    assert re.search(r'data-count="mine">\s*2<', mine.text)
    owner_client.post("/inbox/bulk", data={"ids": [str(conversation), str(other)], "action": "resolve", "queue": "mine"},
                      headers={"X-CSRF-Token": owner_client.csrf})
    with database.read_session() as db:
        assert {db.get(Conversation, cid).status for cid in (conversation, other)} == {"resolved"}


def test_canned_responses(owner_client, database, seeded):
    headers = {"X-CSRF-Token": owner_client.csrf}
    saved = owner_client.post("/inbox/canned", data={"name": "運送時間", "shortcut": "/ship", "text_zh": "一般 2–3 個工作天送達。",
                                                     "text_en": "Delivery takes 2–3 working days."}, headers=headers, follow_redirects=False)
    assert saved.status_code == 303
    clash = owner_client.post("/inbox/canned", data={"name": "x", "shortcut": "ship", "text_zh": "y"}, headers=headers)
    assert clash.status_code == 422 and "/ship" in clash.text
    listing = owner_client.get("/inbox/canned")
    assert "/ship" in listing.text and "一般 2–3 個工作天送達。" in listing.text


def test_widget_settings_and_metrics_pages(owner_client, database, seeded, conversation):
    settings_page = owner_client.get("/inbox/widget")
    assert settings_page.status_code == 200 and "widget.js" in settings_page.text and "data-workspace=" in settings_page.text
    saved = owner_client.post("/inbox/widget", data={"origins": "https://shop.example", "color": "#0f766e", "greeting_zh": "歡迎光臨",
                                                     "greeting_en": "Welcome"}, headers={"X-CSRF-Token": owner_client.csrf},
                              follow_redirects=False)
    assert saved.status_code == 303
    assert "https://shop.example" in owner_client.get("/inbox/widget").text
    metrics = owner_client.get("/inbox/metrics?days=7")
    assert metrics.status_code == 200 and 'id="chart-volume"' in metrics.text and "metrics-data" in metrics.text


def test_other_workspaces_conversations_are_not_found(client, database, seeded, conversation):
    seed_workspace(database, name="別家", email="other@example.com")
    assert sign_in(client, email="other@example.com").status_code == 303
    assert client.get(f"/inbox?c={conversation}").status_code == 404
    assert "王小明" not in client.get("/inbox?queue=all").text


def test_marketer_reads_but_cannot_reply_and_analyst_cannot_read(client, database, seeded, conversation):
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor

    with database.session() as db:
        for role in ("marketer", "analyst"):
            user = workspaces.create_user(db, email=f"{role}@example.com", password=seeded.password, name=role)
            workspaces.add_member(db, workspace_id=seeded.workspace_id, user_id=user.id, role=role, actor=Actor.cli())
    assert sign_in(client, email="marketer@example.com").status_code == 303
    page = client.get(f"/inbox?queue=all&c={conversation}")
    assert page.status_code == 200 and "reply-form" not in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    refused = client.post(f"/inbox/c/{conversation}/reply", data={"text": "hi"}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    client.cookies.clear()
    assert sign_in(client, email="analyst@example.com").status_code == 303
    assert client.get("/inbox").status_code == 403


def test_typing_reaches_the_widget_stream_only(owner_client, seeded, conversation):
    import asyncio
    import threading

    from tutti.converse import realtime

    got, ready = [], threading.Event()

    def listen():
        async def run():
            async with realtime.subscribe(seeded.workspace_id, conversation_id=conversation) as events:
                ready.set()
                got.append(await events.get(5))
        asyncio.run(run())

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(5)
    answer = owner_client.post(f"/inbox/c/{conversation}/typing", headers={"X-CSRF-Token": owner_client.csrf})
    listener.join(10)
    assert answer.status_code == 204
    assert got == [{"type": "typing", "conversation_id": conversation, "author": "agent"}]
    assert owner_client.post("/inbox/c/999999/typing", headers={"X-CSRF-Token": owner_client.csrf}).status_code == 404


def test_start_a_conversation_from_a_contact_and_from_a_segment(owner_client, database, seeded):
    from sqlalchemy import select

    from tutti.converse.conversations.models import Conversation, Message
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service as segments

    headers = {"X-CSRF-Token": owner_client.csrf}
    ming = seeded.contacts["王小明"]
    assert f'href="/inbox/outbound?contact={ming}"' in owner_client.get(f"/contacts/{ming}").text
    form = owner_client.get(f"/inbox/outbound?contact={ming}")
    assert form.status_code == 200 and "王小明" in form.text and 'data-testid="outbound-form"' in form.text
    empty = owner_client.post("/inbox/outbound", data={"contact_id": ming, "channel": "line", "text": " "}, headers=headers)
    assert empty.status_code == 422 and "text" in empty.text
    sent = owner_client.post("/inbox/outbound", data={"contact_id": ming, "channel": "line", "text": "您好，您的預購商品到貨了！"},
                             headers=headers, follow_redirects=False)
    assert sent.status_code == 303
    conversation_id = int(re.search(r"c=(\d+)", sent.headers["location"]).group(1))
    with database.read_session() as db:
        conversation = db.get(Conversation, conversation_id)
        assert conversation.contact_id == ming and conversation.channel == "line"
        texts = db.scalars(select(Message.text).where(Message.conversation_id == conversation_id, Message.author == "agent")).all()
    assert texts == ["您好，您的預購商品到貨了！"]

    with database.session() as db:
        segment = segments.create_segment(db, workspace_id=seeded.workspace_id, actor=Actor.cli(), name="VIP 客人",
                                          rules={"op": "and", "children": [{"kind": "tag", "tag": "VIP"}]})
        segment_id = segment.id
    page = owner_client.get(f"/segments/{segment_id}")
    assert f'href="/inbox/outbound?segment={segment_id}"' in page.text
    assert "VIP 客人" in owner_client.get(f"/inbox/outbound?segment={segment_id}").text
    unrefreshed = owner_client.post("/inbox/outbound", data={"segment_id": segment_id, "channel": "web", "text": "新品通知"}, headers=headers)
    assert unrefreshed.status_code == 422  # no materialised members yet: said, nothing sent
    with database.session() as db:
        segments.refresh(db, workspace_id=seeded.workspace_id, segment_id=segment_id)
    done = owner_client.post("/inbox/outbound", data={"segment_id": segment_id, "channel": "web", "text": "新品通知"}, headers=headers,
                             follow_redirects=False)
    assert done.status_code == 303
    with database.read_session() as db:
        web = db.scalars(select(Conversation.contact_id).where(Conversation.workspace_id == seeded.workspace_id,
                                                               Conversation.channel == "web")).all()
    assert web  # every VIP member has a conversation with the message
    other = seed_workspace(database, name="別家", email="other@example.com")
    foreign = owner_client.get(f"/inbox/outbound?contact={other.contacts['王小明']}")
    assert foreign.status_code == 404
