"""Small random workspaces for the segment tests: rows written straight into the tables (no services), so
the data can hold every shape the rules must handle — merged and erased contacts, wrong-typed JSON,
expired tags, refunded lines, events on both sides of a day boundary."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, insert, inspect, select

from tutti.audience.models import (
    AttributeDefinition,
    Consent,
    Contact,
    ContactTag,
    Event,
    Identity,
    Order,
    OrderLine,
    Tag,
    TagApplication,
)
from tutti.platform.db import Database

NOW = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
TAGS = ("VIP", "新會員", "sleepy")
EVENTS = ("Product Viewed", "Product Added", "Order Completed")
CATEGORIES = ("保養", "彩妝", "tea")
SKUS = ("S1", "S2", "S3")
CITIES = ("台北市", "Taipei", "高雄市", None)
ATTRIBUTES = {"tier": "string", "points": "number", "opt_in": "boolean", "since": "date", "favs": "list"}


def _attr_value(rng: random.Random, type_: str):
    roll = rng.random()
    if roll < 0.2:
        return None  # missing
    if roll < 0.27:
        return rng.choice(["5", 5, True, None, ["a"]])  # wrong type: must match nowhere, on both engines
    if type_ == "string":
        return rng.choice(["gold", "Gold", "silver", "黑卡"])
    if type_ == "number":
        return rng.choice([0, 1, 5, 10, 2.5, -3])
    if type_ == "boolean":
        return rng.choice([True, False])
    if type_ == "date":
        return (NOW - timedelta(days=rng.choice([0, 1, 5, 29, 30, 31, 400]))).date().isoformat()
    return rng.sample(["tea", "保養", "Gift"], rng.randint(0, 2))


def _at(rng: random.Random) -> datetime:
    return NOW - timedelta(days=rng.choice([0, 1, 2, 7, 29, 30, 31, 59, 60, 61, 89, 90, 91, 200]), hours=rng.choice([-3, 0, 5, 11, 20]),
                           minutes=rng.choice([0, 29, 31]))


def build(database: Database, workspace_id: int, seed: int, *, contacts: int = 8, fold_at: float | None = None) -> dict:
    """Random rows for a workspace; events are written in two halves with an optional fold between."""
    rng = random.Random(seed)
    names = set(inspect(database.engine).get_table_names())
    with database.session() as db:
        for key, type_ in ATTRIBUTES.items():
            db.execute(insert(AttributeDefinition).values(workspace_id=workspace_id, key=key, type=type_, label=key))
        tag_ids = {}
        for name in TAGS:
            tag_ids[name] = db.execute(insert(Tag).values(workspace_id=workspace_id, name=name).returning(Tag.id)).scalar_one()
        tables, links, campaigns = {}, {}, {}
        if "click" in names:  # the tracking helper's tables, reflected: segments only read them
            meta = MetaData()
            meta.reflect(bind=db.connection(), only=["link", "click"])
            tables = meta.tables
            for campaign in (1, 2):
                links[campaign] = db.execute(insert(tables["link"]).values(
                    workspace_id=workspace_id, campaign_id=campaign, variant_id=0, position=0, url="https://example.com",
                    created_at=NOW).returning(tables["link"].c.id)).scalar_one()
        if "delivery" in names:  # the campaigns' tables, likewise; deliveries need real campaign rows
            meta = MetaData()
            meta.reflect(bind=db.connection(), only=["campaign", "delivery"])
            tables = {**tables, **meta.tables}
            for slot in (1, 2):
                campaigns[slot] = db.execute(insert(tables["campaign"]).values(
                    workspace_id=workspace_id, name=f"c{slot}", kind="marketing", status="done", audience={}, channels=["line"],
                    channel_ids={}, holdout_percent=0, attribution_days=7, costs={}, key_namespace=f"k{workspace_id}-{slot}",
                    recipients_count=0, holdout_count=0, deliveries_count=0, sent_count=0, failed_count=0, cancelled_count=0,
                    skipped={}, created_at=NOW, updated_at=NOW).returning(tables["campaign"].c.id)).scalar_one()
        ids = []
        for i in range(contacts):
            attributes = {k: v for k, t in ATTRIBUTES.items() if (v := _attr_value(rng, t)) is not None or rng.random() < 0.1}
            cid = db.execute(insert(Contact).values(
                workspace_id=workspace_id, name=rng.choice([f"Mei {i}", f"陳{i}", None]), gender=rng.choice(["female", "male", None]),
                city=rng.choice(CITIES), birthday=rng.choice([None, (NOW - timedelta(days=rng.randint(0, 20000))).date()]),
                attributes=attributes, created_at=_at(rng), last_seen_at=rng.choice([None, _at(rng)]),
            ).returning(Contact.id)).scalar_one()
            ids.append(cid)
        for cid in ids:
            if len(ids) > 2 and rng.random() < 0.12:
                db.execute(Contact.__table__.update().where(Contact.id == cid).values(merged_into_id=ids[0]))
            elif rng.random() < 0.08:
                db.execute(Contact.__table__.update().where(Contact.id == cid).values(erased_at=NOW))
            for kind in ("line_uid", "email", "phone"):
                if rng.random() < 0.5:
                    db.execute(insert(Identity).values(workspace_id=workspace_id, contact_id=cid, kind=kind, value=f"{kind}-{workspace_id}-{cid}"))
            for channel in ("line", "email", "sms"):
                if rng.random() < 0.7:
                    db.execute(insert(Consent).values(workspace_id=workspace_id, contact_id=cid, channel=channel,
                                                      status=rng.choice(["subscribed", "subscribed", "unsubscribed", "blocked", "bounced"])))
            for name in TAGS:
                if rng.random() < 0.4:
                    db.execute(insert(ContactTag).values(contact_id=cid, tag_id=tag_ids[name], workspace_id=workspace_id, applied_at=_at(rng),
                                                         expires_at=rng.choice([None, None, NOW - timedelta(hours=1), NOW + timedelta(days=3)])))
                for _ in range(rng.choice([0, 0, 1, 2, 3])):
                    db.execute(insert(TagApplication).values(workspace_id=workspace_id, contact_id=cid, tag_id=tag_ids[name], applied_at=_at(rng)))
            for n in range(rng.choice([0, 1, 2, 3])):
                placed = _at(rng)
                oid = db.execute(insert(Order).values(
                    workspace_id=workspace_id, contact_id=cid, external_id=f"O-{cid}-{n}", placed_at=placed,
                    status=rng.choice(["completed", "completed", "paid", "cancelled", "refunded", "partially_refunded"]),
                    total=rng.choice([100, 500, 1200, 3000, 3500]), refunded_total=rng.choice([0, 0, 100]),
                ).returning(Order.id)).scalar_one()
                for _ in range(rng.choice([1, 2])):
                    db.execute(insert(OrderLine).values(workspace_id=workspace_id, order_id=oid, sku=rng.choice(SKUS),
                                                        category=rng.choice(CATEGORIES), status=rng.choice(["ok", "ok", "refunded"])))
            if campaigns:
                for n in range(rng.choice([0, 0, 1, 2])):
                    db.execute(insert(tables["delivery"]).values(
                        workspace_id=workspace_id, campaign_id=campaigns[rng.choice([1, 2])], contact_id=cid, channel="line",
                        address=f"U{cid}", key=f"d-{workspace_id}-{cid}-{n}", status=rng.choice(["sent", "sent", "failed", "queued", "cancelled"]),
                        attempts=0, created_at=NOW, sent_at=_at(rng)))
            if "click" in names:
                for _ in range(rng.choice([0, 0, 1, 2])):
                    campaign = rng.choice([1, 2])
                    db.execute(insert(tables["click"]).values(workspace_id=workspace_id, campaign_id=campaign, contact_id=cid,
                                                              link_id=links[campaign], delivery_id=0, clicked_at=_at(rng)))
        event_rows = []
        for cid in ids:
            for n in range(rng.choice([0, 1, 2, 4, 6])):
                props = {}
                if rng.random() < 0.7:
                    props["category"] = rng.choice(CATEGORIES + (5,))
                if rng.random() < 0.5:
                    props["price"] = rng.choice([100, 250, 999, "250"])
                if rng.random() < 0.2:
                    props["gift"] = rng.choice([True, False])
                event_rows.append({"workspace_id": workspace_id, "contact_id": cid, "name": rng.choice(EVENTS), "occurred_at": _at(rng),
                                   "received_at": NOW, "properties": props, "message_id": f"m-{workspace_id}-{cid}-{n}-{rng.random()}"})
    half = len(event_rows) // 2
    _events(database, event_rows[:half])
    if fold_at is not None:
        from tutti.reach.segments import eventcounts, orderfacts

        eventcounts.fold(database, workspace_id=workspace_id)
        orderfacts.fold(database, workspace_id=workspace_id)
    _events(database, event_rows[half:])
    change_orders(database, workspace_id, rng, ids)
    return {"contacts": ids, "tags": tag_ids, "campaigns": campaigns}


def change_orders(database: Database, workspace_id: int, rng: random.Random, ids: list[int]) -> None:
    """After the fold (when there is one): what happens to orders later, each through the path that really
    does it — new orders, status changes and refunds, an order recorded again for another person, a merge,
    an erasure — so the state's unfolded part is exercised too."""
    from tutti.audience import commerce, contacts, privacy
    from tutti.platform.audit import Actor

    with database.session() as db:
        live = [c for c in ids if db.get(Contact, c).merged_into_id is None and db.get(Contact, c).erased_at is None]
        for n in range(rng.choice([0, 1, 2])):  # new orders, written straight in (new ids: no one needs telling)
            oid = db.execute(insert(Order).values(
                workspace_id=workspace_id, contact_id=rng.choice(ids), external_id=f"late-{n}", placed_at=_at(rng),
                status=rng.choice(["completed", "paid", "cancelled"]), total=rng.choice([100, 800, 5000]), refunded_total=0,
            ).returning(Order.id)).scalar_one()
            db.execute(insert(OrderLine).values(workspace_id=workspace_id, order_id=oid, sku=rng.choice(SKUS),
                                                category=rng.choice(CATEGORIES), status="ok"))
        existing = [e for (e,) in db.execute(select(Order.external_id).where(Order.workspace_id == workspace_id).order_by(Order.id))]
        for external_id in rng.sample(existing, min(len(existing), rng.choice([0, 1, 2]))):
            commerce.set_order_status(db, workspace_id=workspace_id, external_id=external_id,
                                      status=rng.choice(["refunded", "cancelled", "partially_refunded", "completed"]))
        if existing and live and rng.random() < 0.5:
            commerce.record_orders(db, workspace_id=workspace_id, orders=[commerce.NewOrder(
                external_id=rng.choice(existing), contact_id=rng.choice(live), placed_at=_at(rng), total=rng.choice([300, 4000]),
                lines=[commerce.NewOrderLine(sku=rng.choice(SKUS), category=rng.choice(CATEGORIES))])])
        if len(live) > 3 and rng.random() < 0.4:
            contacts.merge(db, workspace_id=workspace_id, winner_id=live[0], loser_id=live[1], reason="test", actor=Actor.system())
        if len(live) > 3 and rng.random() < 0.4:
            privacy.erase_contact(db, workspace_id=workspace_id, contact_id=live[2], actor=Actor.system())


def _events(database: Database, rows: list[dict]) -> None:
    if rows:
        with database.session() as db:
            db.execute(insert(Event), rows)
