"""Tags, applied in bulk and logged every time, with optional expiry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from tutti.audience.models import ContactTag, Tag, TagApplication
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound
from tutti.platform.sql import insert_ignore, upsert_rows

MAX_TAG_LENGTH = 100


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_TAG_LENGTH:
        raise InvalidInput(f"a tag name needs 1 to {MAX_TAG_LENGTH} characters, got '{name}'", field="tag")
    return name


def ensure_tags(db: Session, *, workspace_id: int, names: list[str]) -> dict[str, int]:
    """Tag ids by name, creating the missing tags."""
    names = list(dict.fromkeys(check_name(n) for n in names))
    if not names:
        return {}
    insert_ignore(db, Tag, [{"workspace_id": workspace_id, "name": n, "description": "", "created_at": utcnow()} for n in names],
                  conflict=("workspace_id", "name"))
    rows = db.execute(select(Tag.name, Tag.id).where(Tag.workspace_id == workspace_id, Tag.name.in_(names)))
    return dict(rows.all())


def apply(
    db: Session,
    *,
    workspace_id: int,
    contact_ids: list[int],
    tag: str,
    expires_at: datetime | None = None,
    source: str = "api",
    at: datetime | None = None,
) -> int:
    """Give the tag to these contacts (set-based, one statement each). Re-applying refreshes the time
    and expiry and is logged again. Returns the number of contacts tagged."""
    if not contact_ids:
        return 0
    at = at or utcnow()
    if expires_at is not None and expires_at <= at:
        raise InvalidInput("expires_at must be in the future", field="expires_at")
    tag_id = ensure_tags(db, workspace_id=workspace_id, names=[tag])[check_name(tag)]
    ids = list(dict.fromkeys(contact_ids))
    upsert_rows(
        db,
        ContactTag,
        [{"contact_id": c, "tag_id": tag_id, "workspace_id": workspace_id, "applied_at": at, "expires_at": expires_at} for c in ids],
        conflict=("contact_id", "tag_id"),
        update=("applied_at", "expires_at"),
    )
    db.execute(TagApplication.__table__.insert(), [
        {"workspace_id": workspace_id, "contact_id": c, "tag_id": tag_id, "applied_at": at, "source": source} for c in ids
    ])
    return len(ids)


def remove(db: Session, *, workspace_id: int, contact_ids: list[int], tag: str) -> int:
    tag_id = db.scalar(select(Tag.id).where(Tag.workspace_id == workspace_id, Tag.name == tag))
    if tag_id is None:
        raise NotFound(f"no tag named '{tag}'", field="tag")
    return db.execute(delete(ContactTag).where(ContactTag.workspace_id == workspace_id, ContactTag.tag_id == tag_id, ContactTag.contact_id.in_(contact_ids))).rowcount


def active_filter(now: datetime | None = None):
    now = now or utcnow()
    return or_(ContactTag.expires_at.is_(None), ContactTag.expires_at > now)


def tags_of(db: Session, *, contact_id: int) -> list[dict]:
    rows = db.execute(
        select(Tag.name, ContactTag.applied_at, ContactTag.expires_at)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(ContactTag.contact_id == contact_id, active_filter())
        .order_by(Tag.name)
    )
    return [{"name": name, "applied_at": applied, "expires_at": expires} for name, applied, expires in rows]


def list_tags(db: Session, *, workspace_id: int) -> list[dict]:
    """Every tag with how many contacts hold it now."""
    holders = (
        select(ContactTag.tag_id, func.count().label("n"))
        .where(ContactTag.workspace_id == workspace_id, active_filter())
        .group_by(ContactTag.tag_id)
        .subquery()
    )
    rows = db.execute(
        select(Tag, func.coalesce(holders.c.n, 0)).outerjoin(holders, holders.c.tag_id == Tag.id)
        .where(Tag.workspace_id == workspace_id).order_by(Tag.name)
    )
    return [{"id": tag.id, "name": tag.name, "description": tag.description, "contacts": n} for tag, n in rows]


def create_tag(db: Session, *, workspace_id: int, name: str, description: str = "", actor: Actor) -> Tag:
    name = check_name(name)
    tag = db.scalar(select(Tag).where(Tag.workspace_id == workspace_id, Tag.name == name))
    if tag is None:
        tag = Tag(workspace_id=workspace_id, name=name, description=description)
        db.add(tag)
        db.flush()
        audit.record(db, workspace_id=workspace_id, actor=actor, action="tag.create", target_kind="tag", target_id=tag.id, detail={"name": name})
    elif description:
        tag.description = description
    return tag


def delete_tag(db: Session, *, workspace_id: int, name: str, actor: Actor) -> None:
    tag = db.scalar(select(Tag).where(Tag.workspace_id == workspace_id, Tag.name == name))
    if tag is None:
        raise NotFound(f"no tag named '{name}'", field="tag")
    db.delete(tag)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="tag.delete", target_kind="tag", target_id=tag.id, detail={"name": name})


def sweep_expired(db: Session, now: datetime | None = None) -> int:
    """Remove tags whose expiry has passed (the periodic tick calls this)."""
    now = now or utcnow()
    return db.execute(delete(ContactTag).where(and_(ContactTag.expires_at.is_not(None), ContactTag.expires_at <= now))).rowcount
