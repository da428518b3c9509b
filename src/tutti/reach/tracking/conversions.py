"""Conversions: orders placed within a campaign's attribution window, with their revenue.

For every campaign recipient — treated or hold-out — an order counts for the campaign when it was placed
within `attribution_days` after the campaign started sending (`in_window`): the same rule for both groups,
so lift against the hold-out compares like with like. Separately, each order is credited (`attributed`)
to exactly one campaign: the latest touch before it within that campaign's window — the latest click if
there is one, else the latest delivered message. Cancelled and refunded orders never count; revenue is the
order total less refunds.

`refresh` recomputes everything from a point in time on, set-based: three reading queries (orders with
their campaigns, clicks before them, deliveries before them), a delete and batched inserts. It is
idempotent, so the tick and the "refresh" button can run it whenever they like.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from tutti.audience.models import Order
from tutti.platform.db import utcnow
from tutti.reach.tracking.models import Click, Conversion

EXCLUDED_STATUSES = ("cancelled", "refunded")
BATCH = 2000


def _campaign_tables():
    from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery

    return Campaign, CampaignRecipient, Delivery


def longest_window(db: Session, *, workspace_id: int) -> int:
    Campaign, _, _ = _campaign_tables()
    return int(db.scalar(select(func.max(Campaign.attribution_days)).where(Campaign.workspace_id == workspace_id)) or 7)


def refresh(db: Session, *, workspace_id: int, since: datetime | None = None) -> int:
    """Recompute the conversions of orders placed at or after `since` (default: the longest window plus a
    day ago). Returns how many conversion rows there are now for that period."""
    Campaign, CampaignRecipient, Delivery = _campaign_tables()
    days = longest_window(db, workspace_id=workspace_id)
    since = since or utcnow() - timedelta(days=days + 1)
    # a campaign that started up to two windows back can still be credited: a click late in its window
    # opens a window of its own
    lookback = since - timedelta(days=2 * days)
    order_filter = and_(Order.workspace_id == workspace_id, Order.placed_at >= since, Order.status.notin_(EXCLUDED_STATUSES))

    rows: dict[tuple[int, int], dict] = {}
    windows = db.execute(
        select(CampaignRecipient.campaign_id, CampaignRecipient.variant_id, CampaignRecipient.is_holdout,
               CampaignRecipient.contact_id, Order.id, Order.placed_at, Order.total, Order.refunded_total, Order.currency,
               Campaign.started_at, Campaign.attribution_days)
        .join(CampaignRecipient, and_(CampaignRecipient.workspace_id == Order.workspace_id,
                                      CampaignRecipient.contact_id == Order.contact_id))
        .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
        .where(order_filter, Campaign.started_at.is_not(None), Campaign.started_at <= Order.placed_at,
               Campaign.started_at >= lookback)
    )
    orders: dict[int, tuple] = {}
    campaign_days: dict[int, int] = {}
    for campaign_id, variant_id, is_holdout, contact_id, order_id, placed_at, total, refunded, currency, started_at, window in windows:
        orders[order_id] = (contact_id, placed_at, max(0.0, float(total or 0) - float(refunded or 0)), currency)
        campaign_days[campaign_id] = window
        if placed_at < started_at + timedelta(days=window):
            rows[(campaign_id, order_id)] = {
                "campaign_id": campaign_id, "variant_id": variant_id, "is_holdout": bool(is_holdout), "in_window": True,
                "attributed": False, "touch": "send", "delivery_id": None, "touched_at": started_at}

    # touches: the latest click, else the latest delivered message, before the order within the window
    best: dict[int, tuple] = {}  # order id -> (rank, touched_at, campaign_id, variant_id, delivery_id, kind)
    touch_queries = (
        ("click", select(Click.campaign_id, Click.variant_id, Click.delivery_id, Click.clicked_at, Order.id, Campaign.attribution_days)
         .join(Order, and_(Order.workspace_id == Click.workspace_id, Order.contact_id == Click.contact_id))
         .join(Campaign, Campaign.id == Click.campaign_id)
         .where(order_filter, Click.workspace_id == workspace_id, Click.clicked_at <= Order.placed_at, Click.clicked_at >= lookback)),
        ("delivery", select(Delivery.campaign_id, Delivery.variant_id, Delivery.id, Delivery.sent_at, Order.id, Campaign.attribution_days)
         .join(Order, and_(Order.workspace_id == Delivery.workspace_id, Order.contact_id == Delivery.contact_id))
         .join(Campaign, Campaign.id == Delivery.campaign_id)
         .where(order_filter, Delivery.workspace_id == workspace_id, Delivery.status == "sent",
                Delivery.sent_at <= Order.placed_at, Delivery.sent_at >= lookback)),
    )
    for kind, query in touch_queries:
        rank = 1 if kind == "click" else 0
        for campaign_id, variant_id, delivery_id, touched_at, order_id, window in db.execute(query):
            if order_id not in orders:
                continue  # the order's person is not (or no longer) a recipient of that campaign
            if orders[order_id][1] >= touched_at + timedelta(days=window):
                continue
            candidate = (rank, touched_at, campaign_id, variant_id, delivery_id, kind)
            if order_id not in best or candidate[:2] > best[order_id][:2]:
                best[order_id] = candidate
    for order_id, (_, touched_at, campaign_id, variant_id, delivery_id, kind) in best.items():
        row = rows.get((campaign_id, order_id))
        if row is None:  # a click after the campaign's own window: credited, but not part of lift
            row = rows[(campaign_id, order_id)] = {"campaign_id": campaign_id, "variant_id": variant_id, "is_holdout": False,
                                                   "in_window": False}
        row.update(attributed=True, touch=kind, delivery_id=delivery_id, touched_at=touched_at)

    db.execute(delete(Conversion).where(Conversion.workspace_id == workspace_id, Conversion.converted_at >= since))
    now = utcnow()
    inserts = []
    for (campaign_id, order_id), row in rows.items():
        contact_id, placed_at, revenue, currency = orders[order_id]
        inserts.append({**row, "workspace_id": workspace_id, "contact_id": contact_id, "order_id": order_id,
                        "converted_at": placed_at, "revenue": round(revenue, 2), "currency": currency, "computed_at": now})
    for start in range(0, len(inserts), BATCH):
        db.execute(Conversion.__table__.insert(), inserts[start:start + BATCH])
    return len(inserts)


def refresh_campaign(db: Session, *, workspace_id: int, campaign_id: int) -> int:
    """On demand for one campaign: every order since it started (other campaigns' credit is recomputed too,
    since an order goes to one campaign only)."""
    Campaign, _, _ = _campaign_tables()
    started = db.scalar(select(Campaign.started_at).where(Campaign.workspace_id == workspace_id, Campaign.id == campaign_id))
    if started is None:
        return 0
    return refresh(db, workspace_id=workspace_id, since=started)


def workspaces_in_window(db: Session) -> list[int]:
    """Workspaces with a campaign whose attribution window is still open (or closed within a day)."""
    Campaign, _, _ = _campaign_tables()
    now = utcnow()
    rows = db.execute(select(Campaign.workspace_id, Campaign.started_at, Campaign.attribution_days)
                      .where(Campaign.started_at.is_not(None), Campaign.started_at >= now - timedelta(days=91)))
    return sorted({w for w, started, days in rows if started + timedelta(days=(days or 7) + 1) >= now})
