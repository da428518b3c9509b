"""Writing one chunk of checked rows, set-based: contacts and their identities, profiles, tags, consent and
orders."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import commerce, contacts, tags
from tutti.audience.imports.validation import MemberRecord, OrderRecord, Settings, Validation
from tutti.audience.models import Consent, ConsentChange, Contact, Identity
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.sql import insert_ignore, upsert_rows


def _create_contacts(db: Session, workspace_id: int, n: int, now: datetime) -> list[int]:
    """n new, empty contacts in one statement; their ids in order."""
    rows = [{"workspace_id": workspace_id, "attributes": {}, "created_at": now, "updated_at": now} for _ in range(n)]
    if db.get_bind().dialect.name == "sqlite":
        # SQLite cannot return ids of a multi-row insert in order, so SQLAlchemy would insert row by row. The write
        # transaction holds SQLite's only write lock (BEGIN IMMEDIATE), so the next ids are ours to take.
        first = (db.scalar(select(func.max(Contact.id))) or 0) + 1
        for offset, row in enumerate(rows):
            row["id"] = first + offset
        db.execute(insert(Contact), rows)
        return [row["id"] for row in rows]
    return list(db.execute(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), rows).scalars())


def _holders(db: Session, workspace_id: int, kind: str, values: list[str]):
    """(value, contact id) of the identities of one kind that exist, probing the unique index once per value.
    On PostgreSQL an IN list lets the planner scan every identity of the kind when its statistics are stale
    (as they are while an import fills the table); a LATERAL probe with LIMIT keeps one index lookup each."""
    if db.get_bind().dialect.name == "postgresql":
        return db.connection().exec_driver_sql(
            "SELECT v.value, i.contact_id FROM unnest(%s::text[]) AS v(value) CROSS JOIN LATERAL "
            "(SELECT contact_id FROM identity WHERE workspace_id = %s AND kind = %s AND value = v.value LIMIT 1) AS i",
            (list(values), workspace_id, kind)).all()
    return db.execute(select(Identity.value, Identity.contact_id).where(
        Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value.in_(values))).all()


def _resolve_contacts(db: Session, workspace_id: int, groups: list[list[tuple[str, str]]]) -> list[int]:
    """The contact of each group of normalised identities, creating the missing ones. Set-based for the
    common cases (all known on one contact, or all new); the rest go through identity resolution."""
    unique = list(dict.fromkeys(tuple(g) for g in groups))
    pairs = list({pair for group in unique for pair in group})
    owner: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in pairs:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        for offset in range(0, len(values), 900):
            owner.update({(kind, v): c for v, c in _holders(db, workspace_id, kind, values[offset: offset + 900])})
    uses: dict[tuple[str, str], int] = {}
    for group in unique:
        for pair in group:
            uses[pair] = uses.get(pair, 0) + 1
    found: dict[tuple, int] = {}
    new: list[tuple] = []
    slow: list[tuple] = []
    for group in unique:
        holders = {owner[p] for p in group if p in owner}
        missing = [p for p in group if p not in owner]
        if len(holders) == 1 and not missing:
            found[group] = holders.pop()
        elif not holders and all(uses[p] == 1 for p in group):
            new.append(group)
        else:
            slow.append(group)
    if new:
        now = utcnow()
        rows = []
        for group, contact_id in zip(new, _create_contacts(db, workspace_id, len(new), now), strict=True):
            found[group] = contact_id
            rows.extend({"workspace_id": workspace_id, "contact_id": contact_id, "kind": k, "value": v, "source": "import",
                         "created_at": now} for k, v in group)
        insert_ignore(db, Identity, rows, conflict=("workspace_id", "kind", "value"))
    merged_into: dict[int, int] = {}
    for group in slow:
        resolution = contacts.resolve(db, workspace_id=workspace_id, identities=list(group), source="import",
                                      actor=Actor.system("import"))
        found[group] = resolution.contact_id
        for loser in resolution.merged:
            merged_into[loser] = resolution.contact_id

    def live(contact_id: int) -> int:
        while contact_id in merged_into:
            contact_id = merged_into[contact_id]
        return contact_id

    return [live(found[tuple(g)]) for g in groups]


def _write_members(db: Session, workspace_id: int, records: list[MemberRecord], result: Validation, settings: Settings) -> None:
    if not records:
        return
    for key, type_ in result.attribute_types.items():
        if key not in settings.attribute_types:
            attrs.declare(db, workspace_id=workspace_id, key=key, type_=type_)
    ids = _resolve_contacts(db, workspace_id, [r.identities for r in records])
    people = {c.id: c for c in db.scalars(select(Contact).where(Contact.id.in_(set(ids))))}
    now = utcnow()
    by_tag: dict[str, list[int]] = {}
    consents: dict[tuple[int, str], str] = {}
    for record, contact_id in zip(records, ids, strict=True):
        contact = people[contact_id]
        for key, value in record.profile.items():
            setattr(contact, key, value)
        if record.attributes:
            contact.attributes = {**(contact.attributes or {}), **record.attributes}
        if record.profile or record.attributes:
            contact.updated_at = now
        for name in record.tags:
            by_tag.setdefault(name, []).append(contact_id)
        for channel, status in record.consents.items():
            consents[(contact_id, channel)] = status
    db.flush()
    for name, contact_ids in by_tag.items():
        tags.apply(db, workspace_id=workspace_id, contact_ids=contact_ids, tag=name, source="import", at=now)
    _write_consents(db, workspace_id, consents, now)


def _write_consents(db: Session, workspace_id: int, wanted: dict[tuple[int, str], str], now: datetime) -> None:
    """Consent in bulk, with the same history as consent.set_consent. An import never re-subscribes someone
    who unsubscribed, blocked or bounced: an old spreadsheet must not undo a person's later choice."""
    if not wanted:
        return
    held = {(c, ch): s for c, ch, s in db.execute(
        select(Consent.contact_id, Consent.channel, Consent.status).where(Consent.contact_id.in_({c for c, _ in wanted})))}
    states, changes = [], []
    for (contact_id, channel), status in wanted.items():
        current = held.get((contact_id, channel))
        if current == status or (current is not None and status == "subscribed"):
            continue
        states.append({"contact_id": contact_id, "channel": channel, "workspace_id": workspace_id, "status": status,
                       "source": "import", "updated_at": now})
        changes.append({"workspace_id": workspace_id, "contact_id": contact_id, "channel": channel, "status": status,
                        "source": "import", "at": now})
    upsert_rows(db, Consent, states, conflict=("contact_id", "channel"), update=("status", "source", "updated_at"))
    if changes:
        db.execute(ConsentChange.__table__.insert(), changes)


def _write_orders(db: Session, workspace_id: int, orders: list[OrderRecord], settings: Settings) -> None:
    if not orders:
        return
    ids = _resolve_contacts(db, workspace_id, [o.identities for o in orders])
    products = {}
    for order in orders:
        for line in order.lines:
            if line.sku and line.name:
                products[line.sku] = {"sku": line.sku, "name": line.name, "category": line.category,
                                      "price": line.unit_price or None}
    if products:
        commerce.upsert_products(db, workspace_id=workspace_id, products=list(products.values()))
    new_orders = []
    for order, contact_id in zip(orders, ids, strict=True):
        values = order.values
        total = values.get("total")
        if total is None:
            total = round(sum(line.quantity * line.unit_price for line in order.lines), 2)
        new_orders.append(commerce.NewOrder(
            contact_id=contact_id, external_id=order.order_id, placed_at=values["placed_at"], total=total,
            status=values.get("status", "completed"), currency=values.get("currency", settings.currency),
            channel=values.get("channel"), properties=order.properties, lines=order.lines))
    commerce.record_orders(db, workspace_id=workspace_id, orders=new_orders)
