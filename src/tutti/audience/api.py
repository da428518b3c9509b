"""REST API of Audience under /api/v1 (Bearer API key). Thin: routes translate HTTP and call services.

Every route scopes by the key's workspace: an id from another workspace is simply not found (404).
Errors name the field as the request spells it (`identities.email`, `attributes.points`, `consent`).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import commerce, consent, contacts, events, privacy, profiles, tags
from tutti.audience.models import IDENTITY_KINDS, Contact, Tag
from tutti.audience.schemas import (
    AttributeIn,
    AttributeList,
    AttributeOut,
    BulkTagIn,
    BulkTagOut,
    ConsentIn,
    ConsentOut,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactTagList,
    ContactTagsIn,
    ContactUpserted,
    EraseOut,
    EventIn,
    EventPage,
    EventRecorded,
    ExportOut,
    IdentityIn,
    MergeIn,
    OrderList,
    TagIn,
    TagList,
    TagOut,
    TimelinePage,
)
from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound, TuttiError
from tutti.platform.schemas import (
    ERROR_RESPONSES,
    IdPath,
    PathText,
    QueryItem,
    QueryText,
    decode_cursor,
    encode_cursor,
)

router = APIRouter(responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = QueryText(200)
SEARCH_PARAMS = {"q", "identity_kind", "identity_value", "tag", "consent", "cursor", "limit"}


@contextmanager
def fields_as(rename: Callable[[str], str]) -> Iterator[None]:
    """Report a service error's field as the request spells it."""
    try:
        yield
    except TuttiError as error:
        if error.field:
            error.field = rename(error.field)
        raise


def _identity_field(field: str) -> str:
    return f"identities.{field}" if field in IDENTITY_KINDS else field


def _attribute_field(field: str) -> str:
    return "attributes" if field == "key" else f"attributes.{field}"


def _profile(db: Session, ctx: ApiContext, contact_id: int) -> dict:
    """The profile; when the id was merged into another contact, the survivor's, saying so."""
    result = profiles.profile(db, workspace_id=ctx.workspace_id, contact_id=contact_id)
    if result["id"] != contact_id:
        result["requested_id"] = contact_id
        result["note"] = f"contact {contact_id} was merged into contact {result['id']}; this is contact {result['id']}"
    return result


def _live_id(db: Session, ctx: ApiContext, contact_id: int) -> int:
    return contacts.live_contact(db, workspace_id=ctx.workspace_id, contact_id=contact_id).id


def _apply_tags(db: Session, ctx: ApiContext, contact_ids: list[int], names: list[str], expires_at: datetime | None, source: str = "api") -> None:
    with fields_as(lambda f: "tags" if f == "tag" else f):
        for name in dict.fromkeys(names):
            tags.apply(db, workspace_id=ctx.workspace_id, contact_ids=contact_ids, tag=name, expires_at=expires_at, source=source)


def _set_consents(db: Session, ctx: ApiContext, contact_id: int, states: dict[str, str], source: str = "api") -> None:
    for channel, status in states.items():
        with fields_as(lambda f, c=channel: f"consent.{c}"):
            consent.set_consent(db, workspace_id=ctx.workspace_id, contact_id=contact_id, channel=channel, status=status, source=source)


# --- contacts --------------------------------------------------------------------------------------


@router.post("/contacts", response_model=ContactUpserted, status_code=201, tags=["contacts"],
             responses={200: {"model": ContactUpserted, "description": "An existing contact was found and updated"}})
def upsert_contact(body: ContactIn, response: Response, ctx: ApiContext = allowed("contacts.write"), db: Session = get_db) -> dict:
    """Create the contact these identities belong to (201), or update the one that has any of them (200).
    Identities that prove two contacts are one person join them. Permission: contacts.write."""
    identities = body.identities.model_dump(exclude_none=True)
    if not any(str(v).strip() for v in identities.values()):
        raise InvalidInput("give at least one identity: external_id, line_uid, email, phone or anonymous_id", field="identities")
    with fields_as(lambda f: _identity_field(f) if f in IDENTITY_KINDS else (_attribute_field(f) if f in body.attributes or f == "key" else f)):
        contact, resolution = contacts.upsert(db, workspace_id=ctx.workspace_id, identities=identities, profile=body.profile(),
                                              attributes=body.attributes, source="api", region=ctx.region, actor=ctx.actor)
    _apply_tags(db, ctx, [contact.id], body.tags, None)
    _set_consents(db, ctx, contact.id, body.consent)
    db.flush()
    response.status_code = 201 if resolution.created else 200
    return {**_profile(db, ctx, contact.id), "created": resolution.created, "merged": resolution.merged,
            "skipped_identities": [{"kind": k, "value": v} for k, v in resolution.skipped]}


