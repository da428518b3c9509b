"""Privacy: export everything about a person, erase what identifies them and keep anonymous numbers."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import bearer
from tutti.audience import commerce, consent, contacts, events, privacy, tags
from tutti.audience.models import Contact, ContactTag, Event, Identity, Order, OrderLine, TagApplication
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import NotFound
from tutti.platform.models import AuditLog

ACTOR = Actor.cli()
SECRETS = ("林美玲", "mei.lin@example.com", "+886912345678", "台北市", "1990-05-17", "Xinyi Rd", "203.0.113.9", "gold-secret")


def build_person(db, workspace_id):
    """A contact with every kind of data, plus an anonymous visitor merged into them."""
    visitor, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"anonymous_id": "web-77"}, actor=ACTOR)
    person, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "Mei.Lin@example.com", "phone": "0912345678"},
                                profile={"name": "林美玲", "birthday": "1990-05-17", "city": "台北市", "gender": "female"},
                                attributes={"tier": "gold-secret", "points": 1200}, actor=ACTOR)
    contacts.merge(db, workspace_id=workspace_id, winner_id=person.id, loser_id=visitor.id, reason="manual", actor=ACTOR)
    tags.apply(db, workspace_id=workspace_id, contact_ids=[person.id], tag="vip")
    consent.set_consent(db, workspace_id=workspace_id, contact_id=person.id, channel="email", status="subscribed", source="form")
    consent.set_consent(db, workspace_id=workspace_id, contact_id=person.id, channel="email", status="unsubscribed", source="link")
    at = utcnow() - timedelta(days=2)
    events.record(db, workspace_id=workspace_id, events=[
        events.NewEvent(contact_id=person.id, name="Checkout Started", occurred_at=at, properties={"address": "Xinyi Rd 7"},
                        context={"ip": "203.0.113.9"}, message_id="e1"),
        events.NewEvent(contact_id=person.id, name="Page Viewed", occurred_at=at + timedelta(hours=1), properties={}, message_id="e2"),
    ])
    commerce.record_orders(db, workspace_id=workspace_id, orders=[commerce.NewOrder(
        contact_id=person.id, external_id="SO-9", placed_at=at, total=1330.0, properties={"ship_to": "Xinyi Rd 7, 台北市"},
        lines=[commerce.NewOrderLine(sku="TEA-1", name="烏龍茶", quantity=3, unit_price=443.33)])])
    return person.id, visitor.id


def test_export_holds_everything_about_the_person(database, workspace_id):
    with database.session() as db:
        person_id, visitor_id = build_person(db, workspace_id)
    with database.session() as db:
        data = privacy.export_contact(db, workspace_id=workspace_id, contact_id=visitor_id, actor=ACTOR)  # an old id works too
    assert data["contact_id"] == person_id
    json.dumps(data, ensure_ascii=False)  # plain JSON, no datetimes or decimals left
    assert data["profile"]["name"] == "林美玲" and data["profile"]["birthday"] == "1990-05-17"
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("email", "mei.lin@example.com"), ("phone", "+886912345678"), ("anonymous_id", "web-77")}
    assert data["attributes"] == {"tier": "gold-secret", "points": 1200}
    assert data["consent"]["email"]["status"] == "unsubscribed"
    assert [c["status"] for c in data["consent_history"]] == ["unsubscribed", "subscribed"]
    assert [t["name"] for t in data["tags"]] == ["vip"] and data["tag_applications"][0]["tag"] == "vip"
    assert {e["name"] for e in data["events"]} == {"Checkout Started", "Page Viewed"}
    assert data["events"][0]["context"] == {"ip": "203.0.113.9"}
    assert data["orders"][0]["external_id"] == "SO-9" and data["orders"][0]["lines"][0]["quantity"] == 3
    assert data["merges"] == [{"winner_id": person_id, "loser_id": visitor_id, "reason": "manual", "at": data["merges"][0]["at"]}]
    with database.session() as db:
        entry = db.scalar(select(AuditLog).where(AuditLog.workspace_id == workspace_id, AuditLog.action == "contact.export"))
    assert entry.target_id == str(person_id) and entry.actor_kind == "cli"


def test_erase_removes_identifying_data_and_keeps_anonymous_aggregates(database, workspace_id):
    with database.session() as db:
        person_id, visitor_id = build_person(db, workspace_id)
    with database.session() as db:
        result = privacy.erase_contact(db, workspace_id=workspace_id, contact_id=person_id, actor=ACTOR)
    assert result["removed"]["identities"] == 3 and result["removed"]["events_scrubbed"] == 2 and result["removed"]["orders_scrubbed"] == 1

    with database.session() as db:
        contact = db.get(Contact, person_id)
        assert contact.erased_at is not None
        assert all(getattr(contact, f) is None for f in ("name", "birthday", "city", "gender", "locale", "timezone"))
        assert contact.attributes == {}
        assert db.scalar(select(func.count()).select_from(Identity).where(Identity.contact_id.in_([person_id, visitor_id]))) == 0
        assert db.scalar(select(func.count()).select_from(ContactTag).where(ContactTag.contact_id == person_id)) == 0
        # anonymous facts stay: events by name and time, orders with amounts, dates and products
        kept = db.execute(select(Event.name, Event.occurred_at, Event.properties, Event.context).where(Event.contact_id == person_id)).all()
        assert sorted(e.name for e in kept) == ["Checkout Started", "Page Viewed"] and all(e.properties == {} and e.context is None for e in kept)
        order = db.scalar(select(Order).where(Order.contact_id == person_id))
        assert order.total == 1330.0 and order.placed_at is not None and order.properties == {}
        assert db.scalar(select(OrderLine.sku).where(OrderLine.order_id == order.id)) == "TEA-1"
        assert db.scalar(select(func.count()).select_from(TagApplication).where(TagApplication.contact_id == person_id)) == 1
        # nothing of the person is left anywhere in this contact's rows, nor in the audit log
        audit_rows = db.scalars(select(AuditLog.detail).where(AuditLog.workspace_id == workspace_id, AuditLog.action == "contact.erase")).all()
        assert len(audit_rows) == 1
        leftovers = json.dumps([privacy._plain({c.name: getattr(row, c.name) for c in row.__table__.columns})
                                for row in (contact, order, *db.scalars(select(Event).where(Event.contact_id == person_id)))]
                               + list(audit_rows), ensure_ascii=False)
        for secret in SECRETS:
            assert secret not in leftovers, secret

    with database.session() as db:
        with pytest.raises(NotFound):
            contacts.live_contact(db, workspace_id=workspace_id, contact_id=person_id)
        with pytest.raises(NotFound):
            privacy.export_contact(db, workspace_id=workspace_id, contact_id=visitor_id, actor=ACTOR)
        # the old identities no longer find the person: the same e-mail is a new contact now
        again, resolution = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "mei.lin@example.com"}, actor=ACTOR)
        assert resolution.created and again.id not in (person_id, visitor_id)
        assert contacts.search(db, workspace_id=workspace_id, q="林美玲").contacts == []


def test_privacy_routes_need_privacy_manage_and_are_audited(client, make_workspace, database):
    workspace_id, admin_key, _ = make_workspace("Shop")
    with database.session() as db:
        person_id, _ = build_person(db, workspace_id)
    from tutti.platform import workspaces

    with database.session() as db:
        marketer = workspaces.create_api_key(db, workspace_id=workspace_id, name="m", role="marketer", actor=ACTOR).key
    assert client.get(f"/api/v1/contacts/{person_id}/export", headers=bearer(marketer)).status_code == 403
    assert client.post(f"/api/v1/contacts/{person_id}/erase", headers=bearer(marketer)).status_code == 403

    exported = client.get(f"/api/v1/contacts/{person_id}/export", headers=bearer(admin_key))
    assert exported.status_code == 200 and exported.json()["profile"]["name"] == "林美玲"
    erased = client.post(f"/api/v1/contacts/{person_id}/erase", headers=bearer(admin_key))
    assert erased.status_code == 200 and erased.json()["contact_id"] == person_id
    assert client.post(f"/api/v1/contacts/{person_id}/erase", headers=bearer(admin_key)).status_code == 404
    assert client.get(f"/api/v1/contacts/{person_id}/export", headers=bearer(admin_key)).status_code == 404
    log = client.get("/api/v1/audit-log", headers=bearer(admin_key)).json()["items"]
    actions = [entry["action"] for entry in log if entry["target_id"] == str(person_id)]
    assert actions[:2] == ["contact.erase", "contact.export"]
    assert all(secret not in json.dumps(log, ensure_ascii=False) for secret in SECRETS)
