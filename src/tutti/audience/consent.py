"""Consent and reachability per channel, with the time and source of every change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience.models import CHANNELS, CONSENT_STATUSES, Consent, ConsentChange
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput

# The words people use for each channel's states, mapped to the stored status.
ALIASES = {
    "followed": "subscribed", "follow": "subscribed", "friend": "subscribed", "unfollowed": "blocked", "unfollow": "blocked",
    "opted_in": "subscribed", "opt_in": "subscribed", "opted_out": "unsubscribed", "opt_out": "unsubscribed",
    "true": "subscribed", "yes": "subscribed", "1": "subscribed", "false": "unsubscribed", "no": "unsubscribed", "0": "unsubscribed",
}
ALLOWED = {
    "line": {"subscribed", "blocked"},
    "email": {"subscribed", "unsubscribed", "bounced"},
    "sms": {"subscribed", "unsubscribed", "bounced"},
}


def check(channel: str, status: str) -> str:
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel '{channel}'; use one of {', '.join(CHANNELS)}", field="channel")
    status = ALIASES.get(str(status).strip().lower(), str(status).strip().lower())
    if status not in CONSENT_STATUSES or status not in ALLOWED[channel]:
        raise InvalidInput(f"'{status}' is not a {channel} consent status; use one of {', '.join(sorted(ALLOWED[channel]))}", field=channel)
    return status


def set_consent(
    db: Session, *, workspace_id: int, contact_id: int, channel: str, status: str, source: str, at: datetime | None = None
) -> bool:
    """Record a consent state; returns whether it changed. Older news than what we hold is logged but
    does not overwrite the newer state."""
    status = check(channel, status)
    at = at or utcnow()
    current = db.get(Consent, (contact_id, channel))
    if current is not None and current.status == status:
        return False
    db.add(ConsentChange(workspace_id=workspace_id, contact_id=contact_id, channel=channel, status=status, source=source, at=at))
    if current is None:
        db.add(Consent(contact_id=contact_id, channel=channel, workspace_id=workspace_id, status=status, source=source, updated_at=at))
    elif at >= current.updated_at:
        current.status, current.source, current.updated_at = status, source, at
    else:
        return False
    db.flush()
    return True


def consents_of(db: Session, *, contact_id: int) -> dict[str, dict]:
    rows = db.scalars(select(Consent).where(Consent.contact_id == contact_id))
    return {row.channel: {"status": row.status, "source": row.source, "updated_at": row.updated_at} for row in rows}


def history_of(db: Session, *, contact_id: int) -> list[ConsentChange]:
    return list(db.scalars(select(ConsentChange).where(ConsentChange.contact_id == contact_id).order_by(ConsentChange.at.desc())))
