"""LINE's inbound webhook: signature (line-bot-sdk's scheme), exactly-once by webhookEventId, follow/unfollow
consent, handlers for messages and postbacks — through the emulator and with hand-built bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid

import orjson
import pytest
from linebot.v3.webhook import SignatureValidator
from sqlalchemy import func, select

from tests.conftest import serving
from tutti.audience.models import Consent, Identity
from tutti.channels import inbound, service
from tutti.channels.models import InboundEvent
from tutti.platform.audit import Actor

SECRET = "webhook-test-channel-secret"


@pytest.fixture
def calls(monkeypatch):
    """Only this test's handler runs (other parts' handlers are not this test's business)."""
    seen: list[dict] = []

    def record(db, *, workspace_id, channel_id, contact_id, event):
        seen.append({"workspace_id": workspace_id, "channel_id": channel_id, "contact_id": contact_id, "event": event})

    monkeypatch.setattr(inbound, "LINE_EVENT_HANDLERS", [record])
    return seen


@pytest.fixture
def channel_id(database, workspace_id):
    with database.session() as db:
        return service.connect(db, workspace_id=workspace_id, kind="line", name="OA", actor=Actor.cli(),
                               credentials={"channel_secret": SECRET, "access_token": "token"}).id


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _body(*events) -> bytes:
    return orjson.dumps({"destination": "U" + "d" * 32, "events": list(events)})


def _message_event(user: str, text: str, event_id: str | None = None) -> dict:
    return {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000), "webhookEventId": event_id or uuid.uuid4().hex[:26].upper(),
            "deliveryContext": {"isRedelivery": False}, "source": {"type": "user", "userId": user}, "replyToken": uuid.uuid4().hex,
            "message": {"id": "468789577898262530", "type": "text", "quoteToken": "q", "text": text}}


def _count(database, model, **where) -> int:
    with database.read_session() as db:
        return db.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_hand_built_bodies_valid_forged_replayed(client, database, workspace_id, channel_id, calls):
    user = "U" + "1" * 32
    body = _body(_message_event(user, "請問有門市嗎?", event_id="01HTESTEVENT0000000000000A"))
    signature = _sign(body)
    assert SignatureValidator(SECRET).validate(body.decode(), signature)  # our signing is line-bot-sdk's scheme
    url = f"/webhooks/line/{channel_id}"

    forged = client.post(url, content=body, headers={"x-line-signature": _sign(body, "someone-else")})
    assert forged.status_code == 401
    missing = client.post(url, content=body)
    assert missing.status_code == 401
    tampered = client.post(url, content=body.replace("門市".encode(), "優惠".encode()), headers={"x-line-signature": signature})
    assert tampered.status_code == 401
    assert calls == [] and _count(database, InboundEvent) == 0 and _count(database, Identity, kind="line_uid") == 0

    first = client.post(url, content=body, headers={"x-line-signature": signature})
    assert first.status_code == 200 and first.json() == {"received": 1, "new": 1}
    replay = client.post(url, content=body, headers={"x-line-signature": signature})
    assert replay.status_code == 200 and replay.json()["new"] == 0
    assert len(calls) == 1 and calls[0]["event"]["message"]["text"] == "請問有門市嗎?"
    assert calls[0]["workspace_id"] == workspace_id and calls[0]["channel_id"] == channel_id
    with database.read_session() as db:
        identity = db.scalars(select(Identity).where(Identity.kind == "line_uid", Identity.value == user)).one()
        assert identity.contact_id == calls[0]["contact_id"] and identity.workspace_id == workspace_id
    assert _count(database, InboundEvent) == 1

    assert client.post("/webhooks/line/999999", content=body, headers={"x-line-signature": signature}).status_code == 404
    verify = _body()  # LINE's console "Verify" button sends no events
    assert client.post(url, content=verify, headers={"x-line-signature": _sign(verify)}).status_code == 200


