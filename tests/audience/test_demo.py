"""The demo brand: plausible, idempotent, deterministic, and signed into like any workspace."""

import re
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tutti.audience import demo, identities
from tutti.audience.models import (
    AttributeDefinition,
    Consent,
    ConsentChange,
    Contact,
    ContactTag,
    Event,
    Identity,
    Order,
    OrderLine,
    Product,
    Tag,
    TagApplication,
)
from tutti.platform import workspaces
from tutti.platform.errors import Conflict
from tutti.platform.models import Workspace

TODAY = date(2025, 12, 31)  # the window is calendar 2025, so every month is whole
SIZE = 300
TABLES = (Contact, Identity, Consent, ConsentChange, ContactTag, TagApplication, Order, OrderLine, Event, Product, Tag,
          AttributeDefinition)


def build(database, **kwargs):
    kwargs = {"contacts": SIZE, "seed": 7, "today": TODAY, **kwargs}
    return demo.build(database, **kwargs)


def counts(database, workspace_id):
    with database.session() as db:
        return {t.__tablename__: db.scalar(select(func.count()).select_from(t).where(t.workspace_id == workspace_id))
                for t in TABLES}


def fingerprint(database, workspace_id):
    """What a person would see of the brand: names, identities, orders, events (ids aside)."""
    with database.session() as db:
        w = workspace_id
        return (
            list(db.execute(select(Contact.name, Contact.city, Contact.birthday, Contact.attributes, Contact.created_at)
                            .where(Contact.workspace_id == w).order_by(Contact.id))),
            sorted(db.execute(select(Identity.kind, Identity.value).where(Identity.workspace_id == w)).all()),
            list(db.execute(select(Order.external_id, Order.status, Order.total, Order.channel, Order.placed_at)
                            .where(Order.workspace_id == w).order_by(Order.external_id))),
            list(db.execute(select(Event.message_id, Event.name, Event.occurred_at, Event.properties)
                            .where(Event.workspace_id == w).order_by(Event.message_id))),
        )


def local_month(moment):
    return (moment + timedelta(hours=8)).month


