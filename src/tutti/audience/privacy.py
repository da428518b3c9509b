"""Privacy requests about one person: export everything (right of access) and erase (right to erasure).

Erasing removes what identifies the person — identities, profile fields, custom attributes, event
properties and context, order properties, current tags — and keeps the anonymous facts the brand's
numbers rest on: the contact row (with erased_at set), orders with their amounts, dates and products,
events with their names and times. With its identities gone, nothing can find the person again; a new
record with the same e-mail becomes a new contact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import consent, tags
from tutti.audience.contacts import live_contact
from tutti.audience.models import (
    Contact,
    ContactMerge,
    ContactTag,
    ErasedIdentity,
    Event,
    Identity,
    Order,
    OrderLine,
    Tag,
    TagApplication,
)
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.sql import upsert_rows

# Other parts (deliveries, conversations, …) register what they hold about a contact, so one export or
# erasure covers the whole product without Audience importing their tables.
# Export hooks: (db, workspace_id, contact_id) -> {section name: JSON-able data}.
# Erase hooks: (db, workspace_id, contact_id) -> {what: how many rows were scrubbed}.
EXPORT_HOOKS: list[Callable[[Session, int, int], dict]] = []
ERASE_HOOKS: list[Callable[[Session, int, int], dict[str, int]]] = []


def identity_digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _plain(value):
    """JSON-ready: datetimes and dates as ISO 8601, decimals as floats, recursively."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export_contact(db: Session, *, workspace_id: int, contact_id: int, actor: Actor) -> dict:
    """Everything stored about one contact as JSON-ready data. A merged id exports the surviving contact."""
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    cid = contact.id
    identities = [
        {"kind": i.kind, "value": i.value, "source": i.source, "created_at": i.created_at}
        for i in db.scalars(select(Identity).where(Identity.workspace_id == workspace_id, Identity.contact_id == cid).order_by(Identity.id))
    ]
    history = [{"channel": c.channel, "status": c.status, "source": c.source, "at": c.at} for c in consent.history_of(db, contact_id=cid)]
    applications = [
        {"tag": name, "applied_at": at, "source": source}
        for name, at, source in db.execute(
            select(Tag.name, TagApplication.applied_at, TagApplication.source).join(Tag, Tag.id == TagApplication.tag_id)
            .where(TagApplication.workspace_id == workspace_id, TagApplication.contact_id == cid).order_by(TagApplication.applied_at)
        )
    ]
    events = [
        {"id": e.id, "kind": e.kind, "name": e.name, "occurred_at": e.occurred_at, "received_at": e.received_at,
         "properties": e.properties, "context": e.context, "source": e.source, "message_id": e.message_id}
        for e in db.scalars(select(Event).where(Event.workspace_id == workspace_id, Event.contact_id == cid).order_by(Event.occurred_at, Event.id))
    ]
    orders = list(db.scalars(select(Order).where(Order.workspace_id == workspace_id, Order.contact_id == cid).order_by(Order.placed_at, Order.id)))
    lines: dict[int, list[dict]] = {o.id: [] for o in orders}
    if orders:
        for line in db.scalars(select(OrderLine).where(OrderLine.workspace_id == workspace_id, OrderLine.order_id.in_(list(lines))).order_by(OrderLine.id)):
            lines[line.order_id].append({"sku": line.sku, "name": line.name, "category": line.category, "quantity": line.quantity,
                                         "unit_price": line.unit_price, "status": line.status})
    merges = [
        {"winner_id": m.winner_id, "loser_id": m.loser_id, "reason": m.reason, "at": m.at}
        for m in db.scalars(select(ContactMerge).where(ContactMerge.workspace_id == workspace_id,
                                                       or_(ContactMerge.winner_id == cid, ContactMerge.loser_id == cid)).order_by(ContactMerge.id))
    ]
    now = utcnow()
    result = {
        "contact_id": cid,
        "exported_at": now,
        "profile": {key: getattr(contact, key) for key in attrs.PROFILE_FIELDS}
        | {"created_at": contact.created_at, "updated_at": contact.updated_at, "last_seen_at": contact.last_seen_at},
        "identities": identities,
        "attributes": dict(contact.attributes or {}),
        "consent": consent.consents_of(db, contact_id=cid),
        "consent_history": history,
        "tags": tags.tags_of(db, contact_id=cid),
        "tag_applications": applications,
        "events": events,
        "orders": [
            {"id": o.id, "external_id": o.external_id, "status": o.status, "currency": o.currency, "subtotal": o.subtotal,
             "discount": o.discount, "shipping": o.shipping, "tax": o.tax, "total": o.total, "refunded_total": o.refunded_total,
             "channel": o.channel, "placed_at": o.placed_at, "properties": o.properties, "lines": lines[o.id]}
            for o in orders
        ],
        "merges": merges,
        "merged_from": [m["loser_id"] for m in merges if m["winner_id"] == cid],
    }
    for hook in EXPORT_HOOKS:
        result.update(hook(db, workspace_id, cid))
    audit.record(db, workspace_id=workspace_id, actor=actor, action="contact.export", target_kind="contact", target_id=cid,
                 detail={"events": len(events), "orders": len(orders)})
    return _plain(result)


def erase_contact(db: Session, *, workspace_id: int, contact_id: int, actor: Actor) -> dict:
    """Remove what identifies a contact, keep anonymous aggregates. Set-based: a few statements whatever
    the history's size. The audit entry records counts only, never the erased data."""
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    cid = contact.id
    now = utcnow()
    held = db.execute(select(Identity.kind, Identity.value).where(Identity.workspace_id == workspace_id, Identity.contact_id == cid)).all()
    upsert_rows(db, ErasedIdentity, [{"workspace_id": workspace_id, "digest": identity_digest(k, v), "erased_at": now} for k, v in held],
                conflict=("workspace_id", "digest"), update=("erased_at",))
    removed: dict[str, int] = {}
    removed["identities"] = db.execute(
        delete(Identity).where(Identity.workspace_id == workspace_id, Identity.contact_id == cid).execution_options(synchronize_session=False)
    ).rowcount
    removed["events_scrubbed"] = db.execute(
        update(Event).where(Event.workspace_id == workspace_id, Event.contact_id == cid)
        .values(properties={}, context=None).execution_options(synchronize_session=False)
    ).rowcount
    removed["orders_scrubbed"] = db.execute(
        update(Order).where(Order.workspace_id == workspace_id, Order.contact_id == cid)
        .values(properties={}).execution_options(synchronize_session=False)
    ).rowcount
    removed["tags"] = db.execute(
        delete(ContactTag).where(ContactTag.workspace_id == workspace_id, ContactTag.contact_id == cid).execution_options(synchronize_session=False)
    ).rowcount
    removed["attributes"] = len(contact.attributes or {})
    for key in attrs.PROFILE_FIELDS:
        setattr(contact, key, None)
    contact.attributes = {}
    # Tombstones of contacts merged into this one held no data after their merge; clear them anyway.
    db.execute(update(Contact).where(Contact.workspace_id == workspace_id, Contact.merged_into_id == cid)
               .values(**{key: None for key in attrs.PROFILE_FIELDS}, attributes={}).execution_options(synchronize_session=False))
    contact.erased_at = now
    contact.updated_at = now
    for hook in ERASE_HOOKS:
        removed.update(hook(db, workspace_id, cid))
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="contact.erase", target_kind="contact", target_id=cid, detail={"removed": removed})
    return {"contact_id": cid, "erased_at": now.isoformat(), "removed": removed}
