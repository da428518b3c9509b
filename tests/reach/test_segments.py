"""Segments service: validation paths, live counts, refresh with entered/left, exclusion segments, the tick,
merges and erasure, daily counts following merges, order facts folded on the tick, CSV export."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tutti.audience import commerce, consent, contacts, events, privacy, tags
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput
from tutti.reach.segments import eventcounts, jobs, orderfacts, service
from tutti.reach.segments.models import OrderBought, OrderFactChange, OrderSummary, SegmentChange, SegmentMember

ACTOR = Actor.cli()
VIP_LINE = {"op": "and", "children": [{"kind": "tag", "tag": "VIP"}, {"kind": "identity", "identity": "line_uid"}]}


def _person(db, wid, n, *, line=False, vip=False, city=None):
    identities = {"email": f"p{n}@example.com"}
    if line:
        identities["line_uid"] = "U" + f"{n:032x}"
    contact, _ = contacts.upsert(db, workspace_id=wid, actor=ACTOR, identities=identities, profile={"name": f"人 {n}", "city": city})
    if vip:
        tags.apply(db, workspace_id=wid, contact_ids=[contact.id], tag="VIP")
    return contact.id


def test_rules_errors_name_the_path(database, workspace_id):
    with database.session() as db:
        with pytest.raises(InvalidInput) as error:
            service.check_rules(db, workspace_id=workspace_id, rules={"op": "and", "children": [
                {"kind": "tag", "tag": "VIP"}, {"kind": "group", "op": "or", "children": [{"kind": "event", "name": "x", "op": "at_least"}]}]})
        assert error.value.field == "rules.children[1].children[0]"
        assert "times" in error.value.message
        with pytest.raises(InvalidInput) as error:
            service.check_rules(db, workspace_id=workspace_id, rules={"children": [{"kind": "attribute", "field": "shoe_size", "op": "equals", "value": 3}]})
        assert error.value.field == "rules.children[0].field"
        with pytest.raises(InvalidInput) as error:
            service.check_rules(db, workspace_id=workspace_id, rules={"children": [{"kind": "attribute", "field": "city", "op": "gt", "value": 3}]})
        assert error.value.field == "rules.children[0].op"
        with pytest.raises(InvalidInput) as error:
            service.check_rules(db, workspace_id=workspace_id, rules={"children": [{"kind": "orders", "measure": "count", "op": "gt", "value": 1, "days": 0}]})
        assert error.value.field == "rules.children[0].days"


def test_count_refresh_entered_left(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1, line=True, vip=True)
        b = _person(db, wid, 2, line=True, vip=False)
        c = _person(db, wid, 3, line=False, vip=True)
        assert service.count(db, workspace_id=wid, rules=VIP_LINE) == 1
        segment = service.create_segment(db, workspace_id=wid, name="VIP on LINE", rules=VIP_LINE, actor=ACTOR)
        sid = segment.id
        assert service.refresh(db, workspace_id=wid, segment_id=sid) == (1, 1, 0)
    with database.session() as db:
        tags.apply(db, workspace_id=wid, contact_ids=[b], tag="VIP")
        tags.remove(db, workspace_id=wid, contact_ids=[a], tag="VIP")
        assert service.refresh(db, workspace_id=wid, segment_id=sid) == (1, 1, 1)
        assert service.refresh(db, workspace_id=wid, segment_id=sid) == (1, 0, 0)
    with database.read_session() as db:
        rows = [(r.contact_id, r.change) for r in service.changes(db, workspace_id=wid, segment_id=sid)]
        assert rows == [(a, "entered"), (b, "entered"), (a, "left")]
        assert set(db.scalars(select(SegmentMember.contact_id).where(SegmentMember.segment_id == sid))) == {b}
        segment = service.get_segment(db, workspace_id=wid, segment_id=sid)
        assert segment.size == 1 and segment.refreshed_at is not None
        assert c not in {r["contact_id"] for r in service.members_page(db, workspace_id=wid, rules=segment.rules)}


def test_merged_and_erased_contacts_are_never_members(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1, vip=True)
        b = _person(db, wid, 2, vip=True)
        c = _person(db, wid, 3, vip=True)
        contacts.merge(db, workspace_id=wid, winner_id=a, loser_id=b, reason="manual", actor=ACTOR)
    with database.session() as db:
        privacy.erase_contact(db, workspace_id=wid, contact_id=c, actor=ACTOR)
    with database.read_session() as db:
        rules = {"children": [{"kind": "tag", "tag": "VIP"}]}
        assert {r["contact_id"] for r in service.members_page(db, workspace_id=wid, rules=rules)} == {a}


def test_exclusion_segments_and_cycles(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1, vip=True, city="台北市")
        _person(db, wid, 2, vip=True, city="高雄市")
        taipei = service.create_segment(db, workspace_id=wid, name="Taipei", actor=ACTOR,
                                        rules={"children": [{"kind": "attribute", "field": "city", "op": "equals", "value": "台北市"}]})
        vip_not_taipei = service.create_segment(db, workspace_id=wid, name="VIP not Taipei", actor=ACTOR, rules={"children": [
            {"kind": "tag", "tag": "VIP"}, {"kind": "segment", "segment_id": taipei.id, "op": "not_in"}]})
        assert service.count(db, workspace_id=wid, rules=vip_not_taipei.rules) == 1
        assert service.count(db, workspace_id=wid, rules={"children": [{"kind": "segment", "segment_id": taipei.id}]}) == 1
        with pytest.raises(InvalidInput) as error:
            service.update_segment(db, workspace_id=wid, segment_id=taipei.id, actor=ACTOR,
                                   rules={"children": [{"kind": "segment", "segment_id": vip_not_taipei.id}]})
        assert "refers back" in error.value.message and error.value.field.endswith("segment_id")
        with pytest.raises(Conflict):
            service.delete_segment(db, workspace_id=wid, segment_id=taipei.id, actor=ACTOR)
        with pytest.raises(Conflict):
            service.create_segment(db, workspace_id=wid, name="Taipei", actor=ACTOR, rules={"children": []})
        assert a


def test_tick_refreshes_due_segments_and_folds_events(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1)
        b = _person(db, wid, 2)
        now = utcnow()
        events.record(db, workspace_id=wid, events=[
            events.NewEvent(contact_id=a, name="Product Added", occurred_at=now - timedelta(days=d), properties={}) for d in (1, 2, 3)] + [
            events.NewEvent(contact_id=b, name="Product Added", occurred_at=now - timedelta(days=40), properties={})])
        rules = {"children": [{"kind": "event", "name": "Product Added", "op": "at_least", "times": 2, "days": 30}]}
        sid = service.create_segment(db, workspace_id=wid, name="carts", rules=rules, actor=ACTOR, refresh_minutes=60).id
        hourly_off = service.create_segment(db, workspace_id=wid, name="manual", rules=rules, actor=ACTOR, refresh_minutes=0).id
    jobs.segments_tick()
    with database.read_session() as db:
        assert service.get_segment(db, workspace_id=wid, segment_id=sid).size == 1
        assert service.get_segment(db, workspace_id=wid, segment_id=hourly_off).refreshed_at is None
        assert db.scalar(select(SegmentChange.contact_id).where(SegmentChange.segment_id == sid)) == a
        assert eventcounts.workspaces_behind(db) == []
        assert service.due_segments(db) == []
        assert service.due_segments(db, now=utcnow() + timedelta(minutes=61)) == [(wid, sid)]


def test_daily_counts_follow_merges(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1)
        b = _person(db, wid, 2)
        now = utcnow()
        events.record(db, workspace_id=wid, events=[
            events.NewEvent(contact_id=c, name="Page Viewed", occurred_at=now - timedelta(days=3, hours=h), properties={})
            for c in (a, b) for h in (1, 2)])
    eventcounts.fold(database, workspace_id=wid)
    rules = {"children": [{"kind": "event", "name": "Page Viewed", "op": "at_least", "times": 3, "days": 7}]}
    with database.session() as db:
        assert service.count(db, workspace_id=wid, rules=rules) == 0
        contacts.merge(db, workspace_id=wid, winner_id=a, loser_id=b, reason="manual", actor=ACTOR)
    with database.read_session() as db:
        assert [r["contact_id"] for r in service.members_page(db, workspace_id=wid, rules=rules)] == [a]


def test_order_facts_fold_on_the_tick_and_follow_refunds_and_merges(database, workspace_id):
    wid = workspace_id
    now = utcnow()

    def order(contact_id, key, total, days, category="保養"):
        return commerce.NewOrder(contact_id=contact_id, external_id=key, placed_at=now - timedelta(days=days), total=total,
                                 lines=[commerce.NewOrderLine(sku=key, category=category)])

    with database.session() as db:
        people = [_person(db, wid, n) for n in range(7)]
        commerce.record_orders(db, workspace_id=wid, orders=[order(c, f"O{i}", 100 * (i + 1), 40 + i) for i, c in enumerate(people)])
    bought = {"children": [{"kind": "bought", "category": "保養", "days": 90},
                           {"kind": "group", "op": "and", "negate": True, "children": [{"kind": "bought", "category": "保養", "days": 30}]}]}
    top = {"children": [{"kind": "rfm", "dimension": "monetary", "low": 5, "high": 5}]}

    def members(rules):
        with database.read_session() as db:
            return [r["contact_id"] for r in service.members_page(db, workspace_id=wid, rules=rules)]

    assert members(top) == [people[6]] and len(members(bought)) == 7  # nothing folded yet: read from the orders
    jobs.segments_tick()
    with database.read_session() as db:
        assert orderfacts.workspaces_behind(db) == []
        assert db.scalar(select(OrderSummary.spent).where(OrderSummary.contact_id == people[6])) == 700
        assert db.scalar(select(OrderBought.last_at).where(OrderBought.contact_id == people[0], OrderBought.kind == "category")) is not None
    assert members(top) == [people[6]] and len(members(bought)) == 7  # now from the state
    with database.session() as db:
        commerce.set_order_status(db, workspace_id=wid, external_id="O6", status="refunded")
        commerce.record_orders(db, workspace_id=wid, orders=[order(people[0], "O7", 50, 3)])
        contacts.merge(db, workspace_id=wid, winner_id=people[1], loser_id=people[4], reason="manual", actor=ACTOR)
    # unfolded: the refunded buyer is out, the merged one ranks with both orders, a recent buyer leaves
    expected = [people[1], people[2], people[3], people[5]]
    assert members(top) == [people[1]] and members(bought) == expected
    jobs.segments_tick()
    with database.read_session() as db:
        assert orderfacts.workspaces_behind(db) == []
        assert db.scalar(select(func.count()).select_from(OrderFactChange).where(OrderFactChange.workspace_id == wid)) == 1  # folded: pruned
    assert members(top) == [people[1]] and members(bought) == expected
    with database.session() as db:  # a change after the pruning still lands above the watermark (SQLite reuses freed ids)
        commerce.set_order_status(db, workspace_id=wid, external_id="O2", status="cancelled")
    # four buyers left: NTILE(5) leaves the fifth quintile empty
    assert members(top) == [] and members(bought) == [people[1], people[3], people[5]]


def test_reachable_needs_consent_and_identity(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        a = _person(db, wid, 1, line=True)
        b = _person(db, wid, 2, line=True)
        c = _person(db, wid, 3)
        consent.set_consent(db, workspace_id=wid, contact_id=a, channel="line", status="subscribed", source="test")
        consent.set_consent(db, workspace_id=wid, contact_id=b, channel="line", status="blocked", source="test")
        consent.set_consent(db, workspace_id=wid, contact_id=c, channel="line", status="subscribed", source="test")  # no LINE id
        rules = {"children": [{"kind": "reachable", "channel": "line"}]}
        assert [r["contact_id"] for r in service.members_page(db, workspace_id=wid, rules=rules)] == [a]


def test_export_csv_streams_members(database, workspace_id):
    wid = workspace_id
    with database.session() as db:
        ids = [_person(db, wid, n, vip=True, line=n % 2 == 0) for n in range(7)]
        sid = service.create_segment(db, workspace_id=wid, name="all VIP", rules={"children": [{"kind": "tag", "tag": "VIP"}]}, actor=ACTOR).id
        service.refresh(db, workspace_id=wid, segment_id=sid)
    chunks = list(service.export_csv(database, workspace_id=wid, segment_id=sid, chunk=3))
    assert len(chunks) == 3
    lines = "".join(chunks).lstrip("\ufeff").splitlines()
    assert lines[0] == ",".join(service.EXPORT_COLUMNS)
    assert [int(line.split(",")[0]) for line in lines[1:]] == ids
    assert "p3@example.com" in lines[4]