def test_demo_brand_is_plausible(database):
    progress = []
    info = build(database, progress=lambda step, done, total: progress.append((step, done, total)))
    assert info.created and info.email == demo.OWNER_EMAIL and info.password == demo.demo_password(7)
    assert progress[-1][1] == progress[-1][2] and any(done == SIZE for _, done, _ in progress)
    w = info.workspace_id
    with database.session() as db:
        workspace = db.get(Workspace, w)
        assert (workspace.name, workspace.timezone, workspace.currency) == (demo.WORKSPACE_NAME, "Asia/Taipei", "TWD")
        assert db.scalar(select(func.count()).select_from(Contact).where(Contact.workspace_id == w)) == SIZE
        by_kind = Counter(k for k, in db.execute(select(Identity.kind).where(Identity.workspace_id == w)))
        members = by_kind["external_id"]
        assert 0.82 * SIZE <= members <= 0.97 * SIZE
        assert by_kind["anonymous_id"] == SIZE - members  # visitors who never registered: one anonymous id each
        assert 0.6 <= by_kind["line_uid"] / members <= 0.8
        assert 0.5 <= by_kind["email"] / members <= 0.7
        assert 0.7 <= by_kind["phone"] / members <= 0.9

        # names, cities and locales look Taiwanese
        rows = db.execute(select(Contact.name, Contact.locale, Contact.city).where(Contact.workspace_id == w, Contact.name.is_not(None))).all()
        surnames = Counter(name[0] for name, locale, _ in rows if locale == "zh-TW")
        assert surnames.most_common(1)[0][0] in {"陳", "林", "黃"}
        assert Counter(locale for _, locale, _ in rows)["zh-TW"] > 0.8 * len(rows)
        assert {city for *_, city in rows} & {"台北市", "新北市", "台中市", "高雄市"}

        # LINE followers and blockers, e-mail statuses, each with its history
        line = Counter(s for s, in db.execute(select(Consent.status).where(Consent.workspace_id == w, Consent.channel == "line")))
        assert set(line) == {"subscribed", "blocked"} and 0.04 <= line["blocked"] / sum(line.values()) <= 0.22
        email = Counter(s for s, in db.execute(select(Consent.status).where(Consent.workspace_id == w, Consent.channel == "email")))
        assert email["subscribed"] > email["unsubscribed"] > 0
        assert db.scalar(select(func.count()).select_from(Consent).where(Consent.workspace_id == w)) == by_kind["line_uid"] + by_kind["email"] + by_kind["phone"]
        changed = set(db.execute(select(ConsentChange.contact_id, ConsentChange.channel, ConsentChange.status)
                                 .where(ConsentChange.workspace_id == w)))
        for contact_id, channel, status in db.execute(select(Consent.contact_id, Consent.channel, Consent.status).where(Consent.workspace_id == w)):
            assert (contact_id, channel, status) in changed

        # custom attributes are declared and filled
        assert {k for k, in db.execute(select(AttributeDefinition.key).where(AttributeDefinition.workspace_id == w))} == {
            "tier", "points", "member_since", "favourite_categories", "marketing_opt_in"}
        tiers = Counter(a.get("tier") for a, in db.execute(select(Contact.attributes).where(Contact.workspace_id == w, Contact.name.is_not(None))))
        assert set(tiers) <= {"一般", "銀卡", "金卡", "黑卡"} and tiers["一般"] > tiers["銀卡"] > 0

        # orders: twelve months, 11.11 shows, refunds are statuses, lines point at the catalogue
        orders = db.execute(select(Order.placed_at, Order.status, Order.total, Order.refunded_total, Order.contact_id)
                            .where(Order.workspace_id == w)).all()
        assert SIZE <= len(orders) <= 3 * SIZE
        assert all(date(2025, 1, 1) <= (o.placed_at + timedelta(hours=8)).date() <= TODAY for o in orders)
        months = Counter(local_month(o.placed_at) for o in orders)
        assert months[11] > 1.3 * len(orders) / 12
        refunded = [o for o in orders if o.status == "refunded"]
        assert refunded and all(o.refunded_total == o.total for o in refunded)
        assert {"completed", "refunded", "cancelled"} <= {o.status for o in orders}
        per_buyer = sorted(Counter(o.contact_id for o in orders).values(), reverse=True)
        top = per_buyer[: max(1, len(per_buyer) // 10)]
        assert sum(top) > 0.25 * len(orders)  # a few members buy often
        products = {p for p, in db.execute(select(Product.id).where(Product.workspace_id == w))}
        assert 150 <= len(products) <= 300
        lines = db.execute(select(OrderLine.product_id, OrderLine.status).where(OrderLine.workspace_id == w)).all()
        assert lines and all(p in products for p, _ in lines)
        assert "refunded" in {s for _, s in lines}
        channels = {c for c, in db.execute(select(Order.channel).where(Order.workspace_id == w))}
        assert channels == {"web", "line", "store", "app"}

        # events tied to orders, with product properties
        names = Counter(n for n, in db.execute(select(Event.name).where(Event.workspace_id == w)))
        assert names["Order Completed"] == len(orders)
        assert names["Product Viewed"] > names["Product Added"] > 0 and names["Checkout Started"] > 0
        assert db.scalar(select(func.count()).select_from(Event).where(Event.workspace_id == w, Event.kind == "page")) > 0
        viewed = db.scalar(select(Event.properties).where(Event.workspace_id == w, Event.name == "Product Viewed").limit(1))
        assert {"product_id", "category", "price", "url"} <= set(viewed)
        assert 6 * SIZE <= sum(names.values()) <= 16 * SIZE
        messages = db.scalar(select(func.count(func.distinct(Event.message_id))).where(Event.workspace_id == w))
        assert messages == sum(names.values())

        # tags, with their history
        tags = dict(db.execute(select(Tag.name, Tag.id).where(Tag.workspace_id == w)).all())
        assert {"VIP", "新會員", "沉睡會員", "高價值", "母親節檔期", "雙11購買"} <= set(tags)
        applied = Counter(t for t, in db.execute(select(TagApplication.tag_id).where(TagApplication.workspace_id == w)))
        current = Counter(t for t, in db.execute(select(ContactTag.tag_id).where(ContactTag.workspace_id == w)))
        assert current[tags["雙11購買"]] > 0 and current[tags["沉睡會員"]] > 0
        assert all(applied[t] >= n for t, n in current.items())
        assert applied[tags["新會員"]] > current[tags["新會員"]]  # joined earlier in the year: the tag expired

        # segments to start from, refreshed: sizes equal a count of their rules now
        from tutti.reach.segments import service as segments
        from tutti.reach.segments.models import Segment, SegmentMember

        made = db.scalars(select(Segment).where(Segment.workspace_id == w).order_by(Segment.id)).all()
        assert len(made) == 5 and all(s.refreshed_at is not None for s in made)
        for segment in made:
            members = db.scalar(select(func.count()).select_from(SegmentMember).where(SegmentMember.segment_id == segment.id))
            assert segment.size == members == segments.count(db, workspace_id=w, rules=segment.rules)
        vip_line, top = made[0], made[2]
        assert 0 < vip_line.size < current[tags["VIP"]]  # VIPs without LINE are left out
        assert 0.15 * len(per_buyer) <= top.size <= 0.25 * len(per_buyer)


def test_building_again_changes_nothing_and_other_sizes_need_reset(database):
    first = build(database)
    before = counts(database, first.workspace_id)
    print_before = fingerprint(database, first.workspace_id)
    again = build(database)
    assert not again.created and again.workspace_id == first.workspace_id
    assert counts(database, first.workspace_id) == before
    assert fingerprint(database, first.workspace_id) == print_before
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Workspace)) == 1

    with pytest.raises(Conflict, match="--reset"):
        build(database, contacts=SIZE + 50)
    assert counts(database, first.workspace_id) == before

    bigger = build(database, contacts=SIZE + 50, reset=True)
    with database.session() as db:
        assert db.scalar(select(Workspace.id)) == bigger.workspace_id  # still one demo brand
        assert db.scalar(select(func.count()).select_from(Contact)) == SIZE + 50
    # the same seed and size, rebuilt from scratch, is the same brand
    rebuilt = build(database, reset=True)
    assert fingerprint(database, rebuilt.workspace_id) == print_before


