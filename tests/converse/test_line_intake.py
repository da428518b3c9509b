"""LINE in, end to end through the LINE emulator: a customer's message reaches Tutti by the signed webhook,
the agent answers with the reply token (not a push), a hand-off reaches people, stickers are kept, redeliveries
are answered once, and a person's later reply goes out as a push."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.channels.emulator import line_emulator  # noqa: F401 - fixture
from tests.conftest import serving
from tests.converse.agent_world import FixedKnowledge
from tutti.audience import commerce
from tutti.audience.models import Identity
from tutti.channels import service as channels
from tutti.converse.agents import router
from tutti.converse.conversations import service
from tutti.converse.conversations.models import Conversation, Message
from tutti.converse.line_intake import handle_line_event, message_of
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow


@pytest.fixture
def knowledge(monkeypatch):
    monkeypatch.setattr(router, "_knowledge", FixedKnowledge({"退貨": (11, "退貨政策", "商品到貨 7 天內可申請退貨。")}))


def _conversation(database, contact_id) -> Conversation:
    with database.read_session() as db:
        return db.scalars(select(Conversation).where(Conversation.contact_id == contact_id)).one()


def _texts(line_emulator, user, endpoint):  # noqa: F811
    return [m["message"].get("text") for m in line_emulator.messages(user, endpoint=endpoint)]


def test_a_line_customer_gets_the_bots_answer_by_reply_and_a_person_by_push(app, database, workspace_id, line_emulator, knowledge):  # noqa: F811
    with database.session() as db:
        channel_id = channels.connect(db, workspace_id=workspace_id, kind="line", name="OA", actor=Actor.cli(),
                                      config={"api_base_url": line_emulator.base_url},
                                      credentials={"channel_secret": line_emulator.channel_secret, "access_token": line_emulator.access_token}).id
    user = line_emulator.new_user_id()
    with serving(app) as tutti_url:
        hook = f"{tutti_url}/webhooks/line/{channel_id}"
        assert line_emulator.send(hook, user_id=user, follow=True)["status"] == 200
        with database.session() as db:
            contact_id = db.scalars(select(Identity.contact_id).where(Identity.value == user)).one()
            commerce.record_orders(db, workspace_id=workspace_id, orders=[commerce.NewOrder(
                contact_id=contact_id, external_id="LN-5001", placed_at=utcnow() - timedelta(days=1), total=880.0, status="fulfilled")])

        said = line_emulator.send(hook, user_id=user, text="我的訂單什麼時候到？")
        assert said["status"] == 200
        replies = _texts(line_emulator, user, "reply")
        assert len(replies) == 1 and "LN-5001" in replies[0] and "已出貨" in replies[0]
        assert _texts(line_emulator, user, "push") == []  # the free reply, not a push

        again = line_emulator.send(hook, user_id=user, text="我的訂單什麼時候到？", webhook_event_id=said["webhook_event_id"], redelivery=True)
        assert again["status"] == 200 and len(_texts(line_emulator, user, "reply")) == 1  # answered once

        line_emulator.send(hook, user_id=user, sticker=True)
        line_emulator.send(hook, user_id=user, text="我要找真人客服")
        replies = _texts(line_emulator, user, "reply")
        assert len(replies) == 2 and "專人" in replies[1]
        conversation = _conversation(database, contact_id)
        assert conversation.status == "waiting" and conversation.channel == "line" and conversation.channel_id == channel_id

        with database.session() as db:
            service.post_agent_message(db, workspace_id=workspace_id, conversation_id=conversation.id, user_id=None, text="您好，我是客服小美")
        assert _texts(line_emulator, user, "push") == ["您好，我是客服小美"]

        late_user = line_emulator.new_user_id()  # an event handled two minutes late: its reply token is dead, so a push
        line_emulator.send(hook, user_id=late_user, follow=True)
        with database.session() as db:
            late_contact = db.scalars(select(Identity.contact_id).where(Identity.value == late_user)).one()
            handle_line_event(db, workspace_id=workspace_id, channel_id=channel_id, contact_id=late_contact, event={
                "type": "message", "timestamp": int((time.time() - 120) * 1000), "replyToken": "stale-token",
                "message": {"id": "late-1", "type": "text", "text": "退貨政策？"}})
        assert _texts(line_emulator, late_user, "push") == ["商品到貨 7 天內可申請退貨。\n（資料來源：退貨政策）"]
        assert _texts(line_emulator, late_user, "reply") == []

    with database.read_session() as db:
        rows = db.execute(select(Message.author, Message.kind, Message.text, Message.payload).where(Message.conversation_id == conversation.id)
                          .order_by(Message.id)).all()
    kinds = [(author, kind) for author, kind, _, _ in rows]
    assert kinds.count(("customer", "text")) == 2 and ("customer", "sticker") in kinds  # the sticker is kept for people
    delivered = [payload.get("delivery", {}).get("status") for author, _, _, payload in rows if author in ("bot", "agent")]
    assert delivered == ["replied", "replied", "pushed"]


def test_every_line_message_type_becomes_something_people_can_see():
    assert message_of({"type": "message", "message": {"id": "1", "type": "text", "text": "hi"}})[:2] == ("text", "hi")
    kind, text, payload, external = message_of({"type": "message", "message": {"id": "2", "type": "sticker", "packageId": 1, "stickerId": 2}})
    assert (kind, text, external) == ("sticker", None, "2") and payload["line"] == {"type": "sticker", "packageId": "1", "stickerId": "2"}
    assert message_of({"type": "message", "message": {"id": "3", "type": "image"}})[0] == "image"
    assert message_of({"type": "message", "message": {"id": "4", "type": "location", "title": "門市", "address": "台北市"}})[:2] == ("event", "門市 台北市")
    assert message_of({"type": "message", "message": {"id": "5", "type": "video"}})[:2] == ("event", "[video]")
    assert message_of({"type": "postback", "webhookEventId": "E1", "postback": {"data": "a=1"}})[::3] == ("postback", "E1")
