"""The tracking API's inbox: a 200 means the request is durably stored as one `inbound_batch` row; the worker
(`process_inbound`) stores the messages and deletes the row in the same transaction.

Here the request path (`tracking.accept`) runs without waking the worker, so batches wait in the inbox the
way they do when a queue message is lost or a worker dies; then processing runs, fails, runs twice at once,
and every event must land exactly once. The real worker (inside `tutti serve`, with Segment's own client)
is at the end."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError

from tests.processes import forget_queue, redis_queue_env, run, serving, tutti_env, working
from tutti.audience import tracking
from tutti.audience.models import Contact, Event, Identity, InboundBatch, Order
from tutti.audience.tracking import inbox as tracking_inbox
from tutti.audience.tracking import intake as tracking_intake
from tutti.platform import metrics
from tutti.platform.db import Database, utcnow


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@pytest.fixture
def shop(make_workspace):
    workspace_id, _, write_key = make_workspace("Inbox Tea Co.")
    return workspace_id, write_key


def batch_body(start: int, n: int, *, users: int = 7, prefix: str = "m") -> bytes:
    """n messages: page views, product views, identifies and an order, spread over a few users."""
    messages = []
    for i in range(start, start + n):
        user = f"U{i % users}"
        if i % 10 == 3:
            messages.append({"type": "identify", "userId": user, "messageId": f"{prefix}-{i}", "traits": {"email": f"{user.lower()}@example.tw", "visits": i}})
        elif i % 10 == 7:
            messages.append({"type": "track", "userId": user, "event": "Order Completed", "messageId": f"{prefix}-{i}",
                             "properties": {"order_id": f"O-{prefix}-{i}", "total": 100 + i, "products": [{"product_id": f"SKU-{i % 5}", "price": 100 + i}]}})
        elif i % 2:
            messages.append({"type": "page", "anonymousId": f"anon-{i % users}", "name": "首頁", "messageId": f"{prefix}-{i}"})
        else:
            messages.append({"type": "track", "userId": user, "anonymousId": f"anon-{i % users}", "event": "Product Viewed", "messageId": f"{prefix}-{i}",
                             "properties": {"product_id": f"SKU-{i % 5}", "name": f"茶 {i % 5}", "price": 300}})
    return orjson.dumps({"batch": messages})


def accept_batches(database, write_key: str, batches: int, size: int, prefix: str = "m") -> int:
    """Send batches through the request path only (validated, stored in the inbox, worker not woken)."""
    for b in range(batches):
        batch_id, accepted = tracking.accept(endpoint="batch", body=batch_body(b * size, size, prefix=prefix), authorization=basic(write_key),
                                             database=database)
        assert batch_id and accepted == size
    return batches * size


def scalar(database, query):
    with database.read_session() as db:
        return db.scalar(query)


def events(database, workspace_id) -> int:
    return scalar(database, select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id))


def inbox(database) -> int:
    return scalar(database, select(func.count()).select_from(InboundBatch))


def distinct_message_ids(database, workspace_id) -> int:
    return scalar(database, select(func.count(func.distinct(Event.message_id))).where(Event.workspace_id == workspace_id))


def test_accepted_batches_wait_durably_and_processing_stores_each_event_once(database, shop):
    workspace_id, key = shop
    sent = accept_batches(database, key, batches=6, size=40)
    assert inbox(database) == 6 and events(database, workspace_id) == 0
    assert tracking.backlog(database) == (6, sent)
    with database.read_session() as db:
        row = db.scalars(select(InboundBatch).order_by(InboundBatch.id)).first()
        assert (row.workspace_id, row.endpoint, row.message_count, row.attempts, row.failed_at) == (workspace_id, "batch", 40, 0, None)
        assert orjson.loads(row.payload)["batch"][0]["messageId"] == "m-0"  # the request's own JSON

    done = tracking.process_inbound(database=database, max_messages=100)  # 2 batches per transaction
    assert (done["batches"], done["messages"], done["stored"], done["failed"]) == (6, sent, sent, 0)
    assert inbox(database) == 0 and tracking.backlog(database) == (0, 0)
    assert events(database, workspace_id) == distinct_message_ids(database, workspace_id) == sent
    assert scalar(database, select(func.count()).select_from(Order).where(Order.workspace_id == workspace_id)) == 24
    # nothing left: a second run (a repeated queue message) does nothing
    assert tracking.process_inbound(database=database)["batches"] == 0
    # the same batches accepted again (a client retrying after a lost 200) store nothing twice
    accept_batches(database, key, batches=6, size=40)
    done = tracking.process_inbound(database=database)
    assert (done["batches"], done["stored"]) == (6, 0) and events(database, workspace_id) == sent


def test_events_keep_the_time_the_request_was_received_not_the_time_processed(database, shop):
    _workspace_id, key = shop
    tracking.accept(endpoint="track", body=orjson.dumps({"userId": "u1", "event": "Late", "messageId": "late",
                                                         "originalTimestamp": "2025-01-01T00:00:00Z", "sentAt": "2025-01-01T00:00:10Z"}),
                    authorization=basic(key), database=database)
    with database.session() as db:  # processed an hour after it arrived
        db.execute(InboundBatch.__table__.update().values(received_at=utcnow() - timedelta(hours=1)))
    received = scalar(database, select(InboundBatch.received_at))
    tracking.process_inbound(database=database)
    with database.read_session() as db:
        event = db.scalar(select(Event).where(Event.message_id == "late"))
    assert abs((event.received_at - received).total_seconds()) < 0.01
    # Segment's skew rule uses the request's receivedAt: occurred 10 s before it was received
    assert abs((event.received_at - event.occurred_at).total_seconds() - 10) < 0.01


def test_batches_are_stored_oldest_first_so_later_traits_win(database, shop):
    workspace_id, key = shop
    for name in ("First Name", "Second Name", "Final Name"):
        tracking.accept(endpoint="identify", body=orjson.dumps({"userId": "M1", "traits": {"name": name, "tier": name}}),
                        authorization=basic(key), database=database)
    tracking.process_inbound(database=database)
    with database.read_session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value == "M1"))
        person = db.get(Contact, contact_id)
    assert (person.name, person.attributes) == ("Final Name", {"tier": "Final Name"})


def test_a_worker_dying_mid_transaction_loses_and_duplicates_nothing(database, shop, monkeypatch):
    workspace_id, key = shop
    sent = accept_batches(database, key, batches=5, size=30)
    real_store = tracking_inbox.store
    calls = {"n": 0}

    def store_then_die(db, **kwargs):
        counts = real_store(db, **kwargs)  # the events are written in the open transaction…
        calls["n"] += 1
        if calls["n"] == 2:  # …and the second transaction never commits: the connection is gone
            raise OperationalError("INSERT …", {}, Exception("server closed the connection unexpectedly"))
        return counts

    monkeypatch.setattr(tracking_inbox, "store", store_then_die)
    with pytest.raises(OperationalError):
        tracking.process_inbound(database=database, max_messages=60)
    # the first transaction (2 batches) committed; the second rolled back whole, its batches still waiting
    assert inbox(database) == 3 and events(database, workspace_id) == 60
    monkeypatch.setattr(tracking_inbox, "store", real_store)
    from tutti.audience import jobs

    jobs.process_inbound_backlog()  # the one-minute tick
    assert inbox(database) == 0
    assert events(database, workspace_id) == distinct_message_ids(database, workspace_id) == sent


def run_workers_at_once(database, n: int, **options) -> list[dict]:
    start = threading.Barrier(n)
    results, errors = [], []

    def worker():
        try:
            start.wait()
            results.append(tracking.process_inbound(database=database, **options))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results


def test_two_workers_at_once_share_the_inbox_without_duplicates_or_losses(database, make_workspace):
    shops = [make_workspace(name) for name in ("Shop A", "Shop B")]
    for b in range(20):  # the two shops' batches interleaved
        for workspace_id, _, key in shops:
            tracking.accept(endpoint="batch", body=batch_body(b * 25, 25), authorization=basic(key), database=database)
    # each shop's customers update their profile in order: the last batch's traits must win
    for workspace_id, _, key in shops:
        for visits in (1, 2, 3):
            tracking.accept(endpoint="identify", body=orjson.dumps({"userId": "U1", "traits": {"visits_in_order": visits}}),
                            authorization=basic(key), database=database)

    results = run_workers_at_once(database, 2, max_messages=50)
    assert sum(r["batches"] for r in results) == 46 and sum(r["stored"] for r in results) == 2 * (500 + 3)
    assert inbox(database) == 0
    for workspace_id, _, _ in shops:
        assert events(database, workspace_id) == distinct_message_ids(database, workspace_id) == 503
        assert scalar(database, select(func.count()).select_from(Identity).where(
            Identity.workspace_id == workspace_id, Identity.kind == "external_id")) == 7
        with database.read_session() as db:
            contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value == "U1"))
            assert db.get(Contact, contact_id).attributes["visits_in_order"] == 3
    if database.dialect == "postgresql":  # SKIP LOCKED and a lock per shop: both really worked, on different shops
        assert all(r["batches"] > 0 for r in results), results


def test_workers_racing_on_one_shop_store_everything_once(database, shop):
    workspace_id, key = shop
    sent = accept_batches(database, key, batches=30, size=20)
    results = run_workers_at_once(database, 3, max_messages=40)
    assert sum(r["batches"] for r in results) == 30 and sum(r["stored"] for r in results) == sent
    assert inbox(database) == 0
    assert events(database, workspace_id) == distinct_message_ids(database, workspace_id) == sent


def add_raw_batch(database, workspace_id: int, payload: bytes, count: int = 1) -> int:
    with database.session() as db:
        return db.execute(insert(InboundBatch).returning(InboundBatch.id), {
            "workspace_id": workspace_id, "received_at": utcnow(), "endpoint": "batch", "message_count": count,
            "payload": payload, "attempts": 0}).scalar_one()


def test_a_batch_that_no_longer_parses_is_set_aside_after_three_attempts_and_others_land(database, shop):
    workspace_id, key = shop
    accept_batches(database, key, batches=2, size=10, prefix="before")
    poisoned = add_raw_batch(database, workspace_id, b'{"batch": [{"type": "track", "event": "No one"}]}')
    accept_batches(database, key, batches=2, size=10, prefix="after")
    failed_before = metrics.INBOUND_FAILED._value.get()

    first = tracking.process_inbound(database=database)
    assert (first["batches"], first["failed"], first["set_aside"]) == (4, 1, 0)
    assert events(database, workspace_id) == 40  # the batches after it were not held up
    with database.read_session() as db:
        row = db.get(InboundBatch, poisoned)
        assert (row.attempts, row.failed_at) == (1, None) and "userId" in row.error
    assert tracking.backlog(database) == (1, 1)
    tracking.process_inbound(database=database)
    last = tracking.process_inbound(database=database)
    assert (last["failed"], last["set_aside"]) == (1, 1)
    with database.read_session() as db:
        row = db.get(InboundBatch, poisoned)
        assert row.attempts == 3 and row.failed_at is not None  # kept for inspection
    assert metrics.INBOUND_FAILED._value.get() - failed_before == 1
    assert tracking.backlog(database) == (0, 0)
    assert [b["id"] for b in tracking.set_aside(database, workspace_id=workspace_id)] == [poisoned]
    # set aside: later runs leave it alone
    assert tracking.process_inbound(database=database) == {"batches": 0, "messages": 0, "stored": 0, "failed": 0, "set_aside": 0}


def test_a_batch_that_breaks_storing_is_found_among_the_others_and_set_aside(database, shop, monkeypatch):
    """A failure while storing rolls back the whole transaction; the batches are then tried one by one."""
    workspace_id, key = shop
    accept_batches(database, key, batches=3, size=10, prefix="ok1")
    tracking.accept(endpoint="track", body=orjson.dumps({"userId": "u", "event": "Poison", "messageId": "poison"}),
                    authorization=basic(key), database=database)
    accept_batches(database, key, batches=3, size=10, prefix="ok2")
    real_store = tracking_inbox.store

    def store_breaking_on_poison(db, **kwargs):
        if any(m.message_id == "poison" for m in kwargs["messages"]):
            raise ValueError("a bug met this message")
        return real_store(db, **kwargs)

    monkeypatch.setattr(tracking_inbox, "store", store_breaking_on_poison)
    for attempt in range(1, tracking.MAX_ATTEMPTS + 1):
        done = tracking.process_inbound(database=database)
        assert done["failed"] == 1 and done["set_aside"] == (1 if attempt == tracking.MAX_ATTEMPTS else 0)
        assert events(database, workspace_id) == 60
    with database.read_session() as db:
        row = db.scalar(select(InboundBatch))
        assert row.failed_at is not None and row.error == "ValueError: a bug met this message"
    assert inbox(database) == 1 and tracking.backlog(database) == (0, 0)


def test_refused_requests_leave_nothing_in_the_inbox(client, database, shop):
    _, key = shop
    headers = {"Authorization": basic(key), "Content-Type": "application/json"}
    for endpoint, body in [("batch", b"{not json"), ("batch", b'{"batch": [{"type": "track", "userId": "u"}]}'),
                           ("track", orjson.dumps({"userId": "u", "event": "E", "properties": {"x": "y" * 40000}})),
                           ("identify", orjson.dumps({"traits": {"email": "a@example.com"}}))]:
        assert client.post(f"/v1/{endpoint}", headers=headers, content=body).status_code == 400
    assert client.post("/v1/track", headers={"Authorization": basic("wk_nope")}, json={"userId": "u", "event": "E"}).status_code == 401
    assert inbox(database) == 0


def test_backlog_is_a_prometheus_gauge(client, database, shop):
    _workspace_id, key = shop
    accept_batches(database, key, batches=2, size=5)
    text = client.get("/metrics").text
    assert 'tutti_inbound_pending{unit="batches"} 2.0' in text and 'tutti_inbound_pending{unit="messages"} 10.0' in text
    tracking.process_inbound(database=database)
    assert 'tutti_inbound_pending{unit="batches"} 0.0' in client.get("/metrics").text
    assert client.get("/healthz").status_code == 200


# --- the real worker ---------------------------------------------------------------------------------


def test_segment_client_against_tutti_serve_with_its_embedded_worker(database_url, tmp_path):
    """`tutti serve` as people run it (embedded queue and worker), fed by Segment's official library."""
    from segment.analytics import Client

    env = tutti_env(database_url, tmp_path / "data")
    write_key = json.loads(run(env, "workspace", "create", "Serve Shop").stdout)["write_key"]
    database = Database(database_url)
    try:
        with serving(env) as base:
            errors = []
            analytics = Client(write_key, host=base, on_error=lambda error, batch: errors.append(error), max_retries=2)
            for i in range(120):
                analytics.track(f"member-{i % 12}", "Product Viewed", {"product_id": f"SKU-{i % 4}", "price": 250}, message_id=f"serve-{i}")
            analytics.identify("member-0", {"email": "member0@example.tw", "name": "會員零"}, message_id="serve-identify")
            analytics.flush()  # every batch answered 200: in the inbox
            analytics.shutdown()
            assert errors == []
            assert wait_for_events(database, 121) == (121, 0)
            assert scalar(database, select(func.count()).select_from(Contact)) == 12
            assert scalar(database, select(func.count()).select_from(Identity).where(Identity.kind == "email")) == 1
    finally:
        database.dispose()


