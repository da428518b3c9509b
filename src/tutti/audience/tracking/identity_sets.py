"""The contact of every identity set of a batch, in a fixed handful of statements: one query for every
identity, one insert of new people and one of new identities; `contacts.resolve` only for the rare sets
that join two contacts (or would give someone a second external id or LINE id)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tutti.audience import contacts
from tutti.audience.models import Contact, Identity
from tutti.audience.tracking.message import SOURCE
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow


def _lookup(db: Session, workspace_id: int, pairs) -> dict[tuple[str, str], int]:
    """The contact holding each (kind, value), in one query, written for the driver directly: it runs for
    every processed transaction with thousands of values. SQLite: one index range per kind (UNION ALL).
    PostgreSQL: a join with the unnested pairs, a sound plan whether or not the table has statistics."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, value in pairs:
        by_kind[kind].add(value)
    if not by_kind:
        return {}
    if db.get_bind().dialect.name == "postgresql":
        # a join, not value = ANY(array): over a seq scan (a young table's plan) ANY costs rows × values
        kinds, values = [], []
        for kind, group in by_kind.items():
            kinds.extend([kind] * len(group))
            values.extend(group)
        rows = db.connection().exec_driver_sql(
            "SELECT i.kind, i.value, i.contact_id FROM unnest(%s::text[], %s::text[]) AS v(kind, value) "
            "JOIN identity i ON i.workspace_id = %s AND i.kind = v.kind AND i.value = v.value", (kinds, values, workspace_id))
        return {(kind, value): contact_id for kind, value, contact_id in rows}
    parts, params = [], []
    for kind, values in by_kind.items():
        parts.append(f"SELECT kind, value, contact_id FROM identity WHERE workspace_id = ? AND kind = ? AND value IN ({', '.join('?' * len(values))})")
        params.extend((workspace_id, kind, *values))
    rows = db.connection().exec_driver_sql(" UNION ALL ".join(parts), tuple(params))
    return {(kind, value): contact_id for kind, value, contact_id in rows}


