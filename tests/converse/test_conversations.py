"""Conversations: customer messages in (de-duplicated, reopening), the agent's answers and hand-offs, people's
work (notes, tags, assign, round robin, transfer, follow-up, resolve, CSAT), queues and outbound."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.converse.agent_world import FixedKnowledge, make_agent_user, make_contact
from tutti.audience import tags as audience_tags
from tutti.converse.agents import router
from tutti.converse.conversations import service, teams
from tutti.converse.conversations.models import AgentDecision, Conversation, Message
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound


@pytest.fixture
def knowledge(monkeypatch):
    fixed = FixedKnowledge({"退貨": (11, "退貨政策", "商品到貨 7 天內可申請退貨。"), "return": (11, "退貨政策", "You can return items within 7 days.")})
    monkeypatch.setattr(router, "_knowledge", fixed)
    return fixed


@pytest.fixture
def events(monkeypatch):
    from tutti.converse import realtime

    seen: list[dict] = []
    monkeypatch.setattr(realtime, "publish", lambda workspace_id, event: seen.append({"workspace_id": workspace_id, **event}))
    return seen


@pytest.fixture
def shop(database, workspace_id):
    with database.session() as db:
        mei = make_contact(db, workspace_id, "mei@example.com", orders=[("SO-1001", "fulfilled", 990.0, 3), ("SO-1000", "completed", 450.0, 40)])
        ken = make_contact(db, workspace_id, "ken@example.com", name="Ken", orders=[("SO-2001", "paid", 3200.0, 1)])
        agent = make_agent_user(db, workspace_id, "agent1@example.com")
        other_agent = make_agent_user(db, workspace_id, "agent2@example.com")
    return {"workspace_id": workspace_id, "mei": mei, "ken": ken, "agent": agent, "agent2": other_agent}


def _say(database, shop, text, contact="mei", **kwargs):
    with database.session() as db:
        message = service.receive_customer_message(db, workspace_id=shop["workspace_id"], contact_id=shop[contact], channel=kwargs.pop("channel", "web"),
                                                   text=text, **kwargs)
        return message.id, message.conversation_id


def _messages(database, shop, conversation_id):
    with database.session() as db:
        return [(m.author, m.kind, m.text) for m in service.messages_of(db, workspace_id=shop["workspace_id"], conversation_id=conversation_id)]


def _conversation(database, conversation_id) -> Conversation:
    with database.session() as db:
        return db.get(Conversation, conversation_id)


def test_the_bot_answers_an_order_question_with_this_customers_order_and_records_why(database, shop, knowledge, events):
    _, cid = _say(database, shop, "我的訂單什麼時候到？")
    messages = _messages(database, shop, cid)
    assert messages[0] == ("customer", "text", "我的訂單什麼時候到？")
    assert messages[1][0] == "bot" and "SO-1001" in messages[1][2] and "已出貨" in messages[1][2]
    assert "SO-2001" not in messages[1][2]  # Ken's order
    conversation = _conversation(database, cid)
    assert conversation.status == "bot" and conversation.first_response_at is not None and conversation.first_human_response_at is None
    assert conversation.handled_by_bot_only and conversation.language == "zh-TW"
    with database.session() as db:
        decision = db.scalar(select(AgentDecision).where(AgentDecision.conversation_id == cid))
    assert decision.action == "tool" and decision.tool == "order_status" and "order_status" in decision.reason
    assert decision.detail["tool_result"]["order"]["order_number"] == "SO-1001" and decision.latency_ms is not None
    kinds = [e["type"] for e in events]
    assert kinds.count("message") == 2 and "conversation" in kinds
    assert all(e["workspace_id"] == shop["workspace_id"] and e["conversation_id"] == cid for e in events)


def test_a_knowledge_answer_cites_its_source_in_the_customers_language(database, shop, knowledge):
    _, cid = _say(database, shop, "How do I return an item?")
    bot = _messages(database, shop, cid)[1]
    assert bot[2].startswith("You can return items within 7 days.") and "(Source: 退貨政策)" in bot[2]
    with database.session() as db:
        decision = db.scalar(select(AgentDecision).where(AgentDecision.conversation_id == cid))
    assert decision.action == "answer" and decision.knowledge_id == 11 and decision.confidence == pytest.approx(0.93)


def test_a_repeated_external_id_is_stored_once_and_answered_once(database, shop, knowledge, events):
    first, cid = _say(database, shop, "退貨怎麼辦理", external_id="line-msg-1")
    again, same = _say(database, shop, "退貨怎麼辦理", external_id="line-msg-1")
    assert (again, same) == (first, cid)
    assert [m[0] for m in _messages(database, shop, cid)] == ["customer", "bot"]
    # the same id on another channel is another message
    other, _ = _say(database, shop, "退貨怎麼辦理", external_id="line-msg-1", channel="api")
    assert other != first


def test_events_wait_for_the_commit_and_a_rollback_sends_none(database, shop, knowledge, events):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.session() as db:
        service.receive_customer_message(db, workspace_id=shop["workspace_id"], contact_id=shop["mei"], channel="web", text="退貨")
        assert events == []  # nothing before the commit
        raise Boom()
    assert events == []
    with database.session() as db:
        assert db.scalar(select(Message.id)) is None


def test_asking_for_a_person_hands_off_to_the_team_with_a_summary_and_round_robin(database, shop, knowledge):
    with database.session() as db:
        team = teams.create_team(db, workspace_id=shop["workspace_id"], name="客服", is_default=True, members=[shop["agent"], shop["agent2"]])
        teams.set_online(db, workspace_id=shop["workspace_id"], user_id=shop["agent"], online=True)
        teams.set_online(db, workspace_id=shop["workspace_id"], user_id=shop["agent2"], online=True)
        team_id = team.id
    _say(database, shop, "where is my order")
    _, cid = _say(database, shop, "我要找真人客服")
    conversation = _conversation(database, cid)
    assert conversation.status == "assigned" and conversation.team_id == team_id and not conversation.handled_by_bot_only
    first_assignee = conversation.assignee_user_id
    messages = _messages(database, shop, cid)
    note = next(m for m in messages if m[1] == "note")
    assert note[0] == "system" and "客人要求真人" in note[2] and "SO-1001" in note[2] and "我要找真人客服" in note[2]
    assert any(m[0] == "bot" and "專人" in m[2] for m in messages)
    with database.session() as db:
        decision = db.scalars(select(AgentDecision).where(AgentDecision.conversation_id == cid).order_by(AgentDecision.id.desc())).first()
    assert decision.action == "handoff" and decision.handoff_reason == "asked_for_person"
    # the next hand-off goes to the other person
    _, kid = _say(database, shop, "I want to talk to a human", contact="ken")
    ken_conversation = _conversation(database, kid)
    assert ken_conversation.assignee_user_id not in (None, first_assignee)
    assert any(m[0] == "bot" and "bringing in a person" in m[2] for m in _messages(database, shop, kid))
    # a person has it now: the bot stays quiet
    _say(database, shop, "還在嗎？退貨怎麼辦")
    assert _messages(database, shop, cid)[-1] == ("customer", "text", "還在嗎？退貨怎麼辦")


def test_out_of_hours_the_customer_gets_the_teams_message_and_nobody_is_assigned(database, shop, knowledge):
    with database.session() as db:
        teams.create_team(db, workspace_id=shop["workspace_id"], name="Night", is_default=True, members=[shop["agent"]],
                          business_hours={"mon": [["00:00", "00:01"]]}, out_of_hours_message={"zh-TW": "我們明天早上九點回覆您", "en": "Back at 9"})
        teams.set_online(db, workspace_id=shop["workspace_id"], user_id=shop["agent"], online=True)
    _, cid = _say(database, shop, "轉接真人")
    conversation = _conversation(database, cid)
    assert conversation.status == "waiting" and conversation.assignee_user_id is None
    assert _messages(database, shop, cid)[-1] == ("bot", "text", "我們明天早上九點回覆您")


def test_low_confidence_hands_off_and_stickers_reach_people_without_a_bot_guess(database, shop, knowledge):
    _, cid = _say(database, shop, "你們老闆喜歡什麼顏色")
    conversation = _conversation(database, cid)
    assert conversation.status == "waiting"
    with database.session() as db:
        decision = db.scalar(select(AgentDecision).where(AgentDecision.conversation_id == cid))
    assert decision.handoff_reason == "low_confidence" and "0.12" in decision.reason
    _, other = _say(database, shop, None, contact="ken", kind="sticker", payload={"line": {"type": "sticker", "packageId": "1", "stickerId": "2"}})
    assert _messages(database, shop, other) == [("customer", "sticker", None)]  # kept, and no guess at what it means
    assert _conversation(database, other).status == "bot"
    _say(database, shop, None, contact="ken", kind="image", payload={"line_message_id": "9"})
    assert _conversation(database, other).status == "waiting"  # a photo needs a person's eyes
    assert not any(m[0] == "bot" for m in _messages(database, shop, other))


def test_people_reply_note_tag_assign_transfer_follow_up_resolve_and_csat(database, shop, knowledge):
    wid = shop["workspace_id"]
    _, cid = _say(database, shop, "退貨要多久")
    with database.session() as db:
        service.post_agent_message(db, workspace_id=wid, conversation_id=cid, user_id=shop["agent"], text="您好，我來幫您看看")
        service.add_note(db, workspace_id=wid, conversation_id=cid, user_id=shop["agent"], text="客人很急")
        service.set_tags(db, workspace_id=wid, conversation_id=cid, add=["退貨", "急件"])
        service.set_tags(db, workspace_id=wid, conversation_id=cid, remove=["急件"])
    conversation = _conversation(database, cid)
    assert conversation.status == "assigned" and conversation.assignee_user_id == shop["agent"] and conversation.tags == ["退貨"]
    assert conversation.first_human_response_at is not None and not conversation.handled_by_bot_only
    with database.session() as db:
        team = teams.create_team(db, workspace_id=wid, name="退貨組", assignment="manual")
        service.transfer(db, workspace_id=wid, conversation_id=cid, team_id=team.id)
    conversation = _conversation(database, cid)
    assert conversation.status == "waiting" and conversation.team_id == team.id and conversation.assignee_user_id is None
    with database.session() as db:
        service.assign(db, workspace_id=wid, conversation_id=cid, user_id=shop["agent2"])
        service.follow_up(db, workspace_id=wid, conversation_id=cid, until=utcnow() + timedelta(days=1))
    assert _conversation(database, cid).status == "follow_up"
    _say(database, shop, "請問好了嗎")  # the customer answers: back to the person
    assert _conversation(database, cid).status == "assigned"
    with database.session() as db:
        service.resolve(db, workspace_id=wid, conversation_id=cid, by_user_id=shop["agent2"])
    conversation = _conversation(database, cid)
    assert conversation.status == "resolved" and conversation.resolved_at is not None
    assert "1 到 5" in _messages(database, shop, cid)[-1][2]  # CSAT asked in zh-TW
    _say(database, shop, "5")  # a lone score right after resolving is the CSAT, not a new question
    conversation = _conversation(database, cid)
    assert conversation.csat_score == 5 and conversation.status == "resolved" and conversation.reopened_count == 0
    _, again = _say(database, shop, "還有一個問題，退貨運費誰付？")
    conversation = _conversation(database, again)
    assert again == cid and conversation.reopened_count == 1 and conversation.status == "assigned"
    with database.session() as db:
        with pytest.raises(InvalidInput):
            service.record_csat(db, workspace_id=wid, conversation_id=cid, score=6)
        with pytest.raises(NotFound):
            service.assign(db, workspace_id=wid, conversation_id=cid, user_id=999999)


def test_resolving_tags_the_contact_with_the_topic(database, shop, knowledge):
    wid = shop["workspace_id"]
    _, cid = _say(database, shop, "退貨政策？")
    with database.session() as db:
        service.resolve(db, workspace_id=wid, conversation_id=cid)
        names = [t["name"] for t in audience_tags.tags_of(db, contact_id=shop["mei"])]
    assert _conversation(database, cid).topic == "退貨政策"
    assert "topic:退貨政策" in names


def test_a_bot_only_conversation_resolved_long_ago_starts_a_new_one(database, shop, knowledge):
    wid = shop["workspace_id"]
    _, cid = _say(database, shop, "退貨政策？")
    with database.session() as db:
        service.resolve(db, workspace_id=wid, conversation_id=cid, ask_csat=False)
        db.get(Conversation, cid).resolved_at = utcnow() - service.REOPEN_WINDOW - timedelta(hours=1)
    _, new = _say(database, shop, "退貨政策？")
    assert new != cid and _conversation(database, new).status == "bot"


def test_queues_and_cursor_paging(database, shop, knowledge):
    wid = shop["workspace_id"]
    ids = []
    with database.session() as db:
        for n in range(5):
            contact = make_contact(db, wid, f"q{n}@example.com")
            ids.append(service.receive_customer_message(db, workspace_id=wid, contact_id=contact, channel="web", text="找真人").conversation_id)
        service.assign(db, workspace_id=wid, conversation_id=ids[0], user_id=shop["agent"])
    _, bot_cid = _say(database, shop, "退貨政策？")
    with database.session() as db:
        mine, _ = service.list_conversations(db, workspace_id=wid, queue="mine", user_id=shop["agent"])
        unassigned, _ = service.list_conversations(db, workspace_id=wid, queue="unassigned")
        bot, _ = service.list_conversations(db, workspace_id=wid, queue="bot")
        pages, cursor = [], None
        while True:
            page, cursor = service.list_conversations(db, workspace_id=wid, queue="all", limit=2, cursor=cursor)
            pages.append([c.id for c in page])
            if cursor is None:
                break
        with pytest.raises(InvalidInput):
            service.list_conversations(db, workspace_id=wid, queue="nope")
    assert [c.id for c in mine] == [ids[0]]
    assert sorted(c.id for c in unassigned) == sorted(ids[1:])
    assert [c.id for c in bot] == [bot_cid]
    flat = [i for page in pages for i in page]
    assert sorted(flat) == sorted(ids + [bot_cid]) and len(flat) == len(set(flat)) and all(len(p) <= 2 for p in pages)


def test_bulk_actions_and_outbound(database, shop, knowledge):
    wid = shop["workspace_id"]
    _, a = _say(database, shop, "找真人")
    _, b = _say(database, shop, "找真人", contact="ken")
    with database.session() as db, pytest.raises(NotFound):
        service.bulk(db, workspace_id=wid, conversation_ids=[a, b, 987654], action="resolve", by_user_id=shop["agent"])
    assert _conversation(database, a).status == "waiting"  # all or nothing
    with database.session() as db:
        result = service.bulk(db, workspace_id=wid, conversation_ids=[a, b], action="resolve", by_user_id=shop["agent"])
    assert result == {"done": 2, "errors": []}
    assert _conversation(database, a).status == "resolved"
    with database.session() as db:
        started = service.start_outbound(db, workspace_id=wid, text="您的包裹明天到", channel="web", user_id=shop["agent"],
                                         contact_ids=[shop["mei"], shop["ken"]])
    assert len(started) == 2 and a not in started
    for conversation_id in started:
        conversation = _conversation(database, conversation_id)
        assert conversation.status == "assigned" and conversation.assignee_user_id == shop["agent"]
        assert _messages(database, shop, conversation_id) == [("agent", "text", "您的包裹明天到")]
    with database.session() as db:
        again = service.start_outbound(db, workspace_id=wid, text="補充說明", channel="web", user_id=shop["agent"], contact_ids=[shop["mei"]])
    assert again == started[:1] or again[0] in started  # an open conversation is continued, not duplicated


def test_merging_contacts_moves_their_conversations(database, shop, knowledge):
    from tutti.audience import contacts
    from tutti.platform.audit import Actor

    _, kid = _say(database, shop, "退貨政策？", contact="ken")
    with database.session() as db:
        contacts.merge(db, workspace_id=shop["workspace_id"], winner_id=shop["mei"], loser_id=shop["ken"], reason="manual", actor=Actor.cli())
    assert _conversation(database, kid).contact_id == shop["mei"]


def test_outbound_to_each_member_of_a_segment(database, shop, knowledge):
    from tutti.audience import tags as audience_tags
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service as segments

    wid = shop["workspace_id"]
    with database.session() as db:
        audience_tags.apply(db, workspace_id=wid, contact_ids=[shop["mei"], shop["ken"]], tag="vip")
        segment = segments.create_segment(db, workspace_id=wid, name="VIP", rules={"op": "and", "children": [{"kind": "tag", "tag": "vip"}]},
                                          actor=Actor.cli())
        segments.refresh(db, workspace_id=wid, segment_id=segment.id)
        started = service.start_outbound(db, workspace_id=wid, text="VIP 專屬優惠開跑", channel="web", user_id=shop["agent"], segment_id=segment.id)
        with pytest.raises(NotFound):
            service.start_outbound(db, workspace_id=wid, text="x", channel="web", user_id=None, segment_id=987654)
    assert len(started) == 2
    assert {_conversation(database, c).contact_id for c in started} == {shop["mei"], shop["ken"]}


def test_quiet_bot_conversations_resolve_by_the_bot_and_follow_ups_wake(database, shop, knowledge):
    wid = shop["workspace_id"]
    _, answered = _say(database, shop, "退貨政策？")
    _, parked = _say(database, shop, "找真人", contact="ken")
    with database.session() as db:
        assert service.resolve_idle_bot_conversations(db) == 0  # not quiet long enough yet
        db.get(Conversation, answered).last_message_at = utcnow() - service.BOT_IDLE - timedelta(minutes=1)
        service.assign(db, workspace_id=wid, conversation_id=parked, user_id=shop["agent"])
        service.follow_up(db, workspace_id=wid, conversation_id=parked, until=utcnow() - timedelta(minutes=1))
    with database.session() as db:
        assert service.resolve_idle_bot_conversations(db) == 1
    conversation = _conversation(database, answered)
    assert conversation.status == "resolved" and conversation.handled_by_bot_only and conversation.topic == "退貨政策"
    from tutti.converse.conversations import jobs

    jobs.wake_follow_ups()  # the one-minute tick
    assert _conversation(database, parked).status == "assigned"
