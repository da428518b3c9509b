"""The REST API of conversations, teams, agent settings and metrics, and the metrics' definitions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import bearer
from tests.converse.agent_world import FixedKnowledge, make_agent_user
from tutti.converse.agents import router
from tutti.converse.conversations import metrics, service
from tutti.converse.conversations.models import Conversation
from tutti.platform.db import utcnow

V1 = "/api/v1"


@pytest.fixture
def knowledge(monkeypatch):
    monkeypatch.setattr(router, "_knowledge", FixedKnowledge({"退貨": (11, "退貨政策", "商品到貨 7 天內可申請退貨。")}))


@pytest.fixture
def api(client, make_workspace):
    workspace_id, key, _ = make_workspace("API Shop")
    return client, workspace_id, bearer(key)


def test_a_customer_message_the_bots_reply_and_a_persons_work_through_the_api(api, database, knowledge):
    client, workspace_id, headers = api
    with database.session() as db:
        agent = make_agent_user(db, workspace_id, "agent@example.com")
    said = client.post(f"{V1}/conversations/messages", headers=headers,
                       json={"identities": {"email": "mei@example.com"}, "text": "請問退貨政策？", "external_id": "ext-1"})
    assert said.status_code == 201, said.text
    body = said.json()
    cid = body["conversation"]["id"]
    assert body["message"]["author"] == "customer" and body["conversation"]["status"] == "bot"
    assert [r["text"] for r in body["replies"]] == ["商品到貨 7 天內可申請退貨。\n（資料來源：退貨政策）"]
    repeat = client.post(f"{V1}/conversations/messages", headers=headers,
                         json={"contact_id": body["conversation"]["contact_id"], "text": "請問退貨政策？", "external_id": "ext-1"})
    assert repeat.json()["message"]["id"] == body["message"]["id"] and repeat.json()["replies"] == [r for r in body["replies"]]
    both = client.post(f"{V1}/conversations/messages", headers=headers, json={"contact_id": 1, "identities": {"email": "x@example.com"}, "text": "x"})
    assert both.status_code == 422

    queue = client.get(f"{V1}/conversations?queue=bot", headers=headers).json()
    assert [c["id"] for c in queue["items"]] == [cid] and queue["items"][0]["last_message"]["author"] == "bot"
    detail = client.get(f"{V1}/conversations/{cid}", headers=headers).json()
    assert [m["author"] for m in detail["messages"]] == ["customer", "bot"]
    assert detail["decisions"][0]["action"] == "answer" and "退貨政策" in detail["decisions"][0]["reason"]

    reply = client.post(f"{V1}/conversations/{cid}/messages", headers=headers, json={"text": "還有其他問題嗎？", "user_id": agent})
    assert reply.status_code == 201 and reply.json()["author"] == "agent"
    assert client.post(f"{V1}/conversations/{cid}/messages", headers=headers, json={"text": "x", "user_id": 999999}).status_code == 404
    assert client.post(f"{V1}/conversations/{cid}/notes", headers=headers, json={"text": "VIP 客人"}).json()["kind"] == "note"
    tagged = client.post(f"{V1}/conversations/{cid}/tags", headers=headers, json={"add": ["退貨"]}).json()
    assert tagged["tags"] == ["退貨"] and tagged["status"] == "assigned" and tagged["assignee_user_id"] == agent
    mine = client.get(f"{V1}/conversations?queue=mine&user_id={agent}", headers=headers).json()
    assert [c["id"] for c in mine["items"]] == [cid]
    assert client.get(f"{V1}/conversations?queue=mine", headers=headers).status_code == 422
    assert client.post(f"{V1}/conversations/{cid}/reopen", headers=headers).status_code == 409
    resolved = client.post(f"{V1}/conversations/{cid}/resolve", headers=headers, json={"ask_csat": True}).json()
    assert resolved["status"] == "resolved" and resolved["topic"] == "退貨政策"
    assert client.post(f"{V1}/conversations/{cid}/csat", headers=headers, json={"score": 4, "comment": "快"}).json()["csat_score"] == 4
    assert client.post(f"{V1}/conversations/{cid}/csat", headers=headers, json={"score": 9}).status_code == 422
    assert client.post(f"{V1}/conversations/{cid}/reopen", headers=headers).json()["status"] == "assigned"
    assert client.get(f"{V1}/conversations/{cid}/summary", headers=headers).json()["customer_messages"] == 1
    suggestions = client.get(f"{V1}/conversations/{cid}/suggestions", headers=headers).json()["items"]
    assert suggestions[0]["knowledge_id"] == 11 and suggestions[0]["by"] == "knowledge"
    assert client.get(f"{V1}/conversations/987654", headers=headers).status_code == 404
    bad_cursor = client.get(f"{V1}/conversations?cursor=nonsense", headers=headers)
    assert bad_cursor.status_code == 422 and bad_cursor.json()["error"]["field"] == "cursor"


def test_teams_members_and_agent_config_through_the_api(api, database, knowledge):
    client, workspace_id, headers = api
    with database.session() as db:
        agent = make_agent_user(db, workspace_id, "agent@example.com")
    bad = client.post(f"{V1}/teams", headers=headers, json={"name": "客服", "business_hours": {"mon": [["18:00", "09:00"]]}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "business_hours.mon"
    team = client.post(f"{V1}/teams", headers=headers, json={"name": "客服", "is_default": True, "business_hours": {},
                                                              "out_of_hours_message": {"zh-TW": "明天回覆", "en": "Back tomorrow"}})
    assert team.status_code == 201 and team.json()["open_now"] is True
    team_id = team.json()["id"]
    assert client.post(f"{V1}/teams", headers=headers, json={"name": "客服"}).status_code == 409
    member = client.put(f"{V1}/teams/{team_id}/members/{agent}", headers=headers, json={"online": True}).json()
    assert member["members"] == [{"user_id": agent, "online": True, "last_assigned_at": None}]
    assert client.put(f"{V1}/teams/{team_id}/members/999999", headers=headers, json={}).status_code == 404
    said = client.post(f"{V1}/conversations/messages", headers=headers, json={"identities": {"email": "ken@example.com"}, "text": "我要找真人"}).json()
    assert said["conversation"]["status"] == "assigned" and said["conversation"]["assignee_user_id"] == agent  # round robin
    patched = client.patch(f"{V1}/teams/{team_id}", headers=headers, json={"assignment": "manual"}).json()
    assert patched["assignment"] == "manual" and patched["members"][0]["last_assigned_at"] is not None
    assert client.delete(f"{V1}/teams/{team_id}/members/{agent}", headers=headers).status_code == 204
    assert client.get(f"{V1}/teams", headers=headers).json()["items"][0]["members"] == []

    config = client.get(f"{V1}/agent-config", headers=headers).json()
    assert config["allow_pii_in_prompt"] is False and config["handoff_keywords"] == []
    changed = client.patch(f"{V1}/agent-config", headers=headers, json={"handoff_keywords": ["律師"], "rules": [{"tag": "VIP", "team_id": team_id}]})
    assert changed.status_code == 200 and changed.json()["handoff_keywords"] == ["律師"]
    wrong = client.patch(f"{V1}/agent-config", headers=headers, json={"rules": [{"tag": "VIP", "team_id": 987654}]})
    assert wrong.status_code == 404
    assert client.patch(f"{V1}/agent-config", headers=headers, json={"min_confidence": 3}).status_code == 422
    assert client.delete(f"{V1}/teams/{team_id}", headers=headers).status_code == 204
    assert client.get(f"{V1}/conversations/{said['conversation']['id']}", headers=headers).json()["team_id"] is None


def test_metrics_follow_their_definitions(database, workspace_id, knowledge):
    from tests.converse.agent_world import make_contact

    now = utcnow()
    with database.session() as db:
        agent = make_agent_user(db, workspace_id, "agent@example.com")
        people = [make_contact(db, workspace_id, f"m{n}@example.com") for n in range(4)]
        ids = [service.receive_customer_message(db, workspace_id=workspace_id, contact_id=p, channel=ch, text=t).conversation_id
               for p, ch, t in zip(people, ["web", "line", "web", "api"], ["退貨政策？", "找真人", "退貨政策？", "退貨政策？"], strict=True)]
        auto, human, reopened, _still_open = ids
        service.post_agent_message(db, workspace_id=workspace_id, conversation_id=human, user_id=agent, text="您好")
        service.resolve(db, workspace_id=workspace_id, conversation_id=human, by_user_id=agent)
        service.record_csat(db, workspace_id=workspace_id, conversation_id=human, score=4)
        service.resolve(db, workspace_id=workspace_id, conversation_id=auto, ask_csat=False)
        service.resolve(db, workspace_id=workspace_id, conversation_id=reopened, ask_csat=False)
    with database.session() as db:
        service.receive_customer_message(db, workspace_id=workspace_id, contact_id=people[2], channel="web", text="還是不懂退貨政策")  # back within 24 h
        conversation = db.get(Conversation, human)
        conversation.first_customer_message_at = now - timedelta(minutes=10)
        conversation.handed_off_at = conversation.first_response_at = now - timedelta(minutes=9)  # the bot's hand-off message
        conversation.first_human_response_at = now - timedelta(minutes=4)
        conversation.resolved_at = now
    with database.session() as db:
        figures = metrics.dashboard(db, workspace_id=workspace_id, since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    assert figures["with_customer"] == 4 and figures["automated_resolutions"] == 1 and figures["automated_resolution_rate"] == 0.25
    assert figures["handoff_rate"] == 0.25 and figures["handoff_reasons"] == {"asked_for_person": 1}, figures
    assert figures["first_human_response"] == {"p50": 300.0, "p90": 300.0, "count": 1}
    assert figures["resolution"]["count"] == 2 and 540 <= figures["resolution"]["p90"] <= 600  # the automated one took ~0 s
    assert figures["csat_average"] == 4 and figures["csat_responses"] == 1
    assert figures["by_channel"] == {"web": 2, "line": 1, "api": 1} and list(figures["by_person"].values()) == [1]
    assert figures["first_response"]["count"] == 4 and figures["first_bot_response"]["count"] == 4
    assert metrics.percentile([1, 2, 3, 4], 0.5) == 2.5 and metrics.percentile([], 0.5) is None