def test_last_seen_moves_forward_only(database, shop):
    workspace_id, key = shop
    for at in ("2025-05-02T10:00:00Z", "2025-05-01T10:00:00Z"):  # a late-arriving older event comes second
        tracking.accept(endpoint="track", body=orjson.dumps({"userId": "S1", "event": "Seen", "timestamp": at}),
                        authorization=basic(key), database=database)
        tracking.process_inbound(database=database)
    with database.read_session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value == "S1"))
        assert db.get(Contact, contact_id).last_seen_at.isoformat() == "2025-05-02T10:00:00+00:00"


def wait_for_events(database, expected: int, seconds: float = 60) -> tuple[int, int]:
    deadline = time.monotonic() + seconds
    while True:
        stored = scalar(database, select(func.count()).select_from(Event))
        waiting = inbox(database)
        if (stored == expected and waiting == 0) or time.monotonic() > deadline:
            return stored, waiting
        time.sleep(0.2)


def test_batches_accepted_with_no_worker_running_are_stored_by_tutti_worker_later(database_url, tmp_path):
    """Redis queue: `tutti serve` only accepts; the batches wait in the inbox until a `tutti worker` starts."""
    import httpx

    env = redis_queue_env(tutti_env(database_url, tmp_path / "data"))
    write_key = json.loads(run(env, "workspace", "create", "Redis Inbox Shop").stdout)["write_key"]
    database = Database(database_url)
    try:
        with serving(env) as base:
            for b in range(3):
                answer = httpx.post(f"{base}/v1/batch", content=batch_body(b * 50, 50), headers={"Authorization": basic(write_key)})
                assert answer.status_code == 200 and answer.json() == {"success": True}
            # durably stored, not processed: no worker consumes the Redis queue yet
            assert wait_for_events(database, 150, seconds=2) == (0, 3)
            assert 'tutti_inbound_pending{unit="messages"} 150.0' in httpx.get(f"{base}/metrics").text
            with working(env):
                assert wait_for_events(database, 150) == (150, 0)
    finally:
        forget_queue(env)
        database.dispose()


