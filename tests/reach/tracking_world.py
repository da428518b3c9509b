"""A sent campaign for tracking and report tests: contacts, a campaign with variants and a hold-out,
recipients and deliveries written straight into the campaign tables (as the sender would leave them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tutti.audience import commerce, contacts
from tutti.platform.audit import Actor
from tutti.platform.db import Database, utcnow
from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery, Variant

ACTOR = Actor.cli()


@dataclass
class Sent:
    workspace_id: int
    campaign_id: int
    variants: dict[str, int]  # name -> id
    started_at: datetime
    deliveries: dict[int, int] = field(default_factory=dict)  # contact id -> delivery id
    holdout: list[int] = field(default_factory=list)
    treated: dict[str, list[int]] = field(default_factory=dict)  # variant name -> contact ids


def make_contacts(database: Database, workspace_id: int, count: int, prefix: str = "p") -> list[int]:
    ids = []
    with database.session() as db:
        for index in range(count):
            contact, _ = contacts.upsert(db, workspace_id=workspace_id, actor=ACTOR,
                                         identities={"email": f"{prefix}{index}@example.com"}, profile={"name": f"{prefix} {index}"})
            ids.append(contact.id)
    return ids


def send_campaign(database: Database, workspace_id: int, *, variants: dict[str, list[int]], holdout: list[int],
                  started_at: datetime | None = None, channel: str = "line", failed: dict[int, str] | None = None,
                  name: str = "Spring Sale 春季", attribution_days: int = 7, costs: dict | None = None) -> Sent:
    started_at = started_at or utcnow() - timedelta(days=2)
    failed = failed or {}
    with database.session() as db:
        campaign = Campaign(workspace_id=workspace_id, name=name, status="sent", channels=[channel], holdout_percent=10,
                            attribution_days=attribution_days, costs=costs or {channel: 0.2}, key_namespace=uuid.uuid4().hex,
                            started_at=started_at, finished_at=started_at + timedelta(minutes=5),
                            recipients_count=sum(map(len, variants.values())) + len(holdout), holdout_count=len(holdout))
        db.add(campaign)
        db.flush()
        sent = Sent(workspace_id, campaign.id, {}, started_at, holdout=list(holdout), treated={k: list(v) for k, v in variants.items()})
        for position, (variant_name, members) in enumerate(variants.items()):
            variant = Variant(workspace_id=workspace_id, campaign_id=campaign.id, name=variant_name, position=position,
                              split_percent=100 / len(variants), content={})
            db.add(variant)
            db.flush()
            sent.variants[variant_name] = variant.id
            for contact_id in members:
                db.add(CampaignRecipient(campaign_id=campaign.id, contact_id=contact_id, workspace_id=workspace_id,
                                         variant_id=variant.id, is_holdout=False, channel=channel))
                reason = failed.get(contact_id)
                delivery = Delivery(workspace_id=workspace_id, campaign_id=campaign.id, variant_id=variant.id, contact_id=contact_id,
                                    channel=channel, address=f"U{contact_id:032x}", key=str(uuid.uuid4()),
                                    status="failed" if reason else "sent", error_reason=reason, error_code="400" if reason else None,
                                    created_at=started_at, sent_at=None if reason else started_at + timedelta(minutes=1))
                db.add(delivery)
                db.flush()
                sent.deliveries[contact_id] = delivery.id
        for contact_id in holdout:
            db.add(CampaignRecipient(campaign_id=campaign.id, contact_id=contact_id, workspace_id=workspace_id, variant_id=None,
                                     is_holdout=True, channel=channel))
    return sent


def order(database: Database, workspace_id: int, contact_id: int, at: datetime, total: float, status: str = "completed",
          external_id: str | None = None) -> None:
    with database.session() as db:
        commerce.record_orders(db, workspace_id=workspace_id, orders=[commerce.NewOrder(
            contact_id=contact_id, external_id=external_id or f"SO-{uuid.uuid4().hex[:10]}", placed_at=at, total=total, status=status)])
