"""The LINE adapter, through line-bot-sdk, against the LINE emulator."""

from __future__ import annotations

import time
import uuid

import pytest

from tutti.channels import line, service
from tutti.channels.base import Outgoing
from tutti.platform.audit import Actor


def _adapter(emulator, **config) -> line.LineAdapter:
    config = {"api_base_url": emulator.base_url, "channel_id": f"t{uuid.uuid4().hex[:8]}", **config}
    return line.from_channel(channel_id=1, config=config,
                             secrets={"access_token": emulator.access_token, "channel_secret": emulator.channel_secret})


def _text(text: str) -> dict:
    return {"messages": [{"type": "text", "text": text}]}


def _out(to: str, payload: dict, key: str | None = None) -> Outgoing:
    return Outgoing(key=key or str(uuid.uuid4()), to=to, payload=payload)


def test_push_one_message(line_emulator):
    user = line_emulator.new_user_id()
    [outcome] = _adapter(line_emulator).send([_out(user, _text("哈囉 Mei"))])
    assert outcome.status == "sent" and uuid.UUID(outcome.provider_id)
    assert line_emulator.texts(user) == ["哈囉 Mei"]
    assert line_emulator.messages(user)[0]["endpoint"] == "push"


def test_identical_payloads_go_out_as_multicasts_of_500(line_emulator):
    users = [line_emulator.new_user_id() for _ in range(1234)]
    other = line_emulator.new_user_id()
    messages = [_out(u, _text("雙11 全館 8 折")) for u in users] + [_out(other, _text("just for you"))]
    outcomes = _adapter(line_emulator).send(messages)
    assert [o.key for o in outcomes] == [m.key for m in messages]  # one outcome per message, in order
    assert {o.status for o in outcomes} == {"sent"}
    requests = [r for r in line_emulator.emulator.requests if r["endpoint"] == "multicast"]
    assert sorted(len(r["to"]) for r in requests) == [234, 500, 500]
    assert len({o.provider_id for o in outcomes[:1234]}) == 3  # members of one request share its id
    counts = line_emulator.counts()
    assert len(counts) == 1235 and set(counts.values()) == {1}
    assert line_emulator.texts(other) == ["just for you"]


def test_a_shared_send_is_one_multicast_answered_once_and_the_same_request_when_repeated(line_emulator):
    adapter = _adapter(line_emulator)
    users = [line_emulator.new_user_id() for _ in range(3)]
    keys = [str(uuid.uuid4()) for _ in users]
    outcome = adapter.send_shared(keys, users, _text("週年慶"))
    assert outcome.status == "sent" and uuid.UUID(outcome.provider_id)
    [request] = [r for r in line_emulator.emulator.requests if r["endpoint"] == "multicast"]
    assert request["to"] == users and request["retry_key"] == outcome.key == line.group_retry_key(keys)
    again = adapter.send_shared(list(reversed(keys)), users, _text("週年慶"))
    assert again.status == "sent" and again.code == "409" and again.provider_id == outcome.provider_id
    assert set(line_emulator.counts().values()) == {1}
    # recipients that cannot share one request: the caller sends them one by one
    assert adapter.send_shared(keys[:2], [users[0], "not-a-line-user"], _text("x")) is None
    assert adapter.send_shared(keys[:1], users[:1], _text("x")) is None
    bad = adapter.send_shared(keys[:2], users[:2], {"messages": [{"type": "text", "text": ""}]})
    assert bad.status == "failed" and bad.code == "400" and bad.reason  # LINE refuses it, in its own words


def test_sending_the_same_group_again_is_a_no_op_at_line(line_emulator):
    adapter = _adapter(line_emulator)
    users = [line_emulator.new_user_id() for _ in range(3)]
    messages = [_out(u, _text("once")) for u in users] + [_out(line_emulator.new_user_id(), _text("single"))]
    first = adapter.send(messages)
    again = adapter.send(list(reversed(messages)))  # same group in another order: same retry key
    assert {o.status for o in first + again} == {"sent"}
    assert {o.code for o in again} == {"409"}
    assert {o.provider_id for o in again[1:]} == {first[0].provider_id}  # LINE's accepted request id
    assert set(line_emulator.counts().values()) == {1}
    assert line_emulator.stats()["rejected_409"] == 2


def test_lost_answer_then_retry_counts_as_sent_once(line_emulator):
    line_emulator.configure(faults=[{"endpoint": "multicast", "status": 500, "after_accept": True}])
    adapter = _adapter(line_emulator)
    messages = [_out(line_emulator.new_user_id(), _text("x")) for _ in range(4)]
    first = adapter.send(messages)
    assert {o.status for o in first} == {"retry"} and first[0].code == "500"
    second = adapter.send(messages)
    assert {o.status for o in second} == {"sent"}
    assert set(line_emulator.counts().values()) == {1} and len(line_emulator.counts()) == 4


