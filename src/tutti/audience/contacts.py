"""Contacts and identity resolution: every record lands on the one profile of the person it is about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience.identities import halfwidth, normalise, normalise_all
from tutti.audience.models import (
    IDENTITY_KINDS,
    Consent,
    ConsentChange,
    Contact,
    ContactMerge,
    ContactTag,
    Event,
    Identity,
    Order,
    Tag,
    TagApplication,
)
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound

# A person has at most one of these; two contacts holding different values are two people, never merged
# automatically (an explicit merge still can).
EXCLUSIVE_KINDS = ("external_id", "line_uid")

# Other parts (deliveries, conversations, journeys) register how to move their rows when contacts merge,
# so Audience never imports their tables. Each hook gets (db, workspace_id, winner_id, loser_id).
MERGE_HOOKS: list[Callable[[Session, int, int, int], None]] = []

# Tables whose rows simply follow the contact on a merge.
_FOLLOWING_TABLES = (Identity, TagApplication, ConsentChange, Event, Order)


@dataclass
class Resolution:
    contact_id: int
    created: bool = False
    merged: list[int] = field(default_factory=list)  # contacts merged into contact_id
    skipped: list[tuple[str, str]] = field(default_factory=list)  # identities left with another person


def live_contact(db: Session, *, workspace_id: int, contact_id: int) -> Contact:
    """The contact, or the one it was merged into. NotFound for other workspaces' and erased contacts."""
    contact = db.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise NotFound(f"no contact with id {contact_id}")
    if contact.merged_into_id is not None:
        contact = db.get(Contact, contact.merged_into_id)
    if contact.erased_at is not None:
        raise NotFound(f"contact {contact_id} was erased")
    return contact


