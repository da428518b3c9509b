"""The LINE emulator speaks LINE's wire format and enforces LINE's limits (checked through line-bot-sdk)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI, Request
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.webhook import WebhookParser
from linebot.v3.webhooks import MessageEvent

from tests.conftest import serving
from tutti.channels import line_emulator as emu_module


def _api(emulator, token=None) -> MessagingApi:
    return MessagingApi(ApiClient(Configuration(host=emulator.base_url, access_token=token or emulator.access_token)))


def _user() -> str:
    return "U" + uuid.uuid4().hex


def test_push_is_accepted_with_a_request_id_and_kept(line_emulator):
    api = _api(line_emulator)
    user = _user()
    answer = api.push_message_with_http_info(PushMessageRequest(to=user, messages=[TextMessage(text="你好 Mei")]))
    assert answer.status_code == 200
    assert uuid.UUID(answer.headers["x-line-request-id"])
    assert len(answer.data.sent_messages) == 1 and answer.data.sent_messages[0].id.isdigit()
    assert line_emulator.texts(user) == ["你好 Mei"]
    listed = httpx.get(f"{line_emulator.base_url}/_emulator/messages", params={"to": user}).json()
    assert listed["count"] == 1 and listed["messages"][0]["message"] == {"type": "text", "text": "你好 Mei"}


def test_bearer_token_is_checked(line_emulator):
    with pytest.raises(ApiException) as error:
        _api(line_emulator, token="wrong").push_message(PushMessageRequest(to=_user(), messages=[TextMessage(text="x")]))
    assert error.value.status == 401
    assert "Authentication failed" in error.value.body
    answer = httpx.post(f"{line_emulator.base_url}/v2/bot/message/push", json={})
    assert answer.status_code == 401 and "Authorization header required" in answer.json()["message"]


def test_limits_answer_400_with_lines_details(line_emulator):
    base, headers = line_emulator.base_url, {"Authorization": f"Bearer {line_emulator.access_token}"}
    too_many = httpx.post(f"{base}/v2/bot/message/multicast", headers=headers,
                          json={"to": [_user() for _ in range(501)], "messages": [{"type": "text", "text": "x"}]})
    assert too_many.status_code == 400
    assert {"message": "Size must be between 1 and 500", "property": "to"} in too_many.json()["details"]
    six = httpx.post(f"{base}/v2/bot/message/push", headers=headers, json={"to": _user(), "messages": [{"type": "text", "text": "x"}] * 6})
    assert six.status_code == 400 and six.json()["details"] == [{"message": "Size must be between 1 and 5", "property": "messages"}]
    long = httpx.post(f"{base}/v2/bot/message/push", headers=headers,
                      json={"to": _user(), "messages": [{"type": "text", "text": "x"}, {"type": "text", "text": "字" * 5001}]})
    assert long.json() == {"message": "The request body has 1 error(s)",
                           "details": [{"message": "Length must be between 0 and 5000", "property": "messages[1].text"}]}
    bad = httpx.post(f"{base}/v2/bot/message/push", headers=headers, json={"to": _user(), "messages": [
        {"type": "template", "altText": "a" * 401, "template": {"type": "buttons", "text": "t", "actions": []}},
        {"type": "image", "originalContentUrl": "http://x/a.png", "previewImageUrl": "https://x/b.png"},
        {"type": "carrot"},
        {"type": "text", "text": "q", "quickReply": {"items": [{"type": "action", "action": {"type": "message", "label": "l", "text": "t"}}] * 14}},
    ]})
    properties = {d["property"] for d in bad.json()["details"]}
    assert properties == {"messages[0].altText", "messages[0].template.actions", "messages[1].originalContentUrl",
                          "messages[2].type", "messages[3].quickReply.items"}
    bad_to = httpx.post(f"{base}/v2/bot/message/push", headers=headers, json={"to": "Ubad", "messages": [{"type": "text", "text": "x"}]})
    assert bad_to.status_code == 400 and "'to'" in bad_to.json()["message"]
    assert line_emulator.stats()["accepted"] == 0


def test_retry_key_is_honoured_like_line(line_emulator):
    api, users, key = _api(line_emulator), [_user() for _ in range(3)], str(uuid.uuid4())
    first = api.multicast_with_http_info(MulticastRequest(to=users, messages=[TextMessage(text="sale")]), x_line_retry_key=key)
    accepted_id = first.headers["x-line-request-id"]
    with pytest.raises(ApiException) as error:
        api.multicast(MulticastRequest(to=users, messages=[TextMessage(text="sale")]), x_line_retry_key=key)
    assert error.value.status == 409
    assert error.value.headers["x-line-accepted-request-id"] == accepted_id
    assert line_emulator.counts() == {u: 1 for u in users}  # stored once
    with pytest.raises(ApiException) as error:
        api.push_message(PushMessageRequest(to=users[0], messages=[TextMessage(text="x")]), x_line_retry_key="not-a-uuid")
    assert error.value.status == 400 and "X-Line-Retry-Key" in error.value.body


def test_rate_limit_answers_429(line_emulator):
    line_emulator.configure(rates={"push": 3})
    api, user = _api(line_emulator), _user()
    statuses = []
    for _ in range(6):
        try:
            statuses.append(api.push_message_with_http_info(PushMessageRequest(to=user, messages=[TextMessage(text="x")])).status_code)
        except ApiException as error:
            statuses.append(error.status)
            assert '"The API rate limit has been exceeded. Try again later."' in error.body
    assert statuses.count(200) == 3 and statuses.count(429) == 3
    assert line_emulator.counts()[user] == 3


def test_fault_after_accept_then_retry_with_key_is_a_409(line_emulator):
    line_emulator.configure(faults=[{"endpoint": "push", "status": 500, "after_accept": True}])
    api, user, key = _api(line_emulator), _user(), str(uuid.uuid4())
    with pytest.raises(ApiException) as error:
        api.push_message(PushMessageRequest(to=user, messages=[TextMessage(text="x")]), x_line_retry_key=key)
    assert error.value.status == 500
    with pytest.raises(ApiException) as error:
        api.push_message(PushMessageRequest(to=user, messages=[TextMessage(text="x")]), x_line_retry_key=key)
    assert error.value.status == 409
    assert line_emulator.counts() == {user: 1}


def test_bot_info_profile_and_quota(line_emulator):
    api = _api(line_emulator)
    info = api.get_bot_info()
    assert info.user_id == line_emulator.bot_user_id and info.basic_id.startswith("@")
    with pytest.raises(ApiException) as error:
        api.get_profile(_user())
    assert error.value.status == 404
    assert api.get_message_quota().type == "none"


@pytest.fixture
def receiver():
    """A stand-in webhook receiver that checks LINE's signature with line-bot-sdk and keeps what came."""
    received: list = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request):
        body = (await request.body()).decode()
        events = WebhookParser(emu_module.DEFAULT_CHANNEL_SECRET).parse(body, request.headers["x-line-signature"])
        received.append((body, events))
        return {}

    with serving(app) as url:
        yield url + "/hook", received


