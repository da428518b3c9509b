"""Storing valid messages (`store`), set-based, a few statements per batch whatever its size: the contacts of
their identity sets and aliases, the events (skipping messageIds stored before), then, for the new messages
only, profiles and custom attributes, products and orders, and last-seen times."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import commerce, contacts
from tutti.audience.models import Contact, ErasedIdentity
from tutti.audience.privacy import identity_digest
from tutti.audience.tracking.event_rows import _insert_events, _sqlite_time
from tutti.audience.tracking.identity_sets import _lookup, resolve_sets
from tutti.audience.tracking.message import SOURCE, Message
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound, TuttiError

log = logging.getLogger("tutti.tracking")


def _final(contact_id: int, merged: dict[int, int]) -> int:
    while contact_id in merged:
        contact_id = merged[contact_id]
    return contact_id


def _apply_profiles(db: Session, workspace_id: int, messages: list[Message]) -> None:
    """Profile fields and custom attributes from identify calls, a few statements per batch."""
    profiles: dict[int, dict] = defaultdict(dict)
    custom: dict[int, dict] = defaultdict(dict)
    for m in messages:
        if m.type == "identify":
            profiles[m.contact_id].update(m.profile)
            if m.traits:
                custom[m.contact_id].update(m.traits)
    if not profiles:
        return
    clean_custom: dict[int, dict] = {}
    if custom:
        known = attrs.definitions(db, workspace_id=workspace_id)
        for contact_id, values in custom.items():
            clean_custom[contact_id] = _typed_traits(db, workspace_id, known, values)
        current = dict(db.execute(select(Contact.id, Contact.attributes).where(Contact.id.in_(list(clean_custom)))).all())
        for contact_id, values in clean_custom.items():
            merged = dict(current.get(contact_id) or {})
            for key, value in values.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            clean_custom[contact_id] = merged
    now = utcnow()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for contact_id, profile in profiles.items():
        row = {"_id": contact_id, **profile, "updated_at": now}
        if contact_id in clean_custom:
            row["attributes"] = clean_custom[contact_id]
        groups[tuple(sorted(k for k in row if k != "_id"))].append(row)
    table = Contact.__table__
    for columns, rows in groups.items():
        statement = update(table).where(table.c.id == bindparam("_id")).values(  # ids from this workspace (see _touch)
            {column: bindparam(column) for column in columns})
        db.connection().execute(statement, rows)


def _typed_traits(db: Session, workspace_id: int, known: dict, values: dict) -> dict:
    clean = {}
    for key, value in values.items():
        try:
            if key not in known:
                if value is None:
                    continue
                attrs.check_key(key)
                try:
                    with db.begin_nested():
                        known[key] = attrs.declare(db, workspace_id=workspace_id, key=key, type_=attrs.infer_type(value))
                except IntegrityError:  # declared by a concurrent request a moment ago
                    known.update(attrs.definitions(db, workspace_id=workspace_id))
            clean[key] = attrs.coerce(value, known[key].type, key=key)
        except (InvalidInput, TuttiError) as error:
            log.warning("tracking: dropped trait %s: %s", key, error.message, extra={"trait": key})
    return clean


def _apply_commerce(db: Session, workspace_id: int, messages: list[Message]) -> None:
    products: dict[str, dict] = {}
    for m in messages:
        for product in m.products:
            products[product["sku"]] = {**products.get(product["sku"], {}), **{k: v for k, v in product.items() if v not in (None, {})}}
    if products:
        commerce.upsert_products(db, workspace_id=workspace_id, products=list(products.values()))
    orders = []
    for m in messages:
        if m.order is not None:
            m.order.contact_id = m.contact_id
            orders.append(m.order)
    if orders:
        commerce.record_orders(db, workspace_id=workspace_id, orders=orders)
    for m in messages:
        if m.status_change is not None:
            order_id, status, skus, amount = m.status_change
            try:
                commerce.set_order_status(db, workspace_id=workspace_id, external_id=order_id, status=status,
                                          refunded_total=amount, line_skus=skus)
            except NotFound:
                log.warning("tracking: %s for unknown order %s (message %d); stored as an event only", m.name, order_id, m.index)


def store(db: Session, *, workspace_id: int, messages: list[Message]) -> dict[str, int]:
    """Store valid messages; those whose messageId was stored before are skipped, with their side effects
    (orders, profile changes). Returns the new events by kind."""
    unique: dict[str, Message] = {}
    for m in messages:
        unique.setdefault(m.message_id, m)  # the same message twice in one request: the first counts
    fresh = _not_erased(db, workspace_id, list(unique.values()))
    if not fresh:
        return {}
    found, merged = resolve_sets(db, workspace_id=workspace_id, sets=[m.identities for m in fresh])
    for m in fresh:
        m.contact_id = found[m.identities]
    for m in fresh:
        if m.type == "alias":  # idempotent: aliasing two people already joined changes nothing
            resolution = _alias(db, workspace_id, m)
            m.contact_id = resolution.contact_id
            for loser in resolution.merged:
                merged[loser] = resolution.contact_id
    if merged:
        for m in fresh:
            m.contact_id = _final(m.contact_id, merged)
    inserted = _insert_events(db, workspace_id, fresh)
    new = [m for m in fresh if m.message_id in inserted]
    _apply_profiles(db, workspace_id, new)
    _apply_commerce(db, workspace_id, new)
    if new:
        _touch(db, workspace_id, new)
    counts: dict[str, int] = defaultdict(int)
    for m in new:
        counts[m.type] += 1
    return dict(counts)


def _not_erased(db: Session, workspace_id: int, messages: list[Message]) -> list[Message]:
    """Drop messages about a person erased after the messages were accepted (they waited in the inbox);
    what arrives after the erasure is new activity and is kept."""
    digests = {m.message_id: [identity_digest(k, v) for k, v in m.identities] for m in messages}
    wanted = {d for ds in digests.values() for d in ds}
    erased = dict(db.execute(select(ErasedIdentity.digest, ErasedIdentity.erased_at).where(
        ErasedIdentity.workspace_id == workspace_id, ErasedIdentity.digest.in_(wanted))).all()) if wanted else {}
    if not erased:
        return messages
    now = utcnow()
    return [m for m in messages if not any((m.received_at or now) <= erased[d] for d in digests[m.message_id] if d in erased)]


def _alias(db: Session, workspace_id: int, m: Message) -> contacts.Resolution:
    """Segment's alias: previousId (an earlier userId or an anonymousId) is the person now known as userId."""
    previous = m.previous_id
    owner = _lookup(db, workspace_id, [("external_id", previous), ("anonymous_id", previous)])
    kind = "external_id" if ("external_id", previous) in owner else "anonymous_id"
    return contacts.alias(db, workspace_id=workspace_id, previous=[(kind, previous)], current=list(m.identities),
                          actor=Actor.system(SOURCE))