def identities_of(db: Session, contact_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    result: dict[int, list[tuple[str, str]]] = {cid: [] for cid in contact_ids}
    rows = db.execute(select(Identity.contact_id, Identity.kind, Identity.value).where(Identity.contact_id.in_(contact_ids)))
    for contact_id, kind, value in rows:
        result[contact_id].append((kind, value))
    return result


def _compatible(exclusive: dict[str, str], identities: list[tuple[str, str]]) -> bool:
    return all(exclusive.get(kind, value) == value for kind, value in identities if kind in EXCLUSIVE_KINDS)


def resolve(
    db: Session,
    *,
    workspace_id: int,
    identities: list[tuple[str, str]],
    source: str = "api",
    create: bool = True,
    actor: Actor | None = None,
) -> Resolution | None:
    """Find (or create) the contact these normalised identities belong to, joining contacts they prove
    to be one person and attaching identities not seen before. Identities must be normalised already."""
    if not identities:
        raise InvalidInput("a contact needs at least one identity (external_id, line_uid, email, phone or anonymous_id)")
    for attempt in range(3):
        try:
            with db.begin_nested():
                return _resolve_once(db, workspace_id, identities, source, create, actor)
        except IntegrityError:  # another transaction attached one of these identities at the same moment
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _resolve_once(db, workspace_id, identities, source, create, actor) -> Resolution | None:
    rows = db.execute(
        select(Identity.kind, Identity.value, Identity.contact_id).where(
            Identity.workspace_id == workspace_id, tuple_(Identity.kind, Identity.value).in_(identities)
        )
    ).all()
    owner = {(kind, value): contact_id for kind, value, contact_id in rows}
    # contacts in the order of the strongest identity that found them
    found = list(dict.fromkeys(owner[pair] for pair in identities if pair in owner))
    held = identities_of(db, found) if found else {}
    exclusive = {kind: value for kind, value in identities if kind in EXCLUSIVE_KINDS}
    resolution: Resolution | None = None
    for contact_id in found:
        if not _compatible(exclusive, held[contact_id]):
            continue
        exclusive.update({k: v for k, v in held[contact_id] if k in EXCLUSIVE_KINDS})
        if resolution is None:
            resolution = Resolution(contact_id=contact_id)
        else:
            merge(db, workspace_id=workspace_id, winner_id=resolution.contact_id, loser_id=contact_id,
                  reason="shared_identity", actor=actor or Actor.system(source))
            resolution.merged.append(contact_id)
    if resolution is None:
        if not create:
            return None
        contact = Contact(workspace_id=workspace_id, attributes={})
        db.add(contact)
        db.flush()
        resolution = Resolution(contact_id=contact.id, created=True)
    mine = {pair for pair in owner if owner[pair] == resolution.contact_id or owner[pair] in resolution.merged}
    for kind, value in identities:
        if (kind, value) in mine:
            continue
        if (kind, value) in owner or exclusive.get(kind, value) != value:
            resolution.skipped.append((kind, value))
            continue
        db.add(Identity(workspace_id=workspace_id, contact_id=resolution.contact_id, kind=kind, value=value, source=source))
    db.flush()
    return resolution


def upsert(
    db: Session,
    *,
    workspace_id: int,
    identities: dict[str, object] | list[tuple[str, object]],
    profile: dict | None = None,
    attributes: dict | None = None,
    source: str = "api",
    region: str = "TW",
    actor: Actor | None = None,
) -> tuple[Contact, Resolution]:
    """Create or update the contact these identities belong to. Profile fields and attributes given
    here overwrite stored ones; None clears a field."""
    pairs = normalise_all(identities, region=region)
    clean_profile = attrs.validate_profile(profile or {})
    clean_attributes = attrs.validate(db, workspace_id=workspace_id, values=attributes or {})
    resolution = resolve(db, workspace_id=workspace_id, identities=pairs, source=source, actor=actor)
    contact = db.get(Contact, resolution.contact_id)
    _apply(contact, clean_profile, clean_attributes)
    return contact, resolution


def _apply(contact: Contact, profile: dict, attributes: dict) -> None:
    for key, value in profile.items():
        setattr(contact, key, value)
    if attributes:
        merged = dict(contact.attributes or {})
        for key, value in attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        contact.attributes = merged
    contact.updated_at = utcnow()


def update_contact(
    db: Session,
    *,
    workspace_id: int,
    contact_id: int,
    profile: dict | None = None,
    attributes: dict | None = None,
    add_identities: dict[str, object] | list[tuple[str, object]] | None = None,
    region: str = "TW",
    actor: Actor,
) -> Contact:
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    pairs = normalise_all(add_identities or [], region=region)
    clean_profile = attrs.validate_profile(profile or {})
    clean_attributes = attrs.validate(db, workspace_id=workspace_id, values=attributes or {})
    for kind, value in pairs:
        holder = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value == value))
        if holder == contact.id:
            continue
        if holder is not None:
            raise Conflict(f"{kind} {value} belongs to contact {holder}; merge the two contacts instead", field=kind)
        if kind in EXCLUSIVE_KINDS and db.scalar(select(Identity.id).where(Identity.contact_id == contact.id, Identity.kind == kind)):
            raise Conflict(f"contact {contact.id} has a {kind} already; a person has only one", field=kind)
        db.add(Identity(workspace_id=workspace_id, contact_id=contact.id, kind=kind, value=value, source=actor.kind))
    _apply(contact, clean_profile, clean_attributes)
    db.flush()
    return contact


def remove_identity(db: Session, *, workspace_id: int, contact_id: int, kind: str, value: str, actor: Actor) -> None:
    contact = live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    deleted = db.execute(
        delete(Identity).where(Identity.contact_id == contact.id, Identity.kind == kind, Identity.value == normalise(kind, value))
    ).rowcount
    if not deleted:
        raise NotFound(f"contact {contact.id} has no {kind} {value}")
    audit.record(db, workspace_id=workspace_id, actor=actor, action="identity.remove", target_kind="contact", target_id=contact.id, detail={"kind": kind})


# --- merges ----------------------------------------------------------------------------------------


