"""The campaign report page: KPI cards, clicks and conversions over time (Chart.js), the variant table,
lift against the hold-out with its interval and verdict, the A/B winner and a CSV export."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from tutti.platform.errors import TuttiError
from tutti.reach.tracking import conversions, reports
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)


def _report(ui: UiContext, campaign_id: int) -> dict:
    try:
        return reports.campaign_report(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
    except TuttiError:
        raise PageError(404, "reports.not_found") from None


@router.get("/campaigns/{campaign_id}/report")
def report_page(campaign_id: int, ui: UiContext = page_context):
    ui.require("campaigns.read")
    report = _report(ui, campaign_id)
    return render(ui, "reports/report.html", report=report, verdict_key="zh-TW" if ui.locale == "zh-TW" else "en")


@router.get("/campaigns/{campaign_id}/report.csv")
def report_csv(campaign_id: int, ui: UiContext = page_context):
    ui.require("campaigns.read")
    return Response(reports.report_csv(_report(ui, campaign_id)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}-report.csv"'})


@router.post("/campaigns/{campaign_id}/report/refresh")
def refresh(campaign_id: int, ui: UiContext = page_context):
    ui.require("campaigns.read")
    _report(ui, campaign_id)
    conversions.refresh_campaign(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
    return RedirectResponse(f"/campaigns/{campaign_id}/report", status_code=303)
