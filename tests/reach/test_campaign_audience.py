"""Taking a campaign's audience: consent and reachability, exclusions, merged contacts, the frequency
cap, the channel fallback order, and the hold-out and variant split (deterministic, as the hash says)."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from sqlalchemy import select, update

from tests.reach.campaign_world import (
    ACTOR,
    TEXT,
    add_contacts,
    connect_line,
    connect_sms_and_email,
    make_campaign,
)
from tutti.audience import contacts
from tutti.platform.db import utcnow
from tutti.reach.campaigns import audience, service
from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery, Variant


def _take(database, workspace_id, campaign_id) -> Campaign:
    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        campaign.status = "sending"
        service.take_audience(db, campaign=campaign)
        return campaign


def test_channel_fallback_consent_merges_and_counts(database, workspace_id):
    connect_line(database, workspace_id, base_url="http://127.0.0.1:9")
    channel_ids = connect_sms_and_email(database, workspace_id)
    on_line = add_contacts(database, workspace_id, 3)
    blocked_with_sms = add_contacts(database, workspace_id, 2, line_status="blocked", phone=True, sms_status="subscribed", prefix="b")
    email_only = add_contacts(database, workspace_id, 2, line=False, email=True, email_status="subscribed", prefix="e")
    unsubscribed = add_contacts(database, workspace_id, 2, line=False, email=True, email_status="unsubscribed", prefix="u")
    phone_no_consent = add_contacts(database, workspace_id, 1, line=False, phone=True, prefix="p")
    merged = add_contacts(database, workspace_id, 1, prefix="m")
    with database.session() as db:
        contacts.merge(db, workspace_id=workspace_id, winner_id=on_line[0], loser_id=merged[0], reason="manual", actor=ACTOR)
    everyone = on_line + blocked_with_sms + email_only + unsubscribed + phone_no_consent + merged
    campaign_id = make_campaign(database, workspace_id, everyone, channels=["line", "sms", "email"], variants=[
        {"name": "A", "split_percent": 100, "content": {"line": TEXT, "sms": {"text": "週年慶"},
                                                        "email": {"subject": "週年慶", "html": "<p>週年慶</p>"}}}])
    campaign = _take(database, workspace_id, campaign_id)

    assert campaign.recipients_count == 7 and campaign.deliveries_count == 7 and campaign.holdout_count == 0
    assert campaign.skipped == {"merged_or_erased": 1, "excluded": 0, "unreachable": 3, "frequency_capped": 0}
    with database.read_session() as db:
        rows = {d.contact_id: d for d in db.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}
        assert {rows[c].channel for c in on_line} == {"line"}
        assert {rows[c].channel for c in blocked_with_sms} == {"sms"}
        assert {rows[c].channel_id for c in blocked_with_sms} == {channel_ids["sms"]}
        assert {rows[c].channel for c in email_only} == {"email"}
        assert rows[email_only[0]].address == f"e{email_only[0]}@example.com"
        assert rows[blocked_with_sms[0]].address.startswith("+8869")
        assert all(d.status == "queued" and d.attempts == 0 for d in rows.values())
        # the key is deterministic: the same campaign and contact always give the same key
        assert rows[on_line[1]].key == audience.delivery_key(campaign.key_namespace, on_line[1])
        assert len({d.key for d in rows.values()}) == 7


def test_holdout_and_variants_follow_the_hash(database, workspace_id):
    connect_line(database, workspace_id, base_url="http://127.0.0.1:9")
    ids = add_contacts(database, workspace_id, 2000, names=False)
    campaign_id = make_campaign(database, workspace_id, ids, holdout_percent=10, variants=[
        {"name": "A", "split_percent": 30, "content": {"line": TEXT}},
        {"name": "B", "split_percent": 70, "content": {"line": {"messages": [{"type": "text", "text": "B"}]}}}])
    campaign = _take(database, workspace_id, campaign_id)
    salt_holdout, salt_variant = audience.salts(campaign.key_namespace)
    with database.read_session() as db:
        variants = list(db.scalars(select(Variant.id).where(Variant.campaign_id == campaign_id).order_by(Variant.position)))
        rows = {r.contact_id: r for r in db.scalars(select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id))}
        deliveries = set(db.scalars(select(Delivery.contact_id).where(Delivery.campaign_id == campaign_id)))
    for contact_id in ids:
        held = audience.bucket(contact_id, audience.HOLDOUT_MULTIPLIER, salt_holdout) < 1000
        split = audience.bucket(contact_id, audience.VARIANT_MULTIPLIER, salt_variant)
        assert rows[contact_id].is_holdout is held
        assert rows[contact_id].variant_id == (None if held else variants[0] if split < 3000 else variants[1])
        assert (contact_id in deliveries) is not held
    held_out = sum(r.is_holdout for r in rows.values())
    assert 150 <= held_out <= 250 and campaign.holdout_count == held_out
    in_a = sum(r.variant_id == variants[0] for r in rows.values())
    assert 0.25 < in_a / (2000 - held_out) < 0.35


def test_frequency_cap_and_exclusions(database, workspace_id):
    connect_line(database, workspace_id, base_url="http://127.0.0.1:9")
    ids = add_contacts(database, workspace_id, 6)
    earlier = make_campaign(database, workspace_id, ids[:4], name="earlier")
    _take(database, workspace_id, earlier)
    with database.session() as db:  # two of the four were messaged twice this week already
        db.execute(update(Delivery).where(Delivery.campaign_id == earlier).values(status="sent"))
    second = make_campaign(database, workspace_id, ids[:2], name="second")
    _take(database, workspace_id, second)
    with database.session() as db:
        db.execute(update(Delivery).where(Delivery.campaign_id == second).values(status="sent"))
    old = make_campaign(database, workspace_id, ids[4:], name="a month ago")
    _take(database, workspace_id, old)
    with database.session() as db:
        db.execute(update(Delivery).where(Delivery.campaign_id == old).values(status="sent", created_at=utcnow() - timedelta(days=30)))
    capped = make_campaign(database, workspace_id, ids, frequency_cap={"max": 2, "days": 7})
    campaign = _take(database, workspace_id, capped)
    assert campaign.skipped["frequency_capped"] == 2 and campaign.recipients_count == 4
    with database.read_session() as db:
        got = set(db.scalars(select(Delivery.contact_id).where(Delivery.campaign_id == capped)))
        assert got == set(ids[2:])
    transactional = make_campaign(database, workspace_id, ids, frequency_cap={"max": 2, "days": 7}, kind="transactional")
    assert _take(database, workspace_id, transactional).recipients_count == 6  # transactional messages are not capped


def test_deliveries_are_numbered_so_that_alike_payloads_are_consecutive(database, workspace_id):
    """A message made of few-valued profile fields (city): each variant's recipients of one city get
    consecutive delivery ids, so a multicast's members are one id range. A message with a name (every
    payload differs) keeps the contacts' order."""
    from tutti.audience.models import Contact

    connect_line(database, workspace_id, base_url="http://127.0.0.1:9")
    ids = add_contacts(database, workspace_id, 24)
    cities = ["台北市", "高雄市", None, "台中市"]
    with database.session() as db:
        for n, contact_id in enumerate(ids):
            db.execute(update(Contact).where(Contact.id == contact_id).values(city=cities[n % 4]))
    by_city = {"line": {"messages": [{"type": "text", "text": "{{ city | default('台灣') }} 限定"}]}}
    by_name = {"line": {"messages": [{"type": "text", "text": "{{ name }} 您好"}]}}
    grouped = make_campaign(database, workspace_id, ids, variants=[
        {"name": "A", "split_percent": 50, "content": by_city}, {"name": "B", "split_percent": 50, "content": by_city}])
    named = make_campaign(database, workspace_id, ids, variants=[{"name": "A", "split_percent": 100, "content": by_name}])
    _take(database, workspace_id, grouped)
    _take(database, workspace_id, named)
    with database.read_session() as db:
        city = dict(db.execute(select(Contact.id, Contact.city).where(Contact.id.in_(ids))).all())
        rows = db.execute(select(Delivery.variant_id, Delivery.contact_id).where(Delivery.campaign_id == grouped)
                          .order_by(Delivery.id)).all()
        runs = [(variant, city[contact]) for variant, contact in rows]
        assert len(rows) == 24
        # each (variant, city) is one run of consecutive ids: as many runs as distinct pairs
        changes = sum(1 for a, b in pairwise(runs) if a != b)
        assert changes + 1 == len(set(runs)) and len(set(runs)) >= 6
        in_order = list(db.scalars(select(Delivery.contact_id).where(Delivery.campaign_id == named).order_by(Delivery.id)))
        assert in_order == sorted(ids)


