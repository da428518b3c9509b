"""The 360° view of one contact: who they are, how to reach them, and what they did, newest first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import consent, tags
from tutti.audience.contacts import live_contact
from tutti.audience.paging import TimePage, time_page
from tutti.audience.models import ConsentChange, Contact, ContactMerge, Event, Identity, Order, OrderLine, Tag, TagApplication

COUNTED_STATUSES = ("placed", "paid", "fulfilled", "completed", "partially_refunded")


def profile(db: Session, *, workspace_id: int, contact_id: int) -> dict:
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    identities = db.execute(
        select(Identity.kind, Identity.value, Identity.source, Identity.created_at).where(Identity.contact_id == contact.id).order_by(Identity.id)
    )
    orders = db.execute(
        select(func.count(), func.coalesce(func.sum(Order.total - Order.refunded_total), 0), func.max(Order.placed_at))
        .where(Order.workspace_id == workspace_id, Order.contact_id == contact.id, Order.status.in_(COUNTED_STATUSES))
    ).one()
    types = {key: d.type for key, d in attrs.definitions(db, workspace_id=workspace_id).items()}
    merged_from = list(db.scalars(select(ContactMerge.loser_id).where(ContactMerge.winner_id == contact.id).order_by(ContactMerge.id)))
    return {
        "id": contact.id,
        **{key: getattr(contact, key) for key in attrs.PROFILE_FIELDS},
        "identities": [{"kind": k, "value": v, "source": s, "created_at": at} for k, v, s, at in identities],
        "attributes": [{"key": k, "type": types.get(k, "string"), "value": v} for k, v in sorted((contact.attributes or {}).items())],
        "consent": consent.consents_of(db, contact_id=contact.id),
        "tags": tags.tags_of(db, contact_id=contact.id),
        "orders": {"count": orders[0], "revenue": float(orders[1] or 0), "last_at": orders[2]},
        "events": db.scalar(select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id, Event.contact_id == contact.id)),
        "merged_from": merged_from,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "last_seen_at": contact.last_seen_at,
    }


def timeline(db: Session, *, workspace_id: int, contact_id: int, limit: int = 50, before: datetime | None = None) -> TimePage[dict]:
    """Events, orders, consent changes and tag applications of one contact, newest first.

    Each source is read `limit + 1` deep before merging, so one page costs five indexed queries however
    long the history is; `page.next_before` pages further back."""
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    depth = limit + 1
    sources: list[list[dict]] = []

    def window(query, column):
        return query.where(column < before) if before else query

    sources.append([
        {"type": "event", "at": event.occurred_at, "kind": event.kind, "name": event.name, "properties": event.properties, "source": event.source}
        for event in db.scalars(window(select(Event).where(Event.workspace_id == workspace_id, Event.contact_id == contact.id), Event.occurred_at)
                                .order_by(Event.occurred_at.desc()).limit(depth))
    ])
    orders = list(db.scalars(window(select(Order).where(Order.workspace_id == workspace_id, Order.contact_id == contact.id), Order.placed_at)
                             .order_by(Order.placed_at.desc()).limit(depth)))
    lines: dict[int, list] = {o.id: [] for o in orders}
    if orders:
        for line in db.scalars(select(OrderLine).where(OrderLine.order_id.in_(lines)).order_by(OrderLine.id)):
            lines[line.order_id].append({"sku": line.sku, "name": line.name, "category": line.category,
                                         "quantity": line.quantity, "unit_price": line.unit_price, "status": line.status})
    sources.append([
        {"type": "order", "at": order.placed_at, "name": order.external_id, "status": order.status, "total": order.total,
         "refunded_total": order.refunded_total, "currency": order.currency, "channel": order.channel, "lines": lines[order.id]}
        for order in orders
    ])
    sources.append([
        {"type": "consent", "at": change.at, "name": change.channel, "status": change.status, "source": change.source}
        for change in db.scalars(window(select(ConsentChange).where(ConsentChange.contact_id == contact.id), ConsentChange.at)
                                 .order_by(ConsentChange.at.desc()).limit(depth))
    ])
    sources.append([
        {"type": "tag", "at": applied_at, "name": name, "source": source}
        for name, applied_at, source in db.execute(
            window(select(Tag.name, TagApplication.applied_at, TagApplication.source).join(Tag, Tag.id == TagApplication.tag_id)
                   .where(TagApplication.contact_id == contact.id), TagApplication.applied_at)
            .order_by(TagApplication.applied_at.desc()).limit(depth))
    ])
    horizon = max((rows[-1]["at"] for rows in sources if len(rows) == depth), default=None)
    items = sorted((item for rows in sources for item in rows), key=lambda item: item["at"], reverse=True)
    return time_page(items, limit=limit, at=lambda item: item["at"], horizon=horizon)


def contact_row(db: Session, contacts: list[Contact]) -> list[dict]:
    """Compact rows for lists: name, the identities at a glance, tags. Two queries for the whole page."""
    ids = [c.id for c in contacts]
    held: dict[int, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for contact_id, kind, value in db.execute(select(Identity.contact_id, Identity.kind, Identity.value).where(Identity.contact_id.in_(ids))):
            held[contact_id].setdefault(kind, value)
    tag_names: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for contact_id, name in db.execute(select(tags.ContactTag.contact_id, Tag.name).join(Tag, Tag.id == tags.ContactTag.tag_id)
                                           .where(tags.ContactTag.contact_id.in_(ids), tags.active_filter())):
            tag_names[contact_id].append(name)
    return [{"id": c.id, "name": c.name, "city": c.city, "identities": held[c.id], "tags": sorted(tag_names[c.id]),
             "created_at": c.created_at, "last_seen_at": c.last_seen_at} for c in contacts]
