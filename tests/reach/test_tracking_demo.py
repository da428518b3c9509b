"""The demo's templates and past campaign: the report page has true figures to show."""

from __future__ import annotations

from sqlalchemy import func, select

from tutti.audience import consent, contacts
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.reach.templates import service as templates
from tutti.reach.tracking import demo, reports
from tutti.reach.tracking.models import Click, Conversion


def test_the_demo_campaign_has_deliveries_clicks_conversions_and_lift(database, workspace_id):
    with database.session() as db:
        for index in range(600):
            person, _ = contacts.upsert(db, workspace_id=workspace_id, actor=Actor.cli(),
                                        identities={"line_uid": f"U{index:032x}"}, profile={"name": f"會員{index}"})
            consent.set_consent(db, workspace_id=workspace_id, contact_id=person.id, channel="line", status="subscribed", source="demo")
    steps = []
    demo.build(database, workspace_id=workspace_id, seed=42, today=utcnow().date(), contacts=600,
               report=lambda label, done, total: steps.append(done))
    assert steps[-1] == 4
    with database.session() as db:
        assert len(templates.list_templates(db, workspace_id=workspace_id)) == 6
        from tutti.reach.campaigns.models import Campaign

        campaign_id = db.scalar(select(Campaign.id).where(Campaign.workspace_id == workspace_id))
        report = reports.campaign_report(db, workspace_id=workspace_id, campaign_id=campaign_id)
        assert db.scalar(select(func.count()).select_from(Click)) > 0
        assert db.scalar(select(func.count()).select_from(Conversion).where(Conversion.attributed.is_(True))) > 0
    totals = report["totals"]
    assert 500 <= totals["audience"] <= 560 and 40 <= report["holdout"]["size"] <= 100
    assert totals["failed"] > 0 and totals["delivered"] + totals["failed"] == totals["sent"] == totals["audience"]
    assert totals["unique_clicks"] > 10 and totals["conversions"] > 0 and totals["revenue"] > 0
    assert {v["name"] for v in report["variants"]} == {"A 文字", "B 按鈕"}
    assert report["lift"]["treated"]["converters"] > 0 and report["lift"]["verdict"]["en"]
