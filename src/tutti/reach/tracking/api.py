"""REST API of campaign reports (same /api/v1/campaigns prefix as the campaigns router, kept apart so
each area owns its routes). Permission: campaigns.read."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.schemas import ERROR_RESPONSES, IdPath
from tutti.reach.tracking import conversions, reports

router = APIRouter(tags=["campaign reports"], responses=ERROR_RESPONSES)
READ = allowed("campaigns.read")


@router.get("/campaigns/{campaign_id}/report")
def campaign_report(campaign_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """Audience, sent, delivered, failed by reason, clicks (total and unique), CTR, opens, conversions,
    revenue, cost, ROI per variant and in total; lift against the hold-out (conversion rate and revenue per
    person, 95% intervals, a verdict in English and zh-TW); the A/B winner; clicks and conversions over time.
    Conversions are recomputed every minute while the attribution window is open (or now: POST …/report/refresh)."""
    return reports.campaign_report(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id)


@router.get("/campaigns/{campaign_id}/report.csv")
def campaign_report_csv(campaign_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> Response:
    """The report as CSV: one row per variant, the total, the hold-out, then the lift figures."""
    report = reports.campaign_report(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id)
    return Response(reports.report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'})


@router.post("/campaigns/{campaign_id}/report/refresh")
def refresh_report(campaign_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """Recompute conversions now (idempotent) and answer the fresh report."""
    reports.campaign_report(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id)  # 404 for another workspace's id
    conversions.refresh_campaign(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id)
    db.flush()
    return reports.campaign_report(db, workspace_id=ctx.workspace_id, campaign_id=campaign_id)