def merge(
    db: Session, *, workspace_id: int, winner_id: int, loser_id: int, reason: str, actor: Actor, detail: dict | None = None
) -> Contact:
    """Join loser into winner, keeping every identity, tag, event, order and consent; loser stays as a
    tombstone pointing at winner, so old references still find the person."""
    winner = live_contact(db, workspace_id=workspace_id, contact_id=winner_id)
    loser = live_contact(db, workspace_id=workspace_id, contact_id=loser_id)
    if winner.id == loser.id:
        raise InvalidInput(f"contacts {winner_id} and {loser_id} are the same person already")
    winner_id, loser_id = winner.id, loser.id
    moved = {}
    for table in _FOLLOWING_TABLES:
        moved[table.__tablename__] = db.execute(
            # workspace_id first: every table's contact index starts with it (events could be millions)
            update(table).where(table.workspace_id == workspace_id, table.contact_id == loser_id)
            .values(contact_id=winner_id).execution_options(synchronize_session=False)
        ).rowcount
    winner_tags = select(ContactTag.tag_id).where(ContactTag.contact_id == winner_id).scalar_subquery()
    db.execute(
        update(ContactTag).where(ContactTag.contact_id == loser_id, ContactTag.tag_id.not_in(winner_tags))
        .values(contact_id=winner_id).execution_options(synchronize_session=False)
    )
    db.execute(delete(ContactTag).where(ContactTag.contact_id == loser_id).execution_options(synchronize_session=False))
    _merge_consents(db, winner_id, loser_id)
    for key in attrs.PROFILE_FIELDS:
        if getattr(winner, key) is None and getattr(loser, key) is not None:
            setattr(winner, key, getattr(loser, key))
    winner.attributes = {**(loser.attributes or {}), **(winner.attributes or {})}
    winner.created_at = min(winner.created_at, loser.created_at)
    winner.last_seen_at = max((t for t in (winner.last_seen_at, loser.last_seen_at) if t), default=None)
    db.execute(update(Contact).where(Contact.merged_into_id == loser_id).values(merged_into_id=winner_id).execution_options(synchronize_session=False))
    for key in attrs.PROFILE_FIELDS:
        setattr(loser, key, None)
    loser.attributes = {}
    loser.merged_into_id = winner_id
    for hook in MERGE_HOOKS:
        hook(db, workspace_id, winner_id, loser_id)
    db.add(ContactMerge(workspace_id=workspace_id, winner_id=winner_id, loser_id=loser_id, reason=reason, detail={**(detail or {}), "moved": moved}))
    audit.record(db, workspace_id=workspace_id, actor=actor, action="contact.merge", target_kind="contact", target_id=winner_id, detail={"loser_id": loser_id, "reason": reason})
    db.flush()
    return winner


def _merge_consents(db: Session, winner_id: int, loser_id: int) -> None:
    """Per channel the most recent choice wins: it is the same person's latest word."""
    for consent in db.scalars(select(Consent).where(Consent.contact_id == loser_id)).all():
        mine = db.get(Consent, (winner_id, consent.channel))
        if mine is None:
            db.add(Consent(contact_id=winner_id, channel=consent.channel, workspace_id=consent.workspace_id,
                           status=consent.status, source=consent.source, updated_at=consent.updated_at))
        elif consent.updated_at > mine.updated_at:
            mine.status, mine.source, mine.updated_at = consent.status, consent.source, consent.updated_at
        db.delete(consent)
    db.flush()


def alias(db: Session, *, workspace_id: int, previous: list[tuple[str, str]], current: list[tuple[str, str]], actor: Actor) -> Resolution:
    """Segment's alias: the person known by `previous` is the person known by `current`."""
    target = resolve(db, workspace_id=workspace_id, identities=current, source=actor.label or "alias", actor=actor)
    earlier = resolve(db, workspace_id=workspace_id, identities=previous, source=actor.label or "alias", create=False, actor=actor)
    if earlier is None:
        # nothing known by the previous id yet: remember it on the current contact
        resolve(db, workspace_id=workspace_id, identities=current + previous, source="alias", actor=actor)
    elif earlier.contact_id != target.contact_id:
        merge(db, workspace_id=workspace_id, winner_id=target.contact_id, loser_id=earlier.contact_id, reason="alias", actor=actor)
        target.merged.append(earlier.contact_id)
    return target