def test_rate_limited_requests_come_back_as_retry(line_emulator):
    line_emulator.configure(rates={"push": 2})
    adapter = _adapter(line_emulator, push_rate=1000)  # we claim more than the emulator allows
    messages = [_out(line_emulator.new_user_id(), _text(f"m{i}")) for i in range(5)]
    outcomes = adapter.send(messages)
    assert [o.status for o in outcomes].count("sent") == 2
    limited = [o for o in outcomes if o.status == "retry"]
    assert len(limited) == 3 and {o.code for o in limited} == {"429"}
    assert limited[0].reason == "The API rate limit has been exceeded. Try again later."


def test_the_channels_rate_paces_requests(line_emulator):
    adapter = _adapter(line_emulator, push_rate=20)  # burst 2, then 20 per second
    messages = [_out(line_emulator.new_user_id(), _text(f"x{i}")) for i in range(8)]  # 8 pushes
    started = time.monotonic()
    assert {o.status for o in adapter.send(messages)} == {"sent"}
    assert time.monotonic() - started >= 0.25


def test_permanent_errors_fail_with_lines_reason(line_emulator):
    line_emulator.configure(blocked=["U" + "b" * 32])
    adapter = _adapter(line_emulator)
    too_long = _out(line_emulator.new_user_id(), _text("字" * 5001))
    six = _out(line_emulator.new_user_id(), {"messages": [{"type": "text", "text": "x"}] * 6})
    blocked = _out("U" + "b" * 32, _text("hi"))
    not_a_user = _out("someone@example.com", _text("hi"))
    no_text = _out(line_emulator.new_user_id(), {"messages": [{"type": "text"}]})
    outcomes = adapter.send([too_long, six, blocked, not_a_user, no_text])
    assert [o.status for o in outcomes] == ["failed"] * 5
    assert outcomes[0].reason == "The request body has 1 error(s): messages[0].text: Length must be between 0 and 5000"
    assert outcomes[0].code == "400"
    assert outcomes[1].code == "invalid" and "messages" in outcomes[1].reason and "5" in outcomes[1].reason  # the SDK checks it first
    assert outcomes[2].reason == "Failed to send messages"
    assert "'to'" in outcomes[3].reason
    assert outcomes[4].code == "invalid" and "text" in outcomes[4].reason
    assert line_emulator.stats()["accepted"] == 0


def test_unreachable_line_is_a_retry():
    adapter = line.from_channel(channel_id=1, config={"api_base_url": "http://127.0.0.1:9"}, secrets={"access_token": "x"})
    [outcome] = adapter.send([_out("U" + "a" * 32, _text("x"))])
    assert outcome.status == "retry" and outcome.code == "network"


def test_reply_then_push_when_the_token_is_spent(line_emulator):
    from tests.channels.test_line_emulator import receiver  # noqa: F401 - reuse the signed-webhook receiver

    adapter = _adapter(line_emulator)
    user = line_emulator.new_user_id()
    token = "0" * 32
    line_emulator.emulator.reply_tokens[token] = {"user_id": user, "issued": time.time(), "used": False}
    assert line.reply(adapter, token, [{"type": "text", "text": "您好!"}]).status == "sent"
    spent = line.reply(adapter, token, [{"type": "text", "text": "again"}])
    assert spent.status == "failed" and spent.reason == "Invalid reply token"
    assert line_emulator.texts(user) == ["您好!"]


def test_channel_test_connection_and_adapter_for(database, workspace_id, line_emulator):
    actor = Actor.cli()
    with database.session() as db:
        good = service.connect(db, workspace_id=workspace_id, kind="line", name="OA", actor=actor,
                               config={"api_base_url": line_emulator.base_url},
                               credentials={"channel_secret": line_emulator.channel_secret, "access_token": line_emulator.access_token}).id
        bad = service.connect(db, workspace_id=workspace_id, kind="line", name="Bad", actor=actor,
                              config={"api_base_url": line_emulator.base_url},
                              credentials={"channel_secret": "s", "access_token": "wrong-token"}).id
    with database.session() as db:
        result = service.test_channel(db, workspace_id=workspace_id, channel_id=good)
        assert result["ok"] and result["bot_user_id"] == line_emulator.bot_user_id
        failed = service.test_channel(db, workspace_id=workspace_id, channel_id=bad)
        assert not failed["ok"] and "Authentication failed" in failed["message"]
    with database.session() as db:
        assert service.get_channel(db, workspace_id=workspace_id, channel_id=good).bot_user_id == line_emulator.bot_user_id
        channel = service.get_channel(db, workspace_id=workspace_id, channel_id=bad)
        assert channel.status == "error" and "access token" in channel.status_detail
        adapter = service.adapter_for(db, workspace_id=workspace_id, channel_id=good)
    user = line_emulator.new_user_id()
    try:
        assert adapter.send([_out(user, _text("via service"))])[0].status == "sent"
    finally:
        adapter.close()
    assert line_emulator.texts(user) == ["via service"]


@pytest.mark.parametrize("key", ["not-a-uuid", "28c1f38f-a963-4900-b851-0ba22bf8a293"])
def test_retry_keys_are_uuids(key):
    assert uuid.UUID(line.retry_key_for(key))
    assert line.retry_key_for(key) == line.retry_key_for(key)
    assert line.group_retry_key(["b", key, "c"]) == line.group_retry_key(["c", "b", key])