def test_the_snapshot_stores_the_profile_values_the_message_is_made_of(database, workspace_id):
    """A message of few-valued profile fields (city): each delivery carries the values it is rendered from,
    as the snapshot read them; an A/B pair of such messages too. A message with a name stores none."""
    import orjson

    from tutti.audience.models import Contact

    connect_line(database, workspace_id, base_url="http://127.0.0.1:9")
    ids = add_contacts(database, workspace_id, 8)
    cities = ["台北市", None, "台中市", ""]
    with database.session() as db:
        for n, contact_id in enumerate(ids):
            db.execute(update(Contact).where(Contact.id == contact_id).values(city=cities[n % 4], gender="f" if n % 2 else None))
    by_city = {"line": {"messages": [{"type": "text", "text": "{{ city | default('台灣') }} 限定"}]}}
    by_gender = {"line": {"messages": [{"type": "text", "text": "{{ gender | default('?') }} {{ city | default('台灣') }}"}]}}
    grouped = make_campaign(database, workspace_id, ids, variants=[
        {"name": "A", "split_percent": 50, "content": by_city}, {"name": "B", "split_percent": 50, "content": by_gender}])
    named = make_campaign(database, workspace_id, ids, variants=[
        {"name": "A", "split_percent": 100, "content": {"line": {"messages": [{"type": "text", "text": "{{ name }}"}]}}}])
    _take(database, workspace_id, grouped)
    _take(database, workspace_id, named)
    with database.read_session() as db:
        stored = dict(db.execute(select(Delivery.contact_id, Delivery.profile_values).where(Delivery.campaign_id == grouped)).all())
        assert sorted(stored) == sorted(ids)
        for n, contact_id in enumerate(ids):
            assert orjson.loads(stored[contact_id]) == {"city": cities[n % 4], "gender": "f" if n % 2 else None}
        assert set(db.scalars(select(Delivery.profile_values).where(Delivery.campaign_id == named))) == {None}