# --- search ----------------------------------------------------------------------------------------


@dataclass
class Page:
    contacts: list[Contact]
    next_cursor: int | None


def search(
    db: Session,
    *,
    workspace_id: int,
    q: str | None = None,
    identity_kind: str | None = None,
    identity_value: str | None = None,
    tag: str | None = None,
    attribute: dict[str, str] | None = None,
    consent: tuple[str, str] | None = None,
    cursor: int | None = None,
    limit: int = 50,
    region: str = "TW",
) -> Page:
    """Contacts newest first, filtered by free text (name or any identity), identity, tag, attribute
    values and consent. Keyset-paginated by id so deep pages stay fast at a million contacts."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", field="limit")
    query = select(Contact).where(Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None), Contact.erased_at.is_(None))
    if q and q.strip():
        query = query.where(_text_match(db, workspace_id, q.strip(), region))
    if identity_kind or identity_value:
        if not (identity_kind and identity_value):
            raise InvalidInput("give both identity_kind and identity_value", field="identity_kind")
        value = normalise(identity_kind, identity_value, region=region)
        query = query.where(Contact.id.in_(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == identity_kind, Identity.value == value)))
    if tag:
        tag_id = db.scalar(select(Tag.id).where(Tag.workspace_id == workspace_id, Tag.name == tag))
        if tag_id is None:
            raise NotFound(f"no tag named '{tag}'", field="tag")
        now = utcnow()
        query = query.where(Contact.id.in_(select(ContactTag.contact_id).where(
            ContactTag.tag_id == tag_id, or_(ContactTag.expires_at.is_(None), ContactTag.expires_at > now))))
    for key, value in (attribute or {}).items():
        query = query.where(_attribute_equals(db, workspace_id, key, value))
    if consent:
        channel, status = consent
        query = query.where(Contact.id.in_(select(Consent.contact_id).where(Consent.workspace_id == workspace_id, Consent.channel == channel, Consent.status == status)))
    if cursor:
        query = query.where(Contact.id < cursor)
    contacts = list(db.scalars(query.order_by(Contact.id.desc()).limit(limit + 1)))
    next_cursor = contacts[limit - 1].id if len(contacts) > limit else None
    return Page(contacts=contacts[:limit], next_cursor=next_cursor)


def _text_match(db: Session, workspace_id: int, q: str, region: str):
    """Free text: a name containing it, or an identity equal to it in any of its normal forms."""
    candidates = {halfwidth(q)}
    for kind in IDENTITY_KINDS:
        try:
            candidates.add(normalise(kind, q, region=region))
        except InvalidInput:
            pass
    by_identity = select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.value.in_(candidates))
    escaped = halfwidth(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(Contact.name.like(f"%{escaped}%", escape="\\"), Contact.id.in_(by_identity))


def _attribute_equals(db: Session, workspace_id: int, key: str, value: str):
    if key in attrs.PROFILE_FIELDS:
        clean = attrs.validate_profile({key: value})[key]
        return getattr(Contact, key) == clean
    definition = attrs.definitions(db, workspace_id=workspace_id).get(key)
    if definition is None:
        raise NotFound(f"no attribute named '{key}'", field=key)
    stored = attrs.coerce(value, definition.type, key=key)
    column = Contact.attributes[key]
    if definition.type == "number":
        return column.as_float() == float(stored)
    if definition.type == "boolean":
        return column.as_boolean() == stored
    if definition.type == "list":
        return column.as_string().like(f'%"{stored[0] if stored else ""}"%')  # membership in a JSON list
    return column.as_string() == stored


def count(db: Session, *, workspace_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Contact).where(
        Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None), Contact.erased_at.is_(None)))


def touch(db: Session, *, contact_ids: list[int], at: datetime) -> None:
    """Advance last_seen_at (never backwards, so late events cannot make someone look less recent)."""
    db.execute(update(Contact).where(Contact.id.in_(contact_ids), or_(Contact.last_seen_at.is_(None), Contact.last_seen_at < at))
               .values(last_seen_at=at).execution_options(synchronize_session=False))