def _touch(db: Session, workspace_id: int, messages: list[Message]) -> None:
    """Advance each contact's last_seen_at to its latest event here (never backwards): one UPDATE … FROM,
    as `contacts.touch` takes one time for all and events in a batch span minutes or, in imports, years."""
    latest: dict[int, datetime] = {}
    for m in messages:
        if m.contact_id not in latest or m.occurred_at > latest[m.contact_id]:
            latest[m.contact_id] = m.occurred_at
    # by primary key alone: the ids come from this workspace's identities, and a workspace_id test
    # tempts PostgreSQL into scanning the workspace's index while a new table has no statistics
    if db.get_bind().dialect.name == "postgresql":  # one statement for thousands of contacts
        ids, times = zip(*sorted(latest.items()))
        db.connection().exec_driver_sql(
            "UPDATE contact SET last_seen_at = v.at FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
            "WHERE contact.id = v.id AND (contact.last_seen_at IS NULL OR contact.last_seen_at < v.at)", (list(ids), list(times)))
        return
    # SQLite: UPDATE … FROM a VALUES list, a statement per 2,000 contacts (times as UTCDateTime stores them,
    # so the text comparison is the time comparison)
    pairs = sorted(latest.items())
    connection = db.connection()
    for start in range(0, len(pairs), 2000):
        chunk = pairs[start:start + 2000]
        connection.exec_driver_sql(
            "UPDATE contact SET last_seen_at = v.column2 FROM (VALUES " + ", ".join(["(?, ?)"] * len(chunk)) + ") AS v "
            "WHERE contact.id = v.column1 AND (contact.last_seen_at IS NULL OR contact.last_seen_at < v.column2)",
            tuple(value for contact_id, at in chunk for value in (contact_id, _sqlite_time(at))))
