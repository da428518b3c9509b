"""Headline numbers of a workspace for its home page. Each figure is one set-based COUNT/SUM over an
indexed range, so the page stays fast at a million contacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from tutti.audience.models import CHANNELS, Consent, Contact, Event, Order
from tutti.audience.profiles import COUNTED_STATUSES
from tutti.platform.db import utcnow


@dataclass(frozen=True)
class Period:
    orders: int
    revenue: float


@dataclass(frozen=True)
class Overview:
    contacts: int
    new_contacts_30d: int
    reachable: dict[str, int]  # channel -> contacts subscribed on it
    orders_30d: Period
    orders_prior_30d: Period
    events_7d: int


def overview(db: Session, *, workspace_id: int, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    month_ago, two_months_ago, week_ago = now - timedelta(days=30), now - timedelta(days=60), now - timedelta(days=7)
    live = (Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None), Contact.erased_at.is_(None))
    contacts, new_contacts = db.execute(
        select(func.count(), func.coalesce(func.sum(case((Contact.created_at >= month_ago, 1), else_=0)), 0)).select_from(Contact).where(*live)
    ).one()
    reachable = dict.fromkeys(CHANNELS, 0)
    reachable.update(db.execute(
        select(Consent.channel, func.count()).where(Consent.workspace_id == workspace_id, Consent.status == "subscribed")
        .group_by(Consent.channel)
    ).all())
    recent = Order.placed_at >= month_ago
    net = Order.total - Order.refunded_total
    row = db.execute(
        select(
            func.coalesce(func.sum(case((recent, 1), else_=0)), 0),
            func.coalesce(func.sum(case((recent, net), else_=0)), 0),
            func.coalesce(func.sum(case((recent, 0), else_=1)), 0),
            func.coalesce(func.sum(case((recent, 0), else_=net)), 0),
        ).where(Order.workspace_id == workspace_id, Order.placed_at >= two_months_ago, Order.placed_at < now,
                Order.status.in_(COUNTED_STATUSES))
    ).one()
    events = db.scalar(select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id, Event.occurred_at >= week_ago,
                                                                     Event.occurred_at < now))
    return Overview(
        contacts=contacts,
        new_contacts_30d=int(new_contacts),
        reachable=reachable,
        orders_30d=Period(orders=int(row[0]), revenue=float(row[1])),
        orders_prior_30d=Period(orders=int(row[2]), revenue=float(row[3])),
        events_7d=events,
    )
