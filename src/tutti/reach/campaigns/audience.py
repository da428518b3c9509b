"""Taking a campaign's audience, set-based, in the caller's transaction: who receives it, on which channel,
in which variant, and who is held out; then one queued delivery row per recipient.

Members of the audience segments (refreshed first) and any explicit contacts, minus the exclusion
segments, minus merged or erased contacts, minus those reachable on none of the campaign's channels
(reachable = the channel's identity present and consent `subscribed`; unsubscribed, blocked and bounced
never receive), minus those over the frequency cap. The hold-out and the variants are chosen by a
deterministic hash of (campaign, contact), so taking the same audience again gives the same split and
the split can be re-derived in Python (`bucket`) to check it. No per-contact Python loop: each step is
one INSERT … SELECT or one grouped SELECT.

Deliveries are numbered in the order their messages group: by variant, channel and the profile fields the
message is made of (a message personalised by city: each city's recipients get consecutive ids), so a
multicast's members are one range of ids and its outcome write touches a few pages, not 500. Each
delivery also keeps those fields' values as read here (`delivery.profile_values`), which the sender renders
from: such a message is personalised as of this snapshot, like the choice of who receives it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    table,
    union,
)
from sqlalchemy.orm import Session

from tutti.audience.models import Consent, Contact, Identity
from tutti.platform.db import utcnow
from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery, Variant

# The segments helper's materialised membership, by the contract's table and column names.
SEGMENT_MEMBER = table("segment_member", column("workspace_id"), column("segment_id"), column("contact_id"))

IDENTITY_OF = {"line": "line_uid", "sms": "phone", "email": "email"}
REASONS = ("merged_or_erased", "excluded", "unreachable", "frequency_capped")

# Multiplicative (Fibonacci) hashing: ((contact × odd constant + salt) mod 2³²) scaled to 0…9,999 basis
# points. Integer arithmetic only, so SQLite and PostgreSQL agree bit for bit; two different constants
# make the hold-out and the variant split independent of each other, and the salt (from the campaign's
# random namespace) makes every campaign hold out different people.
HOLDOUT_MULTIPLIER = 2654435761
VARIANT_MULTIPLIER = 2246822519
_MODULUS = 2**32
SCALE = 10_000


def bucket(contact_id: int, multiplier: int, salt: int) -> int:
    """The same bucket the SQL computes, 0 … 9,999."""
    return ((contact_id * multiplier + salt) % _MODULUS) * SCALE // _MODULUS


def salts(key_namespace: str) -> tuple[int, int]:
    return int(key_namespace[:8], 16), int(key_namespace[8:16], 16)


def delivery_key(key_namespace: str, contact_id: int) -> str:
    """The delivery's idempotency key: a UUID-shaped string made of the campaign's random namespace and the
    contact id, so it is deterministic (the same row always gets the same key) and unique everywhere."""
    return _key_prefix(key_namespace) + f"{contact_id:012x}"


def _key_prefix(ns: str) -> str:
    return f"{ns[0:8]}-{ns[8:12]}-{ns[12:16]}-{ns[16:20]}-"


def _bucket_sql(contact_id, multiplier: int, salt: int):
    product = contact_id * literal(multiplier, BigInteger) + literal(salt, BigInteger)
    return (product % literal(_MODULUS, BigInteger)) * literal(SCALE, BigInteger) // literal(_MODULUS, BigInteger)


def _hex12(db: Session, value):
    if db.get_bind().dialect.name == "postgresql":
        return func.lpad(func.to_hex(value), 12, "0")
    return func.printf("%012x", value)


def _reachable(kind: str):
    return and_(
        exists().where(Identity.contact_id == Contact.id, Identity.kind == IDENTITY_OF[kind]),
        exists().where(Consent.contact_id == Contact.id, Consent.channel == kind, Consent.status == "subscribed"),
    )


def _segment_members(wid: int, segment_ids: list[int], live_rules: dict | None):
    """Members of these segments: as materialised, or (live counts) as their rules say right now."""
    if live_rules is None:
        return [select(SEGMENT_MEMBER.c.contact_id).where(SEGMENT_MEMBER.c.workspace_id == wid,
                                                           SEGMENT_MEMBER.c.segment_id.in_(segment_ids))]
    from tutti.reach.segments import service as segments

    return [segments.members_select(workspace_id=wid, rules=live_rules[i]) for i in segment_ids if i in live_rules]


def _members(campaign: Campaign, live_rules: dict | None = None):
    audience = campaign.audience or {}
    wid = campaign.workspace_id
    sources = []
    if audience.get("segment_ids"):
        sources.extend(_segment_members(wid, audience["segment_ids"], live_rules))
    if audience.get("contact_ids"):
        sources.append(select(Contact.id).where(Contact.workspace_id == wid, Contact.id.in_(audience["contact_ids"])))
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else union(*sources)


def _capped(campaign: Campaign):
    cap = campaign.frequency_cap or {}
    if campaign.kind != "marketing" or not cap.get("max"):
        return literal(False)
    since = utcnow() - timedelta(days=int(cap.get("days") or 7))
    heavy = (select(Delivery.contact_id).join(Campaign, Campaign.id == Delivery.campaign_id)
             .where(Delivery.workspace_id == campaign.workspace_id, Delivery.created_at >= since,
                    Delivery.status.in_(("queued", "sending", "sent")), Campaign.kind == "marketing",
                    Delivery.campaign_id != campaign.id)
             .group_by(Delivery.contact_id).having(func.count() >= int(cap["max"])))
    return Contact.id.in_(heavy)


def candidates(campaign: Campaign, kinds: list[str], *, live_rules: dict | None = None):
    """Every member of the audience with the channel it would get and the reason it is left out (or 'ok').
    `live_rules` ({segment id: rules}) evaluates the segments now instead of reading their membership."""
    members = _members(campaign, live_rules)
    if members is None:
        return None
    wid = campaign.workspace_id
    excluded_ids = (campaign.audience or {}).get("exclude_segment_ids") or []
    excluded_sources = _segment_members(wid, excluded_ids, live_rules) if excluded_ids else []
    excluded = Contact.id.in_(union(*excluded_sources) if len(excluded_sources) > 1 else excluded_sources[0]) \
        if excluded_sources else literal(False)
    gone = Contact.merged_into_id.is_not(None) | Contact.erased_at.is_not(None)
    channel = case(*[(_reachable(kind), literal(kind)) for kind in kinds], else_=literal(None, String)) if kinds else literal(None, String)
    inner = (select(Contact.id.label("contact_id"), channel.label("channel"), gone.label("gone"), excluded.label("excluded"),
                    _capped(campaign).label("capped"))
             .where(Contact.workspace_id == wid, Contact.id.in_(members))).subquery("audience")
    reason = case((inner.c.gone, "merged_or_erased"), (inner.c.excluded, "excluded"), (inner.c.channel.is_(None), "unreachable"),
                  (inner.c.capped, "frequency_capped"), else_="ok")
    return select(inner.c.contact_id, inner.c.channel, reason.label("reason")).subquery("candidate")


# profile fields with few distinct values: recipients alike in them share a payload, and a multicast
GROUPING_FIELDS = ("city", "gender", "locale", "timezone")


def grouping_fields(db: Session, campaign: Campaign, variants: list[Variant], kinds: list[str]) -> list[str]:
    """The contact fields to number deliveries by so that recipients who get the same payload are
    consecutive: the profile fields the campaign's messages are made of, when those are all few-valued ones
    (a name or a tracked link makes every payload different, and ordering by it would buy nothing)."""
    from tutti.reach.campaigns import content

    variables: set[str] = set()
    for variant in variants:
        for kind in kinds:
            if not content.content_for(db, campaign=campaign, variant=variant, kind=kind):
                continue  # not sent on this channel
            try:
                message = content.prepare(db, campaign=campaign, variant=variant, kind=kind)
            except Exception:  # noqa: BLE001 - content the send will refuse: it reports it, the order is moot
                return []
            if message.per_recipient:
                return []
            variables.update(message.variables)
    if not variables or not variables <= set(GROUPING_FIELDS):
        return []
    return sorted(variables)


def _profile_values(db: Session, fields: list[str]):
    """The grouping fields' values as one JSON object text per delivery (delivery.profile_values): what the
    sender renders from. Read here, where the contact row is joined anyway for the order, they cost the
    send nothing; read at send time they were a second lookup per recipient, in an order (by city) that
    walks the whole contact table once per city. NULL without grouping fields."""
    if not fields:
        return literal(None, Text)
    # the names come from GROUPING_FIELDS, never from user input: SQL text is safe and needs no bind type
    pairs = [part for f in fields for part in (literal_column(f"'{f}'"), getattr(Contact, f))]
    if db.get_bind().dialect.name == "postgresql":
        return cast(func.json_build_object(*pairs), Text)
    return func.json_object(*pairs)


def take(db: Session, *, campaign: Campaign, channel_ids: dict[str, int]) -> dict:
    """Write the recipients and their queued deliveries; returns the counts. `channel_ids` names the
    provider account per channel kind; kinds without one are not used."""
    kinds = [kind for kind in campaign.channels if kind in channel_ids]
    variants = list(db.scalars(select(Variant).where(Variant.campaign_id == campaign.id).order_by(Variant.position, Variant.id)))
    cand = candidates(campaign, kinds)
    skipped = {reason: 0 for reason in REASONS}
    if cand is None or not variants:
        return {"recipients": 0, "holdout": 0, "deliveries": 0, "skipped": skipped}
    for reason, count in db.execute(select(cand.c.reason, func.count()).group_by(cand.c.reason)):
        if reason != "ok":
            skipped[reason] = count

    salt_holdout, salt_variant = salts(campaign.key_namespace)
    held = _bucket_sql(cand.c.contact_id, HOLDOUT_MULTIPLIER, salt_holdout) < literal(round(campaign.holdout_percent * 100))
    split = _bucket_sql(cand.c.contact_id, VARIANT_MULTIPLIER, salt_variant)
    thresholds, total = [], 0.0
    for variant in variants[:-1]:
        total += variant.split_percent
        thresholds.append((split < literal(round(total * 100)), literal(variant.id, BigInteger)))
    chosen = case(*thresholds, else_=literal(variants[-1].id, BigInteger)) if thresholds else literal(variants[-1].id, BigInteger)
    variant_id = case((held, literal(None, BigInteger)), else_=chosen)
    db.execute(insert(CampaignRecipient.__table__).from_select(
        ["campaign_id", "contact_id", "workspace_id", "variant_id", "is_holdout", "channel"],
        select(literal(campaign.id, BigInteger), cand.c.contact_id, literal(campaign.workspace_id, BigInteger), variant_id,
               held, cand.c.channel).where(cand.c.reason == "ok")))

    r = CampaignRecipient.__table__.alias("r")
    kind_of = case(*[(r.c.channel == kind, IDENTITY_OF[kind]) for kind in IDENTITY_OF], else_="email")
    # the addresses joined as one grouped set (a hash join), not looked up per recipient: at a million
    # recipients a correlated subquery is a million index probes
    addresses = (select(Identity.contact_id, Identity.kind, func.min(Identity.value).label("value"))
                 .where(Identity.workspace_id == campaign.workspace_id, Identity.kind.in_([IDENTITY_OF[k] for k in kinds]))
                 .group_by(Identity.contact_id, Identity.kind).subquery("address"))
    address = addresses.c.value
    channel_id = case(*[(r.c.channel == kind, literal(channel_ids[kind], BigInteger)) for kind in kinds],
                      else_=literal(None, BigInteger))
    key = literal(_key_prefix(campaign.key_namespace), String) + _hex12(db, r.c.contact_id)
    joined = r.outerjoin(addresses, and_(addresses.c.contact_id == r.c.contact_id, addresses.c.kind == kind_of))
    fields = grouping_fields(db, campaign, variants, kinds)
    if fields:
        joined = joined.outerjoin(Contact, Contact.id == r.c.contact_id)
    db.execute(insert(Delivery.__table__).from_select(
        ["workspace_id", "campaign_id", "variant_id", "contact_id", "channel_id", "channel", "address", "key", "status",
         "attempts", "created_at", "profile_values"],
        select(r.c.workspace_id, r.c.campaign_id, r.c.variant_id, r.c.contact_id, channel_id, r.c.channel, address, key,
               literal("queued"), literal(0), literal(utcnow(), Delivery.created_at.type), _profile_values(db, fields))
        .select_from(joined)
        .where(r.c.campaign_id == campaign.id, r.c.is_holdout.is_(False))
        .order_by(r.c.variant_id, r.c.channel, *[getattr(Contact, f) for f in fields], r.c.contact_id)))
    # counted afterwards: a driver's rowcount of INSERT … SELECT is not reliable (psycopg answers -1)
    recipients, deliveries = db.execute(select(func.count(), func.count(r.c.variant_id)).where(r.c.campaign_id == campaign.id)).one()
    return {"recipients": recipients, "holdout": recipients - deliveries, "deliveries": deliveries, "skipped": skipped}
