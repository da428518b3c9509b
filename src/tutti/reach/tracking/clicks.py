"""Recording what recipients do with a message: clicks (kept one row each, and an audience event on the
contact's timeline), e-mail opens, and unsubscribes from an e-mail's link or one-click header."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience import consent, events
from tutti.audience.models import Contact
from tutti.platform.db import utcnow
from tutti.reach.tracking import codes
from tutti.reach.tracking.models import Click, Link, MessageOpen

CLICK_EVENT = "Campaign Link Clicked"
OPEN_EVENT = "Campaign Email Opened"


@dataclass(frozen=True)
class Followed:
    url: str  # where to send the browser, with UTM parameters
    click_id: int


def campaign_slug(campaign_id: int, name: str | None) -> str:
    """utm_campaign: the name in ASCII words when it has some, always with the id so it is unique."""
    words = re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")[:60]
    return f"{words}-{campaign_id}" if words else f"campaign-{campaign_id}"


def with_utm(url: str, *, channel: str, campaign: str, content: str) -> str:
    """The URL with utm_source/medium/campaign/content added; parameters the URL already has are kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    for key, value in (("utm_source", "tutti"), ("utm_medium", channel), ("utm_campaign", campaign), ("utm_content", content)):
        if key not in present:
            query.append((key, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _delivery(db: Session, delivery_id: int):
    from tutti.reach.campaigns.models import Campaign, Delivery, Variant

    return db.execute(
        select(Delivery.workspace_id, Delivery.campaign_id, Delivery.variant_id, Delivery.contact_id, Delivery.channel,
               Campaign.name, Variant.name)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(Variant, Variant.id == Delivery.variant_id)
        .where(Delivery.id == delivery_id)
    ).first()


def follow(db: Session, *, code: str, user_agent: str | None = None) -> Followed | None:
    """Record a click on a short link and say where it leads; None for a code that is not ours."""
    decoded = codes.read_link_code(code)
    if decoded is None:
        return None
    delivery_id, position = decoded
    found = _delivery(db, delivery_id)
    if found is None:
        return None
    workspace_id, campaign_id, variant_id, contact_id, channel, campaign_name, variant_name = found
    link = db.execute(select(Link.id, Link.url).where(
        Link.workspace_id == workspace_id, Link.campaign_id == campaign_id, Link.variant_id == (variant_id or 0),
        Link.position == position)).first()
    if link is None:
        return None
    link_id, url = link
    live = db.scalar(select(Contact.merged_into_id).where(Contact.id == contact_id))
    contact_id = live or contact_id  # a merged person's clicks land on the contact they became
    now = utcnow()
    click = Click(workspace_id=workspace_id, link_id=link_id, delivery_id=delivery_id, contact_id=contact_id,
                  campaign_id=campaign_id, variant_id=variant_id, clicked_at=now, user_agent=(user_agent or "")[:300] or None)
    db.add(click)
    db.flush()
    events.record(db, workspace_id=workspace_id, events=[events.NewEvent(
        contact_id=contact_id, name=CLICK_EVENT, occurred_at=now, source="campaign", message_id=f"tutti-click-{click.id}",
        properties={"campaign_id": campaign_id, "campaign": campaign_name, "variant": variant_name, "channel": channel,
                    "url": url, "link_id": link_id, "delivery_id": delivery_id})])
    target = with_utm(url, channel=channel, campaign=campaign_slug(campaign_id, campaign_name),
                      content=variant_name or "default")
    return Followed(url=target, click_id=click.id)


def record_open(db: Session, *, code: str) -> bool:
    """Record an e-mail open from the pixel; False for a code that is not ours."""
    delivery_id = codes.read_open_code(code)
    if delivery_id is None:
        return False
    found = _delivery(db, delivery_id)
    if found is None:
        return False
    workspace_id, campaign_id, variant_id, contact_id, _channel, _name, _variant = found
    db.add(MessageOpen(workspace_id=workspace_id, delivery_id=delivery_id, contact_id=contact_id, campaign_id=campaign_id,
                       variant_id=variant_id, opened_at=utcnow()))
    return True


def unsubscribe(db: Session, *, token: str) -> tuple[int, int] | None:
    """Set the token's contact's e-mail consent to unsubscribed; (workspace id, contact id), or None."""
    decoded = codes.read_unsubscribe_token(token)
    if decoded is None:
        return None
    workspace_id, contact_id = decoded
    contact = db.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id or contact.erased_at is not None:
        return None
    contact_id = contact.merged_into_id or contact_id
    consent.set_consent(db, workspace_id=workspace_id, contact_id=contact_id, channel="email", status="unsubscribed",
                        source="unsubscribe_link")
    return workspace_id, contact_id