def test_embedded_worker_lets_a_burst_go_first_but_never_longer_than_the_limit(database, shop, monkeypatch):
    workspace_id, key = shop
    sent = accept_batches(database, key, batches=2, size=10)  # this process just accepted: the API is busy
    started = time.monotonic()
    tracking.process_inbound(database=database, defer_to_requests=True)
    assert time.monotonic() - started >= tracking_inbox._QUIET_SECONDS  # waited for a quiet moment
    assert events(database, workspace_id) == sent
    # requests keep coming, but the oldest batch has waited long enough: stored without a quiet moment
    monkeypatch.setattr(tracking_inbox, "BUSY_DEFER_SECONDS", 0.5)
    accept_batches(database, key, batches=1, size=10, prefix="late")
    stop = threading.Event()

    def keep_busy():
        while not stop.is_set():
            tracking_intake._last_accept = time.monotonic()
            time.sleep(0.01)

    busy = threading.Thread(target=keep_busy)
    busy.start()
    try:
        started = time.monotonic()
        tracking.process_inbound(database=database, defer_to_requests=True)
        waited = time.monotonic() - started
    finally:
        stop.set()
        busy.join()
    assert 0.2 < waited < 5 and events(database, workspace_id) == sent + 10


def test_a_person_erased_while_their_messages_wait_in_the_inbox_stays_erased(database, shop):
    from tutti.audience import privacy
    from tutti.platform.audit import Actor

    workspace_id, key = shop

    def send(user: str, email: str, message_id: str) -> None:
        body = orjson.dumps({"userId": user, "type": "identify", "traits": {"email": email, "name": "林小姐"}, "messageId": message_id})
        tracking.accept(endpoint="identify", body=body, authorization=basic(key), database=database)

    send("E1", "erase.me@example.com", "before-1")
    tracking.process_inbound(database=database)
    send("E1", "erase.me@example.com", "before-2")  # accepted, still waiting when the erasure comes
    with database.session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value == "E1"))
        privacy.erase_contact(db, workspace_id=workspace_id, contact_id=contact_id, actor=Actor.cli())
    tracking.process_inbound(database=database)
    with database.read_session() as db:
        assert db.scalar(select(func.count()).select_from(Identity).where(Identity.workspace_id == workspace_id)) == 0
        assert db.scalar(select(func.count()).select_from(Contact).where(Contact.name == "林小姐")) == 0
    assert inbox(database) == 0  # dropped, not left behind
    send("E1", "erase.me@example.com", "after-1")  # the person comes back later: that is new activity
    tracking.process_inbound(database=database)
    with database.read_session() as db:
        back = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value == "E1"))
        assert back is not None and back != contact_id