def _components(sets: list[tuple]) -> list[list[tuple]]:
    """Groups of identity sets that share an identity (they are the same person)."""
    parent = list(range(len(sets)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    holder: dict = {}
    for i, identity_set in enumerate(sets):
        for pair in identity_set:
            if pair in holder:
                parent[find(i)] = find(holder[pair])
            else:
                holder[pair] = i
    groups: dict[int, list[tuple]] = defaultdict(list)
    for i, identity_set in enumerate(sets):
        groups[find(i)].append(identity_set)
    return list(groups.values())


def _consistent(pairs) -> bool:
    seen: dict[str, str] = {}
    for kind, value in pairs:
        if kind in contacts.EXCLUSIVE_KINDS and seen.setdefault(kind, value) != value:
            return False
    return True


def resolve_sets(db: Session, *, workspace_id: int, sets: list[tuple]) -> tuple[dict[tuple, int], dict[int, int]]:
    """The contact of every identity set, with as few statements as possible; also {merged: winner}.

    Sets whose identities all belong to one contact need nothing more. Sets sharing identities are
    grouped (they are one person). A group nobody holds yet becomes a new contact, and a group held by
    exactly one contact gets its new identities attached; all of these in one insert of contacts and one
    of identities. Only groups that would join two contacts, or break the one-external-id/one-LINE-id
    rule, go through `contacts.resolve`, one set at a time, in message order."""
    distinct = list(dict.fromkeys(s for s in sets if s))
    owner = _lookup(db, workspace_id, {pair for s in distinct for pair in s})
    found: dict[tuple, int] = {}
    pending: list[tuple] = []
    for identity_set in distinct:
        holders = {owner.get(pair) for pair in identity_set}
        if None not in holders and len(holders) == 1:
            found[identity_set] = holders.pop()
        else:
            pending.append(identity_set)
    sequential: list[tuple] = []
    plans: list[tuple[int | None, list[tuple], list[tuple]]] = []  # (holder or None for a new person, group, new pairs)
    for group in _components(pending):
        union = list(dict.fromkeys(pair for s in group for pair in s))
        holders = {owner[pair] for pair in union if pair in owner}
        if len(holders) > 1 or not _consistent(union):
            sequential.extend(group)
        else:
            plans.append((holders.pop() if holders else None, group, [pair for pair in union if pair not in owner]))
    # attaching an external_id or LINE id to someone who has a different one is a different person
    exclusive_new = {holder for holder, _, new in plans if holder is not None and any(k in contacts.EXCLUSIVE_KINDS for k, _ in new)}
    if exclusive_new:
        held: dict[int, list] = defaultdict(list)
        for contact_id, kind, value in db.execute(select(Identity.contact_id, Identity.kind, Identity.value).where(
                Identity.contact_id.in_(exclusive_new), Identity.kind.in_(contacts.EXCLUSIVE_KINDS))):
            held[contact_id].append((kind, value))
        kept = []
        for plan in plans:
            holder, group, new = plan
            if holder in held and not _consistent(held[holder] + new):
                sequential.extend(group)
            else:
                kept.append(plan)
        plans = kept
    failed = _write_plans(db, workspace_id, plans, found)
    sequential.extend(s for group in failed for s in group)
    merged: dict[int, int] = {}
    order = {s: i for i, s in enumerate(distinct)}
    for identity_set in sorted(sequential, key=order.__getitem__):
        resolution = contacts.resolve(db, workspace_id=workspace_id, identities=list(identity_set), source=SOURCE,
                                      actor=Actor.system(SOURCE))
        found[identity_set] = resolution.contact_id
        for loser in resolution.merged:
            merged[loser] = resolution.contact_id
    return found, merged


def _write_plans(db: Session, workspace_id: int, plans: list, found: dict) -> list[list[tuple]]:
    """Create the new people and attach the new identities; returns the groups a concurrent request got
    to first (their half-done work is undone here) for `contacts.resolve` to settle."""
    if not plans:
        return []
    now = utcnow()
    table = Contact.__table__
    fresh = [i for i, (holder, _, _) in enumerate(plans) if holder is None]
    contact_of = [holder for holder, _, _ in plans]
    if fresh:
        rows = [{"workspace_id": workspace_id, "attributes": {}, "created_at": now, "updated_at": now} for _ in fresh]
        ids = db.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
        for i, contact_id in zip(fresh, ids):
            contact_of[i] = contact_id
    identity_rows = sorted(
        ({"workspace_id": workspace_id, "contact_id": contact_of[i], "kind": kind, "value": value, "source": SOURCE, "created_at": now}
         for i, (_, _, new) in enumerate(plans) for kind, value in new),
        key=lambda row: (row["kind"], row["value"]),  # one lock order for every request: no deadlocks between them
    )
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Identity.__table__).on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value"])
    columns = Identity.__table__.c
    inserted = {(k, v) for k, v in db.execute(statement.returning(columns.kind, columns.value), identity_rows)} if identity_rows else set()
    lost: list[int] = []
    if len(inserted) != len(identity_rows):  # another request attached some of them first
        lost = [i for i, (_, _, new) in enumerate(plans) if any(pair not in inserted for pair in new)]
        orphans = [contact_of[i] for i in lost if plans[i][0] is None]
        if orphans:
            db.execute(delete(Identity).where(Identity.contact_id.in_(orphans)).execution_options(synchronize_session=False))
            db.execute(delete(Contact).where(Contact.id.in_(orphans)).execution_options(synchronize_session=False))
    lost_set = set(lost)
    for i, (_, group, _) in enumerate(plans):
        if i not in lost_set:
            for identity_set in group:
                found[identity_set] = contact_of[i]
    return [plans[i][1] for i in lost]
