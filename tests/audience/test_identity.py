"""Identity resolution and merges: every record lands on the one profile of its person."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tutti.audience import consent, contacts, events, tags
from tutti.audience.models import Contact, ContactMerge, Event, Identity, Order
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput

ACTOR = Actor.cli()
LINE_A = "U" + "a" * 32
LINE_B = "U" + "b" * 32


def upsert(db, workspace_id, **identities):
    return contacts.upsert(db, workspace_id=workspace_id, identities=identities, actor=ACTOR)


def test_same_identity_written_differently_lands_on_one_contact(database, workspace_id):
    with database.session() as db:
        first, r1 = upsert(db, workspace_id, phone="0912-345-678", email="Mei@Example.com")
        second, r2 = upsert(db, workspace_id, phone="+886 912 345 678")
        third, r3 = upsert(db, workspace_id, email=" mei@example.COM ")
        fourth, r4 = upsert(db, workspace_id, phone="０９１２３４５６７８")
    assert r1.created and not (r2.created or r3.created or r4.created)
    assert first.id == second.id == third.id == fourth.id
    with database.session() as db:
        values = set(db.execute(select(Identity.kind, Identity.value).where(Identity.contact_id == first.id)))
    assert values == {("phone", "+886912345678"), ("email", "mei@example.com")}


def test_record_sharing_identities_of_two_contacts_joins_them(database, workspace_id):
    with database.session() as db:
        anon, _ = upsert(db, workspace_id, anonymous_id="anon-1")
        known, _ = upsert(db, workspace_id, external_id="C001", email="a@example.com")
        tags.apply(db, workspace_id=workspace_id, contact_ids=[anon.id], tag="browsed")
        events.record(db, workspace_id=workspace_id, events=[events.NewEvent(contact_id=anon.id, name="Product Viewed", occurred_at=utcnow(), properties={})])
        joined, resolution = upsert(db, workspace_id, external_id="C001", anonymous_id="anon-1")
    assert joined.id == known.id and resolution.merged == [anon.id]
    with database.session() as db:
        assert db.get(Contact, anon.id).merged_into_id == known.id
        assert db.scalar(select(func.count()).select_from(Event).where(Event.contact_id == known.id)) == 1
        assert [t["name"] for t in tags.tags_of(db, contact_id=known.id)] == ["browsed"]
        assert db.scalar(select(ContactMerge.reason).where(ContactMerge.loser_id == anon.id)) == "shared_identity"
        # the old id still finds the person
        assert contacts.live_contact(db, workspace_id=workspace_id, contact_id=anon.id).id == known.id


def test_two_people_with_different_customer_ids_are_never_joined_automatically(database, workspace_id):
    with database.session() as db:
        mum, _ = upsert(db, workspace_id, external_id="C1", email="family@example.com")
        son, resolution = upsert(db, workspace_id, external_id="C2", email="family@example.com")
    assert son.id != mum.id
    assert resolution.created and ("email", "family@example.com") in resolution.skipped
    with database.session() as db:
        assert db.scalar(select(Identity.contact_id).where(Identity.value == "family@example.com")) == mum.id


def test_explicit_merge_keeps_everything_and_latest_consent_wins(database, workspace_id):
    earlier = utcnow() - timedelta(days=3)
    with database.session() as db:
        a, _ = upsert(db, workspace_id, line_uid=LINE_A)
        b, _ = upsert(db, workspace_id, email="b@example.com", phone="0922333444")
        contacts.update_contact(db, workspace_id=workspace_id, contact_id=a.id, profile={"name": "王小明"}, actor=ACTOR)
        contacts.update_contact(db, workspace_id=workspace_id, contact_id=b.id, profile={"name": "Ming", "city": "台北市"}, attributes={"tier": "gold"}, actor=ACTOR)
        consent.set_consent(db, workspace_id=workspace_id, contact_id=a.id, channel="email", status="subscribed", source="import", at=earlier)
        consent.set_consent(db, workspace_id=workspace_id, contact_id=b.id, channel="email", status="unsubscribed", source="link")
        tags.apply(db, workspace_id=workspace_id, contact_ids=[a.id, b.id], tag="vip")
        tags.apply(db, workspace_id=workspace_id, contact_ids=[b.id], tag="newsletter")
        db.add(Order(workspace_id=workspace_id, contact_id=b.id, external_id="O-1", total=1200, placed_at=utcnow()))
    with database.session() as db:
        contacts.merge(db, workspace_id=workspace_id, winner_id=a.id, loser_id=b.id, reason="manual", actor=ACTOR)
    with database.session() as db:
        winner = db.get(Contact, a.id)
        assert winner.name == "王小明" and winner.city == "台北市" and winner.attributes == {"tier": "gold"}
        kinds = {k for k, in db.execute(select(Identity.kind).where(Identity.contact_id == a.id))}
        assert kinds == {"line_uid", "email", "phone"}
        assert [t["name"] for t in tags.tags_of(db, contact_id=a.id)] == ["newsletter", "vip"]
        assert consent.consents_of(db, contact_id=a.id)["email"]["status"] == "unsubscribed"
        assert db.scalar(select(Order.contact_id).where(Order.external_id == "O-1")) == a.id


def test_merge_into_itself_and_conflicting_identity_are_refused(database, workspace_id):
    with database.session() as db:
        a, _ = upsert(db, workspace_id, line_uid=LINE_A)
        b, _ = upsert(db, workspace_id, line_uid=LINE_B)
    with pytest.raises(InvalidInput), database.session() as db:
        contacts.merge(db, workspace_id=workspace_id, winner_id=a.id, loser_id=a.id, reason="manual", actor=ACTOR)
    with pytest.raises(Conflict), database.session() as db:
        contacts.update_contact(db, workspace_id=workspace_id, contact_id=a.id, add_identities={"line_uid": LINE_B}, actor=ACTOR)


def test_alias_joins_anonymous_history_to_the_known_person(database, workspace_id):
    with database.session() as db:
        anon, _ = upsert(db, workspace_id, anonymous_id="visitor-9")
        known, _ = upsert(db, workspace_id, external_id="C9")
        result = contacts.alias(db, workspace_id=workspace_id, previous=[("anonymous_id", "visitor-9")], current=[("external_id", "C9")], actor=ACTOR)
    assert result.contact_id == known.id
    with database.session() as db:
        assert db.get(Contact, anon.id).merged_into_id == known.id


def test_bad_identities_are_named(database, workspace_id):
    with pytest.raises(InvalidInput, match="phone"), database.session() as db:
        upsert(db, workspace_id, phone="12")
    with pytest.raises(InvalidInput, match="LINE user id"), database.session() as db:
        upsert(db, workspace_id, line_uid="not-a-line-id")
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_identities_of_other_workspaces_are_other_people(database, make_workspace):
    ws_a, ws_b = make_workspace("A")[0], make_workspace("B")[0]
    with database.session() as db:
        a, _ = upsert(db, ws_a, email="same@example.com")
        b, resolution = upsert(db, ws_b, email="same@example.com")
    assert a.id != b.id and resolution.created


def test_search_by_identity_name_tag_and_attribute(database, workspace_id):
    with database.session() as db:
        a, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"phone": "0911222333"}, profile={"name": "陳美玲"}, attributes={"tier": "gold", "points": 120}, actor=ACTOR)
        b, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "lin@example.com"}, profile={"name": "林志明"}, attributes={"tier": "silver", "points": 5}, actor=ACTOR)
        tags.apply(db, workspace_id=workspace_id, contact_ids=[b.id], tag="vip")
    with database.session() as db:
        def ids(**kw):
            return [c.id for c in contacts.search(db, workspace_id=workspace_id, **kw).contacts]

        assert ids(q="0911-222-333") == [a.id]
        assert ids(q="美玲") == [a.id]
        assert ids(q="LIN@example.com") == [b.id]
        assert ids(tag="vip") == [b.id]
        assert ids(attribute={"tier": "gold"}) == [a.id]
        assert ids(attribute={"points": "5"}) == [b.id]
        page = contacts.search(db, workspace_id=workspace_id, limit=1)
        assert [c.id for c in page.contacts] == [b.id] and page.next_cursor == b.id
        assert ids(cursor=page.next_cursor) == [a.id]


def test_profile_and_timeline_show_everything_about_one_person(database, workspace_id):
    from tutti.audience import profiles

    with database.session() as db:
        contact, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "p@example.com"}, profile={"name": "張雅婷"}, attributes={"tier": "gold"}, actor=ACTOR)
        consent.set_consent(db, workspace_id=workspace_id, contact_id=contact.id, channel="email", status="subscribed", source="import", at=utcnow() - timedelta(days=2))
        tags.apply(db, workspace_id=workspace_id, contact_ids=[contact.id], tag="vip", at=utcnow() - timedelta(days=1))
        events.record(db, workspace_id=workspace_id, events=[events.NewEvent(contact_id=contact.id, name="Product Viewed", occurred_at=utcnow() - timedelta(hours=1), properties={"sku": "A1"})])
        db.add(Order(workspace_id=workspace_id, contact_id=contact.id, external_id="O-9", total=990, status="completed", placed_at=utcnow() - timedelta(hours=3)))
    with database.session() as db:
        view = profiles.profile(db, workspace_id=workspace_id, contact_id=contact.id)
        items = profiles.timeline(db, workspace_id=workspace_id, contact_id=contact.id).items
    assert view["name"] == "張雅婷" and view["orders"]["count"] == 1 and view["orders"]["revenue"] == 990
    assert view["consent"]["email"]["status"] == "subscribed" and [t["name"] for t in view["tags"]] == ["vip"]
    assert [item["type"] for item in items] == ["event", "order", "tag", "consent"]


def test_timeline_pages_never_skip_things_that_happened_at_the_same_instant(database, workspace_id):
    from tutti.audience import profiles

    instant = utcnow().replace(microsecond=0) - timedelta(days=1)
    with database.session() as db:
        contact, _ = upsert(db, workspace_id, email="same-time@example.com")
        events.record(db, workspace_id=workspace_id, events=[
            events.NewEvent(contact_id=contact.id, name=f"E{i}", occurred_at=instant - timedelta(hours=i // 3), properties={}) for i in range(10)
        ])
        for i in range(3):
            db.add(Order(workspace_id=workspace_id, contact_id=contact.id, external_id=f"O-{i}", total=1, placed_at=instant - timedelta(hours=i)))
    seen, before, pages = [], None, 0
    with database.session() as db:
        while True:
            page = profiles.timeline(db, workspace_id=workspace_id, contact_id=contact.id, limit=4, before=before)
            seen += [item["name"] for item in page.items]
            pages += 1
            if page.next_before is None:
                break
            before = page.next_before
        events_page = events.timeline(db, workspace_id=workspace_id, contact_id=contact.id, limit=2)
    assert sorted(seen) == sorted([f"E{i}" for i in range(10)] + ["O-0", "O-1", "O-2"]) and pages > 3
    # three events share the newest instant and the page holds two: all three come together, none is lost
    assert sorted(e.name for e in events_page.items) == ["E0", "E1", "E2"]


def test_recording_events_counts_only_new_message_ids(database, workspace_id):
    with database.session() as db:
        c, _ = upsert(db, workspace_id, email="x@example.com")
        rows = [events.NewEvent(contact_id=c.id, name="A", occurred_at=utcnow(), properties={}, message_id=f"m{i}") for i in range(3)]
        assert events.record(db, workspace_id=workspace_id, events=rows) == 3
        again = rows + [events.NewEvent(contact_id=c.id, name="A", occurred_at=utcnow(), properties={}, message_id="m9")]
        assert events.record(db, workspace_id=workspace_id, events=again) == 1


def test_number_attributes_beyond_exact_integers_are_stored_as_doubles(database, workspace_id):
    with database.session() as db:
        contact, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "n@example.com"},
                                     attributes={"points": 12, "huge": 123456789012345678901234567890, "big": 1e308}, actor=ACTOR)
    with database.session() as db:
        stored = db.get(Contact, contact.id).attributes
    assert stored["points"] == 12 and isinstance(stored["points"], int)
    assert stored["huge"] == float(123456789012345678901234567890) and stored["big"] == 1e308