def test_an_interrupted_build_is_replaced(database):
    first = build(database)
    with database.session() as db:
        from tutti.platform.models import AuditLog

        db.execute(AuditLog.__table__.delete().where(AuditLog.action == "demo.complete"))
    second = build(database)
    assert second.created and first.created
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Workspace)) == 1
        assert db.scalar(select(func.count()).select_from(Contact)) == SIZE


def test_owner_can_sign_in_even_after_changing_the_password(database):
    info = build(database)
    with database.session() as db:
        user = workspaces.authenticate_user(db, email=info.email, password=info.password)
        assert user is not None
        assert workspaces.role_of(db, workspace_id=info.workspace_id, user_id=user.id) == "owner"
        user.password_hash = "changed"
    again = build(database)
    with database.session() as db:
        assert workspaces.authenticate_user(db, email=again.email, password=again.password) is not None


def test_identities_are_unique_and_normalised(database):
    info = build(database)
    with database.session() as db:
        rows = db.execute(select(Identity.kind, Identity.value).where(Identity.workspace_id == info.workspace_id)).all()
    assert len(rows) == len(set(rows))
    for kind, value in rows:
        assert identities.normalise(kind, value) == value
    phones = [v for k, v in rows if k == "phone"]
    assert phones and all(re.fullmatch(r"\+8869\d{8}", p) for p in phones)
    assert all(re.fullmatch(r"M\d{6}", v) for k, v in rows if k == "external_id")
    assert all(re.fullmatch(r"U[0-9a-f]{32}", v) for k, v in rows if k == "line_uid")



def test_large_builds_generate_in_a_second_process_with_the_same_result(database, monkeypatch):
    """From PARALLEL_MIN_CHUNKS chunks on, rows are made in a forked process, ahead of the writes."""
    monkeypatch.setattr(demo, "CHUNK", 60)
    in_process = build(database, contacts=150)  # three chunks, made in this process
    expected = fingerprint(database, in_process.workspace_id)
    monkeypatch.setattr(demo, "PARALLEL_MIN_CHUNKS", 2)
    forked = build(database, contacts=150, reset=True)
    assert forked.created and fingerprint(database, forked.workspace_id) == expected
    with database.session() as db:
        w = forked.workspace_id
        contact_ids = {c for c, in db.execute(select(Contact.id).where(Contact.workspace_id == w))}
        assert len(contact_ids) == 150
        assert {c for c, in db.execute(select(Order.contact_id).where(Order.workspace_id == w))} <= contact_ids
        assert {c for c, in db.execute(select(Event.contact_id).where(Event.workspace_id == w))} <= contact_ids
        # the shop's orders have lines; the Reach demo's campaign purchases (DEMO-SPRING-…) are totals only
        order_ids = {o for o, in db.execute(select(Order.id).where(Order.workspace_id == w, Order.external_id.not_like("DEMO-SPRING-%")))}
        assert {o for o, in db.execute(select(OrderLine.order_id).where(OrderLine.workspace_id == w))} == order_ids


def test_members_ids_follow_the_order_they_joined_in(database):
    """The newest contacts (highest ids, as lists show them) are the members who joined last."""
    info = build(database)
    with database.session() as db:
        members = db.execute(
            select(Contact.id, Contact.created_at).join(Identity, Identity.contact_id == Contact.id)
            .where(Contact.workspace_id == info.workspace_id, Identity.kind == "external_id").order_by(Contact.id)
        ).all()
    days = [(created + timedelta(hours=8)).date() for _, created in members]
    assert len(days) > SIZE * 0.8 and days == sorted(days)
    assert days[-1] >= TODAY - timedelta(days=7) and days[0] <= TODAY - timedelta(days=demo.HISTORY_DAYS // 2)
