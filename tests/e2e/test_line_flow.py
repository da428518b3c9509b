"""Where the two halves meet: a demo member who follows the brand on LINE writes to the official account (through
the LINE emulator, signed like LINE signs its webhooks); the webhook (channels) hands the message to Converse,
the agent answers from the knowledge base with the free reply token, and the customer's phone shows the
answer; asking for a person puts the conversation, on the member's own profile, in the people's queue. A person
replies (a push: the reply token is spent) and resolves it; the conversation's topic becomes a tag on the
member, which a segment can target (the loop back to Reach)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import bearer
from tests.e2e.conftest import handoff_words, prepare_knowledge

pytestmark = pytest.mark.slow


def test_a_member_writes_on_line_and_the_agent_replies_on_their_phone(demo, database, vector_cache):
    from tutti.audience.models import Consent, Identity
    from tutti.channels.models import Channel
    from tutti.converse.conversations.models import Conversation, Message

    wid = demo.workspace_id
    with database.read_session() as db:
        channel_id = db.scalar(select(Channel.id).where(Channel.workspace_id == wid, Channel.kind == "line"))
        contact_id, uid = db.execute(
            select(Identity.contact_id, Identity.value).join(Consent, (Consent.contact_id == Identity.contact_id) & (Consent.channel == "line"))
            .where(Identity.workspace_id == wid, Identity.kind == "line_uid", Consent.status == "subscribed")
            .order_by(Identity.contact_id).limit(1)).one()
    prepare_knowledge(database, wid)
    webhook = f"{demo.url}/webhooks/line/{channel_id}"

    demo.emulator.send(webhook, user_id=uid, text="運費要怎麼算？買多少可以免運")
    replies = demo.emulator.messages(uid, endpoint="reply")
    assert len(replies) == 1, demo.emulator.messages(uid)  # answered once, with the free reply token (not a paid push)
    assert "NT$990" in replies[0]["message"]["text"]

    demo.emulator.send(webhook, user_id=uid, text="我想找真人客服")
    texts = [m["message"].get("text", "") for m in demo.emulator.messages(uid, endpoint="reply")]
    assert len(texts) == 2 and handoff_words(database, wid) in texts[1], texts

    with database.read_session() as db:
        conversation = db.scalars(select(Conversation).where(Conversation.workspace_id == wid, Conversation.channel == "line",
                                                             Conversation.contact_id == contact_id)
                                  .order_by(Conversation.id.desc()).limit(1)).one()
        assert conversation.status == "waiting" and conversation.channel_id == channel_id
        authors = db.scalars(select(Message.author).where(Message.conversation_id == conversation.id).order_by(Message.id)).all()
    assert authors[:2] == ["customer", "bot"] and authors.count("customer") == 2 and "system" in authors  # the summary note

    # a person answers through the API and resolves the conversation
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service as segments

    with database.session() as db:
        key = workspaces.create_api_key(db, workspace_id=wid, name="e2e", role="admin", actor=Actor.cli()).key
    api = httpx.Client(base_url=demo.url, headers=bearer(key), timeout=60)
    reply = "您好，我是客服小美：滿 NT$990 免運，今天下單明天出貨喔！"
    assert api.post(f"/api/v1/conversations/{conversation.id}/messages", json={"text": reply}).status_code == 201
    pushed = [m["message"].get("text") for m in demo.emulator.messages(uid, endpoint="push")]
    assert pushed == [reply]  # the reply token was used by the bot: a person's answer is pushed
    resolved = api.post(f"/api/v1/conversations/{conversation.id}/resolve", json={"ask_csat": False})
    assert resolved.status_code == 200, resolved.text
    topic = resolved.json()["topic"]
    assert topic, resolved.json()
    rules = {"version": 1, "root": {"kind": "group", "op": "and", "children": [
        {"kind": "tag", "tag": f"topic:{topic}", "op": "has"}, {"kind": "reachable", "channel": "line"}]}}
    counted = api.post("/api/v1/segments/count", json={"rules": rules})
    assert counted.status_code == 200 and counted.json()["count"] >= 1, counted.text
    with database.read_session() as db:
        assert contact_id in set(db.scalars(segments.members_select(workspace_id=wid, rules=rules)))
