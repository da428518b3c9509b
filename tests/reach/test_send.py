"""The send engine against the LINE emulator, through line-bot-sdk: multicast of identical payloads, push of
personalised ones, retries that keep their key, a crash between the provider's answer and the outcome
write, pause / resume / cancel mid-send, quiet hours, and permanent failures with LINE's reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.channels import emulator
from tests.reach.campaign_world import ACTOR, add_contacts, connect_line, line_uid, make_campaign
from tutti.platform.db import utcnow
from tutti.reach.campaigns import engine, service
from tutti.reach.campaigns.models import Campaign, Delivery, DeliveryBatch

line_emulator = emulator.line_emulator  # the fixture

SAME_FOR_ALL = {"messages": [{"type": "text", "text": "週年慶全館 8 折，只到週日！"}]}
BY_NAME = {"messages": [{"type": "text", "text": "{{ name | default('朋友') }}，週年慶全館 8 折"}]}


def _start(database, workspace_id, campaign_id) -> None:
    """Sending status without running the job (the queue is immediate in tests): the test drives engine.run."""
    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        service.check_ready(db, campaign)
        campaign.status, campaign.started_at = "sending", utcnow()


def _statuses(database, campaign_id) -> dict:
    with database.read_session() as db:
        return dict(db.execute(select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
                               .group_by(Delivery.status)).all())


def _in_flight(database) -> int:
    """Deliveries in a request written and not recorded (DeliveryBatch rows)."""
    with database.read_session() as db:
        return sum(len(ids) for ids in db.scalars(select(DeliveryBatch.delivery_ids)))


def _campaign(database, campaign_id) -> Campaign:
    with database.read_session() as db:
        return db.get(Campaign, campaign_id)


def _received(database, emulator, ids) -> dict[int, list[str]]:
    return {contact_id: [m["message"]["text"] for m in emulator.messages(line_uid(database, contact_id))] for contact_id in ids}


def test_identical_payloads_go_by_multicast_once_each(database, workspace_id, line_emulator):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 1200)
    campaign_id = make_campaign(database, workspace_id, ids, holdout_percent=10,
                                variants=[{"name": "A", "split_percent": 100, "content": {"line": SAME_FOR_ALL}}])
    with database.session() as db:
        service.send_now(db, workspace_id=workspace_id, campaign_id=campaign_id, actor=ACTOR)  # runs inline after commit
    campaign = _campaign(database, campaign_id)
    assert campaign.status == "sent" and campaign.finished_at is not None
    assert campaign.sent_count == campaign.deliveries_count == 1200 - campaign.holdout_count
    assert 60 < campaign.holdout_count < 180
    received = _received(database, line_emulator, ids)
    with database.read_session() as db:
        delivered = set(db.scalars(select(Delivery.contact_id).where(Delivery.campaign_id == campaign_id)))
    assert all(len(received[c]) == (1 if c in delivered else 0) for c in ids)
    requests = line_emulator.emulator.requests
    assert {r["endpoint"] for r in requests} == {"multicast"} and len(requests) == 3  # 500 + 500 + the rest
    progress = service.progress(campaign)
    assert progress["done"] and progress["queued"] == 0 and progress["percent"] == 100.0


def test_personalised_payloads_go_one_by_one(database, workspace_id, line_emulator):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 12)
    nameless = add_contacts(database, workspace_id, 3, names=False, prefix="n")
    campaign_id = make_campaign(database, workspace_id, ids + nameless,
                                variants=[{"name": "A", "split_percent": 100, "content": {"line": BY_NAME}}])
    _start(database, workspace_id, campaign_id)
    assert engine.run(campaign_id) == "sent"
    received = _received(database, line_emulator, ids + nameless)
    with database.read_session() as db:
        from tutti.audience.models import Contact

        names = dict(db.execute(select(Contact.id, Contact.name).where(Contact.id.in_(ids))).all())
    for contact_id in ids:
        assert received[contact_id] == [f"{names[contact_id]}，週年慶全館 8 折"]
    # the three without a name share one payload: one multicast
    assert all(received[c] == ["朋友，週年慶全館 8 折"] for c in nameless)
    endpoints = [r["endpoint"] for r in line_emulator.emulator.requests]
    assert endpoints.count("push") == 12 and endpoints.count("multicast") == 1


def test_a_crash_after_the_provider_answered_resends_with_the_same_keys(database, workspace_id, line_emulator, monkeypatch):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 40)
    personalised = add_contacts(database, workspace_id, 5, prefix="p")
    campaign_id = make_campaign(database, workspace_id, ids + personalised, variants=[
        {"name": "A", "split_percent": 100, "content": {"line": {"messages": [{"type": "text", "text": "{{ city | default('台灣') }} 限定"}]}}}])
    with database.session() as db:
        from tutti.audience.models import Contact

        for contact_id in personalised:  # five cities: pushes; the rest share "台灣": a multicast
            db.get(Contact, contact_id).city = f"city{contact_id}"
    _start(database, workspace_id, campaign_id)
    real_record = engine.record

    def die(sender, results):
        raise SystemExit("the worker died after LINE accepted the batch")

    monkeypatch.setattr(engine, "record", die)
    with pytest.raises(SystemExit):
        engine.run(campaign_id)
    assert _statuses(database, campaign_id) == {"queued": 45} and _in_flight(database) == 45
    assert len(line_emulator.emulator.requests) == 6
    monkeypatch.setattr(engine, "record", real_record)
    assert engine.run(campaign_id) == "sent"
    assert _statuses(database, campaign_id) == {"sent": 45}
    assert all(len(texts) == 1 for texts in _received(database, line_emulator, ids + personalised).values())
    assert line_emulator.emulator.stats["rejected_409"] == 6  # the same requests again, each known by its retry key
    assert _campaign(database, campaign_id).sent_count == 45


def test_a_crash_before_the_provider_was_called_sends_on_restart(database, workspace_id, line_emulator, monkeypatch):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 10)
    campaign_id = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": {"line": SAME_FOR_ALL}}])
    _start(database, workspace_id, campaign_id)

    def die(self, requests):
        raise SystemExit("killed after writing the request")

    monkeypatch.setattr(engine.Sender, "send", die)
    with pytest.raises(SystemExit):
        engine.run(campaign_id)
    assert _statuses(database, campaign_id) == {"queued": 10} and _in_flight(database) == 10
    assert not line_emulator.emulator.requests
    monkeypatch.undo()
    assert engine.run(campaign_id) == "sent"
    assert all(len(t) == 1 for t in _received(database, line_emulator, ids).values())


def test_a_sender_that_dies_with_a_group_still_filling_loses_and_duplicates_nothing(database, workspace_id, line_emulator):
    """A multicast group that waits for the next round's rows is in no request yet. Killed then, the next
    sender sends the request the dead one wrote as the same request and reads the waiting rows again."""
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 12)
    campaign_id = make_campaign(database, workspace_id, ids, variants=[
        {"name": "A", "split_percent": 100, "content": {"line": {"messages": [{"type": "text", "text": "{{ city | default('台灣') }} 限定"}]}}}])
    _start(database, workspace_id, campaign_id)
    with database.session() as db:
        service.take_audience(db, campaign=db.get(Campaign, campaign_id))
        in_order = list(db.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)))
        for delivery in in_order[7:]:  # as if the snapshot had read them so: the values the sender renders from
            delivery.profile_values = '{"city": "台南"}'
    # rounds of 5: round 1 holds five 台灣 rows back; round 2 sends seven 台灣 and holds three 台南 back
    sender = engine.Sender(database, campaign_id, workspace_id)
    requests = engine.claim(sender, limit=5)
    assert [len(r.rows) for r in requests] == [7] and sum(len(rows) for _, rows in sender.pending.values()) == 3
    assert _statuses(database, campaign_id) == {"queued": 12} and _in_flight(database) == 7
    # ...and the sender dies here, before any provider call
    assert engine.run(campaign_id) == "sent"
    assert _statuses(database, campaign_id) == {"sent": 12}
    texts = _received(database, line_emulator, ids)
    assert all(len(t) == 1 for t in texts.values()) and sum(t == ["台南 限定"] for t in texts.values()) == 5
    assert [r["endpoint"] for r in line_emulator.emulator.requests] == ["multicast", "multicast"]
    with database.read_session() as db:
        assert db.scalar(select(func.count()).select_from(DeliveryBatch)) == 0


def test_answer_lost_after_accept_is_retried_with_the_same_key(database, workspace_id, line_emulator, monkeypatch):
    monkeypatch.setattr(engine, "BACKOFF_SECONDS", 0.05)
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 8)
    campaign_id = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": {"line": SAME_FOR_ALL}}])
    line_emulator.configure(faults=[{"endpoint": "multicast", "status": 500, "count": 1, "after_accept": True}])
    _start(database, workspace_id, campaign_id)
    assert engine.run(campaign_id) == "sent"
    assert all(len(t) == 1 for t in _received(database, line_emulator, ids).values())
    assert line_emulator.emulator.stats["rejected_409"] == 1
    with database.read_session() as db:
        assert set(db.scalars(select(Delivery.attempts).where(Delivery.campaign_id == campaign_id))) == {2}


def test_rate_limits_back_off_and_permanent_errors_keep_the_reason(database, workspace_id, line_emulator, monkeypatch):
    monkeypatch.setattr(engine, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(engine, "MAX_ATTEMPTS", 3)
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 6)
    campaign_id = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": {"line": BY_NAME}}])
    blocked = line_uid(database, ids[0])
    line_emulator.configure(blocked=[blocked], faults=[{"endpoint": "push", "status": 429, "count": 2}])
    _start(database, workspace_id, campaign_id)
    assert engine.run(campaign_id) == "sent"
    with database.read_session() as db:
        rows = {d.contact_id: d for d in db.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
    assert rows[ids[0]].status == "failed" and rows[ids[0]].error_code == "400" and "Failed to send" in rows[ids[0]].error_reason
    assert all(rows[c].status == "sent" for c in ids[1:])
    campaign = _campaign(database, campaign_id)
    assert (campaign.sent_count, campaign.failed_count) == (5, 1)


def test_pause_resume_and_cancel_mid_send(database, workspace_id, line_emulator, monkeypatch):
    monkeypatch.setattr(engine, "CLAIM_SIZE", 10)
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 100)
    campaign_id = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": {"line": BY_NAME}}])
    _start(database, workspace_id, campaign_id)
    real_record = engine.record
    calls = []

    def record_then(action):
        def wrapped(sender, results):
            out = real_record(sender, results)
            calls.append(1)
            if len(calls) == 2:
                with database.session() as db:
                    action(db, workspace_id=workspace_id, campaign_id=sender.campaign_id, actor=ACTOR)
            return out
        return wrapped

    monkeypatch.setattr(engine, "record", record_then(service.pause))
    assert engine.run(campaign_id) == "paused"
    paused = _statuses(database, campaign_id)
    # what was read before the pause goes: the stages in flight, the claim behind them and the rows it read
    # ahead (a personalised row waits a round in case another shares its payload)
    assert 20 <= paused["sent"] <= 60 and paused["queued"] == 100 - paused["sent"]
    assert sum(len(t) for t in _received(database, line_emulator, ids).values()) == paused["sent"]

    with database.session() as db:  # resume queues the job again (immediate in tests: it runs on commit)
        monkeypatch.setattr(engine, "record", real_record)
        service.resume(db, workspace_id=workspace_id, campaign_id=campaign_id, actor=ACTOR)
    assert _statuses(database, campaign_id) == {"sent": 100}
    assert all(len(t) == 1 for t in _received(database, line_emulator, ids).values())

    other = make_campaign(database, workspace_id, ids, name="second")
    _start(database, workspace_id, other)
    calls.clear()
    monkeypatch.setattr(engine, "record", record_then(service.cancel))
    assert engine.run(other) == "cancelled"
    statuses = _statuses(database, other)
    campaign = _campaign(database, other)
    assert set(statuses) == {"sent", "cancelled"} and statuses["cancelled"] == campaign.cancelled_count
    assert campaign.finished_at is not None and service.progress(campaign)["queued"] == 0


def test_quiet_hours_postpone_and_the_tick_resumes(database, workspace_id, line_emulator):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 3)
    now = utcnow().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Taipei"))
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    campaign_id = make_campaign(database, workspace_id, ids, quiet_hours={"start": start, "end": end})
    _start(database, workspace_id, campaign_id)
    assert engine.run(campaign_id) == "waiting"
    campaign = _campaign(database, campaign_id)
    assert campaign.waiting == "quiet_hours" and campaign.deliveries_count == 3 and not line_emulator.emulator.requests
    with database.session() as db:
        db.get(Campaign, campaign_id).quiet_hours = None
        db.get(Campaign, campaign_id).heartbeat_at = utcnow() - timedelta(minutes=5)
    from tutti.reach.campaigns.jobs import start_and_resume_campaigns

    start_and_resume_campaigns()
    assert _campaign(database, campaign_id).status == "sent"


def test_scheduled_campaigns_start_on_the_tick(database, workspace_id, line_emulator):
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 3)
    campaign_id = make_campaign(database, workspace_id, ids)
    with database.session() as db:
        service.schedule(db, workspace_id=workspace_id, campaign_id=campaign_id, scheduled_at=utcnow() + timedelta(hours=2),
                         actor=ACTOR)
    from tutti.reach.campaigns.jobs import start_and_resume_campaigns

    start_and_resume_campaigns()
    assert _campaign(database, campaign_id).status == "scheduled"
    with database.session() as db:
        db.get(Campaign, campaign_id).scheduled_at = utcnow() - timedelta(seconds=1)
    start_and_resume_campaigns()
    assert _campaign(database, campaign_id).status == "sent"
    assert all(len(t) == 1 for t in _received(database, line_emulator, ids).values())


def test_a_broadcast_by_city_renders_the_values_of_its_snapshot(database, workspace_id, line_emulator):
    """Personalised by city, rendered from the values the snapshot stored (one multicast per city, no
    contact read at send time): a move after the snapshot does not change the message; an erasure does
    (the erased contact's values leave its queued delivery, which falls back to the template's default)."""
    from sqlalchemy import update

    from tutti.audience import privacy
    from tutti.audience.models import Contact

    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 9)
    with database.session() as db:
        for n, contact_id in enumerate(ids):
            db.execute(update(Contact).where(Contact.id == contact_id).values(city=["台北市", "高雄市", None][n % 3]))
    by_city = {"messages": [{"type": "text", "text": "{{ city | default('台灣') }} 限定"}]}
    campaign_id = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": {"line": by_city}}])
    _start(database, workspace_id, campaign_id)
    uids = {contact_id: line_uid(database, contact_id) for contact_id in ids}  # the erasure removes them
    with database.session() as db:
        service.take_audience(db, campaign=db.get(Campaign, campaign_id))
        db.execute(update(Contact).where(Contact.id == ids[0]).values(city="台南市"))  # moves after the snapshot
        privacy.erase_contact(db, workspace_id=workspace_id, contact_id=ids[1], actor=ACTOR)
    assert engine.run(campaign_id, database=database) == "sent"
    received = {c: [m["message"]["text"] for m in line_emulator.messages(uids[c])] for c in ids}
    assert received[ids[0]] == ["台北市 限定"] and received[ids[3]] == ["台北市 限定"]
    assert received[ids[1]] == ["台灣 限定"] and received[ids[4]] == ["高雄市 限定"]
    assert received[ids[2]] == ["台灣 限定"] and received[ids[5]] == ["台灣 限定"]
    requests = line_emulator.emulator.requests
    assert {r["endpoint"] for r in requests} == {"multicast"}
