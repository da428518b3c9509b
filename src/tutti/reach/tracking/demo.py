"""Demo content of templates and tracking: a few templates per channel, and a past LINE campaign (two
variants, a 10% hold-out) with its deliveries, clicks and the purchases that followed, so the report page
has something true to show on the demo brand. Everything is written set-based (INSERT … SELECT for
recipients and deliveries, batched inserts for clicks and orders); the conversions are then computed by
the same job that computes them for real campaigns."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import String, and_, case, cast, func, insert, literal, select

from tutti.audience.models import Consent, Event, Identity, Order
from tutti.platform.audit import Actor
from tutti.platform.db import Database
from tutti.reach.templates import examples
from tutti.reach.templates import service as templates
from tutti.reach.tracking import conversions, links
from tutti.reach.tracking.models import Click

CAMPAIGN_NAME = "春季新品 8 折 Spring sale"
DAYS_AGO = 9
FAILED_REASON = "The user hasn't added the LINE Official Account as a friend."
BATCH = 5000

VARIANTS = {
    "A 文字": {"messages": [{"type": "text", "text": "{{ first_name | default('朋友') }}您好！春季新品 8 折，只到週日 👉 https://shop.example.com/spring?from=line"}]},
    "B 按鈕": {"messages": [{"type": "template", "altText": "春季新品 8 折", "template": {
        "type": "buttons", "thumbnailImageUrl": "https://shop.example.com/img/spring.jpg", "title": "春季新品 8 折",
        "text": "{{ first_name | default('朋友') }}，只到週日", "actions": [
            {"type": "uri", "label": "立即選購", "uri": "https://shop.example.com/spring?from=line"},
            {"type": "uri", "label": "看新品", "uri": "https://shop.example.com/new"}]}}]},
}
CLICK_PERCENT = {"A 文字": 6, "B 按鈕": 10}
BUY_PERCENT_OF_CLICKERS = 22


def _templates(database: Database, workspace_id: int) -> None:
    actor = Actor.cli()
    made = [
        ("春季新品 LINE 文字", "line", {"messages": [examples.LINE_EXAMPLES["text"]]}),
        ("春季新品 LINE 按鈕", "line", {"messages": [examples.LINE_EXAMPLES["buttons"]]}),
        ("會員點數 Flex", "line", {"messages": [examples.LINE_EXAMPLES["flex"], examples.LINE_EXAMPLES["quick_reply"]]}),
        ("本週精選輪播", "line", {"messages": [examples.LINE_EXAMPLES["carousel"]]}),
        ("春季新品電子報", "email", examples.STARTERS["email"]),
        ("春季新品簡訊", "sms", examples.STARTERS["sms"]),
    ]
    with database.session() as db:
        for name, channel, content in made:
            templates.create_template(db, workspace_id=workspace_id, name=name, channel=channel, content=content, actor=actor)


def build(database: Database, *, workspace_id: int, seed: int, today: date, contacts: int, report) -> None:
    from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery, Variant

    report("訊息範本與活動成效 templates and a campaign report", 0, 4)
    _templates(database, workspace_id)
    rng = random.Random(seed * 7 + 3)
    started = datetime.combine(today - timedelta(days=DAYS_AGO), time(11, 0), tzinfo=UTC)  # 19:00 in Taipei
    with database.session() as db:
        namespace = uuid.UUID(int=rng.getrandbits(128)).hex
        campaign = Campaign(workspace_id=workspace_id, name=CAMPAIGN_NAME, status="sent", channels=["line"], holdout_percent=10,
                            attribution_days=7, costs={"line": 0.2}, key_namespace=namespace, audience={"demo": True},
                            created_at=started - timedelta(days=1), snapshot_at=started, started_at=started,
                            finished_at=started + timedelta(minutes=18))
        db.add(campaign)
        db.flush()
        variant_ids = {}
        for position, (name, content) in enumerate(VARIANTS.items()):
            variant = Variant(workspace_id=workspace_id, campaign_id=campaign.id, name=name, position=position, split_percent=50,
                              content={"line": content})
            db.add(variant)
            db.flush()
            variant_ids[name] = variant.id
        a_id, b_id = variant_ids.values()
        # who: LINE friends, in a stable pseudo-random order by id; 10% hold-out, the rest split A/B
        # contact ids counted from the workspace's first, so a rebuilt brand (new ids) picks the same people
        base = db.scalar(select(func.min(Consent.contact_id)).where(Consent.workspace_id == workspace_id)) or 0
        bucket = ((Consent.contact_id - base) * 7919 + seed) % 100
        friends = (select(Consent.contact_id, bucket.label("bucket"))
                   .where(Consent.workspace_id == workspace_id, Consent.channel == "line", Consent.status == "subscribed")
                   .subquery())
        variant_of = case((friends.c.bucket < 10, None), (friends.c.bucket < 55, a_id), else_=b_id)
        db.execute(insert(CampaignRecipient).from_select(
            ["campaign_id", "contact_id", "workspace_id", "variant_id", "is_holdout", "channel"],
            select(literal(campaign.id), friends.c.contact_id, literal(workspace_id), variant_of, friends.c.bucket < 10, literal("line"))))
        report("訊息範本與活動成效 templates and a campaign report", 1, 4)
        failed = ((CampaignRecipient.contact_id - base) % 37) == 0
        db.execute(insert(Delivery).from_select(
            ["workspace_id", "campaign_id", "variant_id", "contact_id", "channel", "address", "key", "status", "attempts",
             "error_code", "error_reason", "created_at", "sent_at"],
            select(literal(workspace_id), literal(campaign.id), CampaignRecipient.variant_id, CampaignRecipient.contact_id,
                   literal("line"), Identity.value, literal(namespace[:20] + "-") + cast(CampaignRecipient.contact_id, String(20)),
                   case((failed, "failed"), else_="sent"), literal(1), case((failed, "400"), else_=None),
                   case((failed, FAILED_REASON), else_=None), literal(started), case((failed, None), else_=literal(started + timedelta(minutes=5))))
            .join(Identity, and_(Identity.contact_id == CampaignRecipient.contact_id, Identity.kind == "line_uid"))
            .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.is_holdout.is_(False))))
        counts = dict(db.execute(select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign.id).group_by(Delivery.status)).all())
        campaign.recipients_count = db.scalar(select(func.count()).select_from(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id)) or 0
        campaign.holdout_count = db.scalar(select(func.count()).select_from(CampaignRecipient).where(
            CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.is_holdout.is_(True))) or 0
        campaign.deliveries_count = sum(counts.values())
        campaign.sent_count, campaign.failed_count = counts.get("sent", 0), counts.get("failed", 0)

        rewriters = {name: links.prepare(db, workspace_id=workspace_id, campaign_id=campaign.id, variant_id=variant_ids[name],
                                         payload=content, channel="line") for name, content in VARIANTS.items()}
        report("訊息範本與活動成效 templates and a campaign report", 2, 4)
        delivered = db.execute(select(Delivery.id, Delivery.contact_id, Delivery.variant_id).where(
            Delivery.campaign_id == campaign.id, Delivery.status == "sent").order_by(Delivery.contact_id)).all()
        names = {v: k for k, v in variant_ids.items()}
        clicks, orders = [], []
        for delivery_id, contact_id, variant_id in delivered:
            name = names[variant_id]
            if rng.random() * 100 >= CLICK_PERCENT[name]:
                continue
            positions = sorted(rewriters[name].link_ids)
            at = started + timedelta(minutes=5 + int(rng.expovariate(1 / 180)))
            for _ in range(1 + (rng.random() < 0.3)):  # some people click twice
                position = rng.choice(positions)
                clicks.append({"workspace_id": workspace_id, "link_id": rewriters[name].link_ids[position], "delivery_id": delivery_id,
                               "contact_id": contact_id, "campaign_id": campaign.id, "variant_id": variant_id, "clicked_at": at,
                               "user_agent": "Line/14.0 demo"})
                at += timedelta(minutes=rng.randint(1, 90))
            if rng.random() * 100 < BUY_PERCENT_OF_CLICKERS:
                orders.append({"workspace_id": workspace_id, "contact_id": contact_id, "external_id": f"DEMO-SPRING-{contact_id - base}",
                               "status": "completed", "currency": "TWD", "total": float(rng.choice([480, 680, 880, 1280, 1580, 2360])),
                               "subtotal": None, "discount": 0, "shipping": 0, "tax": 0, "refunded_total": 0, "channel": "line",
                               "placed_at": at + timedelta(minutes=rng.randint(3, 60 * 36)), "updated_at": at, "properties": {"demo": "spring"}})
        for start in range(0, len(clicks), BATCH):
            db.execute(insert(Click), clicks[start:start + BATCH])
        # each purchase also arrives as the shop's Order Completed event, as it would through the tracking API
        events = [{"workspace_id": workspace_id, "contact_id": o["contact_id"], "kind": "track", "name": "Order Completed",
                   "occurred_at": o["placed_at"], "received_at": o["placed_at"], "source": "demo", "context": None,
                   "message_id": f"demo-{o['external_id']}",
                   "properties": {"order_id": o["external_id"], "total": o["total"], "revenue": o["total"], "currency": "TWD",
                                  "channel": "line", "products": []}} for o in orders]
        for start in range(0, len(orders), BATCH):
            db.execute(insert(Order), orders[start:start + BATCH])
            db.execute(insert(Event), events[start:start + BATCH])
        report("訊息範本與活動成效 templates and a campaign report", 3, 4)
        conversions.refresh(db, workspace_id=workspace_id, since=started)
    report("訊息範本與活動成效 templates and a campaign report", 4, 4)