def test_a_failing_handler_leaves_the_event_for_the_next_run(client, database, channel_id, monkeypatch):
    from tutti.channels import webhooks

    attempts: list[str] = []

    def flaky(db, *, event, **_):
        attempts.append(event["message"]["text"])
        if event["message"]["text"] == "boom" and attempts.count("boom") < 2:
            raise RuntimeError("the inbox is down")

    monkeypatch.setattr(inbound, "LINE_EVENT_HANDLERS", [flaky])
    bad, ok = _message_event("U" + "3" * 32, "boom"), _message_event("U" + "2" * 32, "fine")
    body = _body(bad, ok)
    answer = client.post(f"/webhooks/line/{channel_id}", content=body, headers={"x-line-signature": _sign(body)})
    assert answer.status_code == 200 and answer.json() == {"received": 2, "new": 2}  # stored: LINE need not redeliver
    with database.read_session() as db:
        failed = db.get(InboundEvent, (channel_id, bad["webhookEventId"]))
        assert failed.processed_at is None and failed.attempts == 1 and "the inbox is down" in failed.error
        done = db.get(InboundEvent, (channel_id, ok["webhookEventId"]))
        assert done.processed_at is not None and done.payload is None  # the customer's words are not kept
    assert webhooks.process_pending() == (1, 1)  # the next run (a wake-up or the tick)
    assert webhooks.process_pending() == (0, 0)
    assert attempts == ["boom", "fine", "boom"]  # "fine" was not handled twice
    replay = client.post(f"/webhooks/line/{channel_id}", content=body, headers={"x-line-signature": _sign(body)})
    assert replay.json()["new"] == 0 and len(attempts) == 3


def test_an_event_that_keeps_failing_is_set_aside(client, database, channel_id, monkeypatch):
    from tutti.channels import webhooks

    def broken(db, **_):
        raise ValueError("cannot parse")

    monkeypatch.setattr(inbound, "LINE_EVENT_HANDLERS", [broken])
    event = _message_event("U" + "5" * 32, "x")
    body = _body(event)
    client.post(f"/webhooks/line/{channel_id}", content=body, headers={"x-line-signature": _sign(body)})
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.process_pending()
    with database.read_session() as db:
        row = db.get(InboundEvent, (channel_id, event["webhookEventId"]))
        assert row.attempts == webhooks.MAX_ATTEMPTS and row.processed_at is not None and "cannot parse" in row.error
    assert webhooks.process_pending() == (0, 0)


def test_through_the_emulator_follow_message_postback_unfollow(app, database, workspace_id, line_emulator, calls):
    with database.session() as db:
        channel = service.connect(db, workspace_id=workspace_id, kind="line", name="OA", actor=Actor.cli(),
                                  config={"api_base_url": line_emulator.base_url},
                                  credentials={"channel_secret": line_emulator.channel_secret, "access_token": line_emulator.access_token})
        channel_id = channel.id
    user = line_emulator.new_user_id()
    with serving(app) as tutti_url:
        hook = f"{tutti_url}/webhooks/line/{channel_id}"
        assert line_emulator.send(hook, user_id=user, follow=True)["status"] == 200
        with database.read_session() as db:
            contact_id = db.scalars(select(Identity.contact_id).where(Identity.value == user)).one()
            assert db.get(Consent, (contact_id, "line")).status == "subscribed"
        said = line_emulator.send(hook, user_id=user, text="我的訂單到哪了?")
        line_emulator.send(hook, user_id=user, postback="action=track&order=A-1001")
        assert line_emulator.send(hook, user_id=user, unfollow=True)["status"] == 200
        forged = line_emulator.send(hook, user_id=user, text="forged", channel_secret="not-the-secret")
        assert forged["status"] == 401
        # a redelivery of the same event (same webhookEventId) has no second effect
        again = line_emulator.send(hook, user_id=user, text="我的訂單到哪了?", webhook_event_id=said["webhook_event_id"], redelivery=True)
        assert again["status"] == 200 and orjson.loads(again["response"])["new"] == 0
    assert [c["event"]["type"] for c in calls] == ["message", "postback"]
    assert {c["contact_id"] for c in calls} == {contact_id}
    assert calls[0]["event"]["replyToken"] == said["reply_token"]
    assert calls[1]["event"]["postback"]["data"] == "action=track&order=A-1001"
    with database.read_session() as db:
        assert db.get(Consent, (contact_id, "line")).status == "blocked"
        assert service.get_channel(db, workspace_id=workspace_id, channel_id=channel_id).bot_user_id == line_emulator.bot_user_id
    assert _count(database, InboundEvent) == 4


def test_a_channel_only_ever_touches_its_own_workspace(client, database, make_workspace, calls):
    a, b = make_workspace("A")[0], make_workspace("B")[0]
    with database.session() as db:
        channel_b = service.connect(db, workspace_id=b, kind="line", name="B's OA", actor=Actor.cli(),
                                    credentials={"channel_secret": SECRET, "access_token": "t"}).id
    body = _body({**_message_event("U" + "4" * 32, "hi"), "type": "follow"})
    assert client.post(f"/webhooks/line/{channel_b}", content=body, headers={"x-line-signature": _sign(body)}).status_code == 200
    assert _count(database, Identity, workspace_id=b, kind="line_uid") == 1
    assert _count(database, Identity, workspace_id=a) == 0
