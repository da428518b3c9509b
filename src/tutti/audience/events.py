"""Events: what contacts did, stored append-only and de-duplicated by message id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience.models import Event
from tutti.audience.paging import TimePage, time_page
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput
from tutti.platform.sql import insert_ignore

MAX_NAME_LENGTH = 200


@dataclass
class NewEvent:
    contact_id: int
    name: str
    occurred_at: datetime
    properties: dict
    kind: str = "track"
    source: str = "api"
    message_id: str | None = None
    context: dict | None = None


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"an event name needs 1 to {MAX_NAME_LENGTH} characters", field="event")
    return name


def record(db: Session, *, workspace_id: int, events: list[NewEvent]) -> int:
    """Insert events in one statement; ones whose message id was seen before are skipped. Returns how
    many were new."""
    now = utcnow()
    rows = [
        {
            "workspace_id": workspace_id,
            "contact_id": e.contact_id,
            "kind": e.kind,
            "name": check_name(e.name),
            "occurred_at": e.occurred_at,
            "received_at": now,
            "properties": e.properties or {},
            "context": e.context,
            "source": e.source,
            "message_id": e.message_id or f"tutti-{uuid.uuid4()}",
        }
        for e in events
    ]
    return insert_ignore(db, Event, rows, conflict=("workspace_id", "message_id"))


def timeline(db: Session, *, workspace_id: int, contact_id: int, limit: int = 50, before: datetime | None = None) -> TimePage[Event]:
    query = select(Event).where(Event.workspace_id == workspace_id, Event.contact_id == contact_id)
    if before:
        query = query.where(Event.occurred_at < before)
    rows = list(db.scalars(query.order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit + 1)))
    return time_page(rows, limit=limit, at=lambda event: event.occurred_at)
