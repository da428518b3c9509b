"""Conversions: orders within the window after a touch, one credited campaign per order (the latest touch,
clicks first), hold-out "would-be" conversions, and the report built on them."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select

from tests.conftest import bearer
from tests.reach.tracking_world import make_contacts, order, send_campaign
from tutti.platform.db import utcnow
from tutti.reach.templates import service as templates
from tutti.reach.tracking import conversions, links, reports
from tutti.reach.tracking.models import Conversion

LINE = {"messages": [{"type": "text", "text": "春季新品 https://shop.example/spring"}]}


def _world(client, database, workspace_id):
    people = make_contacts(database, workspace_id, 11)
    a, b, holdout = people[:4], people[4:8], people[8:]
    now = utcnow()
    first = send_campaign(database, workspace_id, variants={"A": a, "B": b}, holdout=holdout, started_at=now - timedelta(days=2),
                          failed={a[2]: "The user hasn't added the LINE Official Account as a friend."}, costs={"line": 0.5})
    second = send_campaign(database, workspace_id, variants={"only": [a[1]]}, holdout=[], started_at=now - timedelta(days=1),
                           name="Flash 快閃")
    with database.session() as db:
        rewriter = links.prepare(db, workspace_id=workspace_id, campaign_id=first.campaign_id, variant_id=first.variants["A"],
                                 payload=LINE)
    payload = rewriter.rewrite(templates.compile_content("line", LINE).render({}), first.deliveries[a[0]])
    code = re.search(r"/l/(\w+)", payload["messages"][0]["text"]).group(1)
    for _ in range(2):
        assert client.get(f"/l/{code}", follow_redirects=False).status_code == 302
    order(database, workspace_id, a[0], utcnow(), 500.0)  # after the click: credited to the click
    order(database, workspace_id, a[1], now - timedelta(hours=12), 300.0)  # latest touch: the second campaign's message
    order(database, workspace_id, a[2], now - timedelta(hours=12), 200.0)  # message failed: counts for lift only
    order(database, workspace_id, holdout[0], now - timedelta(hours=6), 250.0)  # the hold-out's would-be conversion
    order(database, workspace_id, b[0], now - timedelta(days=3), 999.0)  # before the campaign
    order(database, workspace_id, b[1], now - timedelta(hours=3), 999.0, status="cancelled")
    return first, second, a, b, holdout


def test_conversions_credit_one_campaign_per_order_and_measure_the_holdout(client, database, workspace_id):
    first, second, a, _b, holdout = _world(client, database, workspace_id)
    with database.session() as db:
        assert conversions.refresh(db, workspace_id=workspace_id) == 5
        assert conversions.refresh(db, workspace_id=workspace_id) == 5  # idempotent
    with database.session() as db:
        rows = {(r.campaign_id, r.contact_id): r for r in db.scalars(select(Conversion))}
    assert set(rows) == {(first.campaign_id, a[0]), (first.campaign_id, a[1]), (first.campaign_id, a[2]),
                         (first.campaign_id, holdout[0]), (second.campaign_id, a[1])}
    clicked = rows[(first.campaign_id, a[0])]
    assert (clicked.attributed, clicked.touch, clicked.revenue, clicked.variant_id) == (True, "click", 500.0, first.variants["A"])
    assert rows[(second.campaign_id, a[1])].attributed and rows[(second.campaign_id, a[1])].touch == "delivery"
    assert not rows[(first.campaign_id, a[1])].attributed and rows[(first.campaign_id, a[1])].in_window
    assert (rows[(first.campaign_id, a[2])].attributed, rows[(first.campaign_id, a[2])].touch) == (False, "send")
    kept = rows[(first.campaign_id, holdout[0])]
    assert kept.is_holdout and kept.variant_id is None and not kept.attributed and kept.touch == "send"


def test_the_report_per_variant_with_lift_and_csv(client, database, make_workspace):
    workspace_id, key, _ = make_workspace()
    first, *_ = _world(client, database, workspace_id)
    response = client.post(f"/api/v1/campaigns/{first.campaign_id}/report/refresh", headers=bearer(key))
    assert response.status_code == 200, response.text
    report = client.get(f"/api/v1/campaigns/{first.campaign_id}/report", headers=bearer(key)).json()
    assert report == {**response.json(), "computed_at": report["computed_at"]}
    variants = {v["name"]: v for v in report["variants"]}
    assert {k: variants["A"][k] for k in ("audience", "sent", "delivered", "failed", "clicks", "unique_clicks", "conversions", "revenue")} == \
        {"audience": 4, "sent": 4, "delivered": 3, "failed": 1, "clicks": 2, "unique_clicks": 1, "conversions": 1, "revenue": 500.0}
    assert variants["A"]["ctr"] == 1 / 3 and variants["A"]["cost"] == 1.5 and variants["A"]["roi"] == (500 - 1.5) / 1.5
    assert variants["B"]["conversions"] == 0 and variants["B"]["delivered"] == 4
    totals = report["totals"]
    assert totals["audience"] == 8 and totals["delivered"] == 7 and totals["revenue"] == 500.0 and totals["cost"] == 3.5
    assert totals["revenue_per_recipient"] == 500 / 8
    assert report["failed_reasons"] == [{"reason": "The user hasn't added the LINE Official Account as a friend.", "count": 1}]
    lift = report["lift"]
    assert lift["treated"]["converters"] == 3 and lift["treated"]["size"] == 8 and lift["treated"]["revenue"] == 1000.0
    assert lift["holdout"] == {"size": 3, "converters": 1, "conversion_rate": 1 / 3, "revenue": 250.0, "revenue_per_person": 250 / 3}
    assert lift["conversion"]["difference"] == 3 / 8 - 1 / 3
    assert lift["verdict"]["en"].startswith("Not significant: too few") and not lift["significant"]
    assert report["ab"]["metric"] == "conversion_rate" and report["ab"]["leader"] == "A" and report["ab"]["winner_id"] is None
    assert sum(p["clicks"] for p in report["series"]["points"]) == 2
    assert sum(p["conversions"] for p in report["series"]["points"]) == 1
    exported = client.get(f"/api/v1/campaigns/{first.campaign_id}/report.csv", headers=bearer(key))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][0] == "group" and rows[1][:3] == ["variant: A", "4", "4"]
    assert any(r and r[0] == "holdout" and r[1] == "3" for r in rows)
    assert client.get("/api/v1/campaigns/999999/report", headers=bearer(key)).status_code == 404


def test_a_campaign_that_has_not_started_reports_zeros(database, workspace_id):
    from tutti.reach.campaigns.models import Campaign

    with database.session() as db:
        campaign = Campaign(workspace_id=workspace_id, name="draft", key_namespace="0" * 32)
        db.add(campaign)
        db.flush()
        report = reports.campaign_report(db, workspace_id=workspace_id, campaign_id=campaign.id)
    assert report["totals"]["sent"] == 0 and report["lift"]["conversion"] is None and report["series"]["points"] == []
    assert "No hold-out" in report["lift"]["verdict"]["en"]