@router.get("/contacts", response_model=ContactPage, tags=["contacts"])
def search_contacts(
    request: Request,
    q: QueryText(200, "part of the name, or any identity (e-mail, phone in any format, ids)") = None,
    identity_kind: QueryText(16, "with identity_value: the contact holding this identity") = None,
    identity_value: QueryText(320) = None,
    tag: QueryText(100, "contacts holding this tag now") = None,
    consent_filter: QueryText(40, "channel:status, e.g. line:subscribed", alias="consent") = None,
    cursor: Cursor = None,
    limit: Limit = 50,
    ctx: ApiContext = allowed("contacts.read"),
    db: Session = get_db,
) -> dict:
    """Search contacts, newest first. Filter on attributes with `attr.<key>=value` (e.g.
    `attr.member_level=gold`, `attr.city=台北市`). Keyset-paginated: pass `next_cursor` back as `cursor`.
    Permission: contacts.read."""
    attribute: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("attr."):
            key = name[5:]
            if not key or len(key) > 64 or len(value) > 320 or "\x00" in value:
                raise InvalidInput(f"{name}: give an attribute key and a value of up to 320 characters", field=name)
            attribute[key] = value
        elif name not in SEARCH_PARAMS:
            raise InvalidInput(f"unknown query parameter '{name}'; filter attributes with attr.<key>=value", field=name)
    consent_pair = None
    if consent_filter:
        channel, _, status = consent_filter.partition(":")
        with fields_as(lambda f: "consent"):
            consent_pair = (channel, consent.check(channel, status))
    with fields_as(lambda f: f"attr.{f}" if f in attribute else f):
        page = contacts.search(db, workspace_id=ctx.workspace_id, q=q, identity_kind=identity_kind, identity_value=identity_value,
                               tag=tag, attribute=attribute, consent=consent_pair, cursor=decode_cursor(cursor), limit=limit,
                               region=ctx.region)
    return {"items": profiles.contact_row(db, page.contacts),
            "next_cursor": encode_cursor(page.next_cursor) if page.next_cursor else None}


@router.post("/contacts/merge", response_model=ContactOut, tags=["contacts"])
def merge_contacts(body: MergeIn, ctx: ApiContext = allowed("contacts.merge"), db: Session = get_db) -> dict:
    """Join `loser_id` into `winner_id`: identities, tags, events, orders and consent all move to the
    winner; the loser's id keeps answering with the winner. Permission: contacts.merge."""
    winner = contacts.merge(db, workspace_id=ctx.workspace_id, winner_id=body.winner_id, loser_id=body.loser_id, reason="manual", actor=ctx.actor)
    return _profile(db, ctx, winner.id)