def test_customer_webhook_is_lines_shape_signed_and_reply_token_works_once(line_emulator, receiver):
    url, received = receiver
    user = _user()
    sent = line_emulator.send(url, user_id=user, text="請問營業時間?", display_name="林美玲")
    assert sent["status"] == 200
    body, events = received[0]
    assert isinstance(events[0], MessageEvent) and events[0].message.text == "請問營業時間?"
    assert events[0].source.user_id == user and events[0].webhook_event_id == sent["webhook_event_id"]
    assert events[0].delivery_context.is_redelivery is False and events[0].message.quote_token
    assert '"destination":"' + line_emulator.bot_user_id in body
    api = _api(line_emulator)
    assert api.get_profile(user).display_name == "林美玲"
    api.reply_message(ReplyMessageRequest(reply_token=sent["reply_token"], messages=[TextMessage(text="10:00–21:00")]))
    with pytest.raises(ApiException) as error:
        api.reply_message(ReplyMessageRequest(reply_token=sent["reply_token"], messages=[TextMessage(text="again")]))
    assert error.value.status == 400 and "Invalid reply token" in error.value.body
    conversation = line_emulator.messages(user)
    assert [(m["from"], m["message"].get("text")) for m in conversation] == [("user", "請問營業時間?"), ("bot", "10:00–21:00")]
    phone = httpx.get(f"{line_emulator.base_url}/_emulator/phone/{user}").text
    assert "請問營業時間?" in phone and "10:00–21:00" in phone


def test_reply_token_expires(line_emulator, receiver):
    url, _ = receiver
    line_emulator.configure(reply_ttl=0)
    sent = line_emulator.send(url, user_id=_user(), follow=True)
    with pytest.raises(ApiException) as error:
        _api(line_emulator).reply_message(ReplyMessageRequest(reply_token=sent["reply_token"], messages=[TextMessage(text="hi")]))
    assert error.value.status == 400


def test_store_file_survives_a_restart(tmp_path):
    store = tmp_path / "line.jsonl"
    first = emu_module.Emulator(store=store)
    with serving(emu_module.create_app(emulator=first)) as url:
        api = MessagingApi(ApiClient(Configuration(host=url, access_token=emu_module.DEFAULT_ACCESS_TOKEN)))
        key, user = str(uuid.uuid4()), _user()
        api.push_message(PushMessageRequest(to=user, messages=[TextMessage(text="kept")]), x_line_retry_key=key)
    second = emu_module.Emulator(store=store)
    assert [m["message"]["text"] for m in second.messages_for(user)] == ["kept"]
    with serving(emu_module.create_app(emulator=second)) as url:
        api = MessagingApi(ApiClient(Configuration(host=url, access_token=emu_module.DEFAULT_ACCESS_TOKEN)))
        with pytest.raises(ApiException) as error:  # the accepted key outlives the restart
            api.push_message(PushMessageRequest(to=user, messages=[TextMessage(text="kept")]), x_line_retry_key=key)
        assert error.value.status == 409