@router.get("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
def get_contact(contact_id: IdPath, ctx: ApiContext = allowed("contacts.read"), db: Session = get_db) -> dict:
    """The 360° profile. An id that was merged answers the surviving contact, with `requested_id` and a
    `note` saying so. Permission: contacts.read."""
    return _profile(db, ctx, contact_id)


@router.patch("/contacts/{contact_id}", response_model=ContactOut, tags=["contacts"])
def update_contact(contact_id: IdPath, body: ContactPatch, ctx: ApiContext = allowed("contacts.write"), db: Session = get_db) -> dict:
    """Change profile fields and attributes; only fields sent change, null clears one. Permission: contacts.write."""
    with fields_as(lambda f: _attribute_field(f) if f in body.attributes or f == "key" else f):
        contacts.update_contact(db, workspace_id=ctx.workspace_id, contact_id=contact_id, profile=body.profile(),
                                attributes=body.attributes, region=ctx.region, actor=ctx.actor)
    return _profile(db, ctx, contact_id)


@router.post("/contacts/{contact_id}/identities", response_model=ContactOut, tags=["contacts"])
def add_identity(contact_id: IdPath, body: IdentityIn, ctx: ApiContext = allowed("contacts.write"), db: Session = get_db) -> dict:
    """Attach an identity. 409 if another contact holds it (merge them instead). Permission: contacts.write."""
    with fields_as(lambda f: "value" if f in IDENTITY_KINDS else f):
        contacts.update_contact(db, workspace_id=ctx.workspace_id, contact_id=contact_id, add_identities=[(body.kind, body.value)],
                                region=ctx.region, actor=ctx.actor)
    return _profile(db, ctx, contact_id)


@router.delete("/contacts/{contact_id}/identities/{kind}/{value}", response_model=ContactOut, tags=["contacts"])
def remove_identity(contact_id: IdPath, kind: PathText(16), value: PathText(320), ctx: ApiContext = allowed("contacts.write"),
                    db: Session = get_db) -> dict:
    """Detach an identity from the contact. Permission: contacts.write."""
    with fields_as(lambda f: "kind" if f == "kind" else "value"):
        contacts.remove_identity(db, workspace_id=ctx.workspace_id, contact_id=contact_id, kind=kind, value=value, actor=ctx.actor)
    return _profile(db, ctx, contact_id)


@router.get("/contacts/{contact_id}/timeline", response_model=TimelinePage, tags=["contacts"])
def contact_timeline(contact_id: IdPath, cursor: Cursor = None, limit: Limit = 50, ctx: ApiContext = allowed("contacts.read"),
                     db: Session = get_db) -> dict:
    """Events, orders, consent changes and tag applications, newest first. Permission: contacts.read."""
    page = profiles.timeline(db, workspace_id=ctx.workspace_id, contact_id=contact_id, limit=limit,
                             before=decode_cursor(cursor, kind=datetime))
    return {"items": page.items, "next_cursor": encode_cursor(page.next_before.isoformat()) if page.next_before else None}


@router.get("/contacts/{contact_id}/events", response_model=EventPage, tags=["events"])
def contact_events(contact_id: IdPath, cursor: Cursor = None, limit: Limit = 50, ctx: ApiContext = allowed("contacts.read"),
                   db: Session = get_db) -> dict:
    """The contact's events, newest first. Permission: contacts.read."""
    live = _live_id(db, ctx, contact_id)
    page = events.timeline(db, workspace_id=ctx.workspace_id, contact_id=live, limit=limit, before=decode_cursor(cursor, kind=datetime))
    items = [{"id": e.id, "kind": e.kind, "name": e.name, "occurred_at": e.occurred_at, "received_at": e.received_at,
              "properties": e.properties or {}, "context": e.context, "source": e.source, "message_id": e.message_id} for e in page.items]
    return {"items": items, "next_cursor": encode_cursor(page.next_before.isoformat()) if page.next_before else None}


@router.post("/contacts/{contact_id}/events", response_model=EventRecorded, status_code=201, tags=["events"],
             responses={200: {"model": EventRecorded, "description": "An event with this message_id was recorded before; nothing changed"}})
def record_event(contact_id: IdPath, body: EventIn, response: Response, ctx: ApiContext = allowed("contacts.write"), db: Session = get_db) -> dict:
    """Record an event of the contact (201); repeating a message_id changes nothing (200). Permission: contacts.write."""
    live = _live_id(db, ctx, contact_id)
    at = body.occurred_at or utcnow()
    with fields_as(lambda f: "name" if f == "event" else f):
        new = events.record(db, workspace_id=ctx.workspace_id, events=[events.NewEvent(
            contact_id=live, name=body.name, occurred_at=at, properties=body.properties, kind=body.kind, source="api",
            message_id=body.message_id, context=body.context)])
    if not new:  # this message_id was recorded before
        response.status_code = 200
        return {"recorded": False, "message_id": body.message_id}
    contacts.touch(db, contact_ids=[live], at=min(at, utcnow()))
    return {"recorded": True, "message_id": body.message_id}


@router.get("/contacts/{contact_id}/orders", response_model=OrderList, tags=["commerce"])
def contact_orders(contact_id: IdPath, limit: Limit = 50, ctx: ApiContext = allowed("contacts.read"), db: Session = get_db) -> dict:
    """The contact's orders with their lines, newest first. Permission: contacts.read."""
    live = _live_id(db, ctx, contact_id)
    views = commerce.orders_of(db, workspace_id=ctx.workspace_id, contact_id=live, limit=limit)
    return {"items": [
        {"id": v.order.id, "external_id": v.external_id, "status": v.status, "currency": v.currency, "subtotal": v.subtotal,
         "discount": v.discount, "shipping": v.shipping, "tax": v.tax, "total": v.total, "refunded_total": v.refunded_total,
         "channel": v.channel, "placed_at": v.placed_at, "properties": v.properties or {},
         "lines": [{"sku": line.sku, "name": line.name, "category": line.category, "quantity": line.quantity,
                    "unit_price": line.unit_price, "status": line.status} for line in v.lines]}
        for v in views]}


@router.put("/contacts/{contact_id}/consent/{channel}", response_model=ConsentOut, tags=["contacts"])
def put_consent(contact_id: IdPath, channel: PathText(8), body: ConsentIn, ctx: ApiContext = allowed("contacts.write"),
                db: Session = get_db) -> dict:
    """Set whether the contact may be reached on a channel (line, email, sms). Permission: contacts.write."""
    live = _live_id(db, ctx, contact_id)
    with fields_as(lambda f: "channel" if f == "channel" else "status"):
        changed = consent.set_consent(db, workspace_id=ctx.workspace_id, contact_id=live, channel=channel, status=body.status,
                                      source=body.source, at=body.at)
    state = consent.consents_of(db, contact_id=live)[channel]
    return {"channel": channel, **state, "changed": changed}


@router.post("/contacts/{contact_id}/tags", response_model=ContactTagList, tags=["tags"])
def tag_contact(contact_id: IdPath, body: ContactTagsIn, ctx: ApiContext = allowed("contacts.write"), db: Session = get_db) -> dict:
    """Give the contact tags (created when new), optionally until `expires_at`. Permission: contacts.write."""
    live = _live_id(db, ctx, contact_id)
    _apply_tags(db, ctx, [live], body.tags, body.expires_at)
    return {"items": tags.tags_of(db, contact_id=live)}


@router.delete("/contacts/{contact_id}/tags", response_model=ContactTagList, tags=["tags"])
def untag_contact(
    contact_id: IdPath,
    name: Annotated[list[QueryItem(100)], Query(min_length=1, max_length=100, description="a tag to remove; repeat for several")],
    ctx: ApiContext = allowed("contacts.write"),
    db: Session = get_db,
) -> dict:
    """Take tags off the contact: `?name=vip&name=spring-sale`. Permission: contacts.write."""
    live = _live_id(db, ctx, contact_id)
    with fields_as(lambda f: "name"):
        for tag in dict.fromkeys(name):
            tags.remove(db, workspace_id=ctx.workspace_id, contact_ids=[live], tag=tag)
    return {"items": tags.tags_of(db, contact_id=live)}


# --- privacy ---------------------------------------------------------------------------------------


@router.get("/contacts/{contact_id}/export", response_model=ExportOut, tags=["privacy"])
def export_contact(contact_id: IdPath, ctx: ApiContext = allowed("privacy.manage"), db: Session = get_db) -> dict:
    """Everything stored about one person, as JSON (right of access). Audit-logged. Permission: privacy.manage."""
    return privacy.export_contact(db, workspace_id=ctx.workspace_id, contact_id=contact_id, actor=ctx.actor)


@router.post("/contacts/{contact_id}/erase", response_model=EraseOut, tags=["privacy"])
def erase_contact(contact_id: IdPath, ctx: ApiContext = allowed("privacy.manage"), db: Session = get_db) -> dict:
    """Erase a person (right to erasure): identities and personal data are removed; orders and events stay
    as anonymous numbers. Cannot be undone. Audit-logged without the erased data. Permission: privacy.manage."""
    return privacy.erase_contact(db, workspace_id=ctx.workspace_id, contact_id=contact_id, actor=ctx.actor)


# --- tags ------------------------------------------------------------------------------------------


@router.get("/tags", response_model=TagList, tags=["tags"])
def list_tags(ctx: ApiContext = allowed("contacts.read"), db: Session = get_db) -> dict:
    """Every tag with how many contacts hold it now. Permission: contacts.read."""
    return {"items": tags.list_tags(db, workspace_id=ctx.workspace_id)}


@router.post("/tags", response_model=TagOut, status_code=201, tags=["tags"],
             responses={200: {"model": TagOut, "description": "The tag existed already"}})
def create_tag(body: TagIn, response: Response, ctx: ApiContext = allowed("tags.manage"), db: Session = get_db) -> dict:
    """Create a tag (201), or update the description of an existing one (200). Permission: tags.manage."""
    existed = db.scalar(select(Tag.id).where(Tag.workspace_id == ctx.workspace_id, Tag.name == body.name.strip()))
    with fields_as(lambda f: "name" if f == "tag" else f):
        tag = tags.create_tag(db, workspace_id=ctx.workspace_id, name=body.name, description=body.description, actor=ctx.actor)
    response.status_code = 200 if existed else 201
    counts = {t["id"]: t["contacts"] for t in tags.list_tags(db, workspace_id=ctx.workspace_id)}
    return {"id": tag.id, "name": tag.name, "description": tag.description, "contacts": counts.get(tag.id, 0)}


@router.delete("/tags/{name}", status_code=204, response_class=Response, tags=["tags"])
def delete_tag(name: PathText(100), ctx: ApiContext = allowed("tags.manage"), db: Session = get_db) -> Response:
    """Delete a tag and take it off every contact. Permission: tags.manage."""
    with fields_as(lambda f: "name"):
        tags.delete_tag(db, workspace_id=ctx.workspace_id, name=name, actor=ctx.actor)
    return Response(status_code=204)


@router.post("/tags/{name}/contacts", response_model=BulkTagOut, tags=["tags"])
def apply_tag(name: PathText(100), body: BulkTagIn, ctx: ApiContext = allowed("tags.manage"), db: Session = get_db) -> dict:
    """Give an existing tag to up to 10,000 contacts at once (set-based). Every id must be a contact of this
    workspace, else nothing changes (404 naming the ids). Permission: tags.manage."""
    if db.scalar(select(Tag.id).where(Tag.workspace_id == ctx.workspace_id, Tag.name == name)) is None:
        raise NotFound(f"no tag named '{name}'", field="name")
    ids = live_ids(db, workspace_id=ctx.workspace_id, contact_ids=body.contact_ids)
    with fields_as(lambda f: f):
        applied = tags.apply(db, workspace_id=ctx.workspace_id, contact_ids=ids, tag=name, expires_at=body.expires_at, source="api")
    return {"tag": name, "applied": applied}


def live_ids(db: Session, *, workspace_id: int, contact_ids: list[int]) -> list[int]:
    """The live contacts these ids stand for (a merged id stands for its survivor), in two queries.
    NotFound naming the ids that are not contacts of this workspace."""
    wanted = list(dict.fromkeys(contact_ids))
    rows = db.execute(select(Contact.id, Contact.merged_into_id).where(Contact.workspace_id == workspace_id, Contact.id.in_(wanted))).all()
    target = {cid: merged or cid for cid, merged in rows}
    live = set(db.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.id.in_(set(target.values())),
                                                   Contact.merged_into_id.is_(None), Contact.erased_at.is_(None))))
    missing = [cid for cid in wanted if target.get(cid) not in live]
    if missing:
        shown = ", ".join(str(m) for m in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise NotFound(f"{len(missing)} of the contact ids are not contacts of this workspace: {shown}", field="contact_ids",
                       details={"missing": missing[:100]})
    return list(dict.fromkeys(target[cid] for cid in wanted))


# --- attributes ------------------------------------------------------------------------------------


def _attribute(d) -> dict:
    return {"key": d.key, "type": d.type, "label": d.label, "created_at": d.created_at}


@router.get("/attributes", response_model=AttributeList, tags=["attributes"])
def list_attributes(ctx: ApiContext = allowed("contacts.read"), db: Session = get_db) -> dict:
    """The custom attributes declared in this workspace, with their types. Permission: contacts.read."""
    return {"items": [_attribute(d) for d in sorted(attrs.definitions(db, workspace_id=ctx.workspace_id).values(), key=lambda d: d.key)]}


@router.post("/attributes", response_model=AttributeOut, status_code=201, tags=["attributes"],
             responses={200: {"model": AttributeOut, "description": "Declared already with this type"}, 409: ERROR_RESPONSES[404] | {"description": "Declared already with another type"}})
def declare_attribute(body: AttributeIn, response: Response, ctx: ApiContext = allowed("attributes.manage"), db: Session = get_db) -> dict:
    """Declare a typed custom attribute (201); declaring it again with the same type is a no-op (200).
    Permission: attributes.manage."""
    existed = body.key in attrs.definitions(db, workspace_id=ctx.workspace_id)
    definition = attrs.declare(db, workspace_id=ctx.workspace_id, key=body.key, type_=body.type, label=body.label, actor=ctx.actor)
    response.status_code = 200 if existed else 201
    return _attribute(definition)
