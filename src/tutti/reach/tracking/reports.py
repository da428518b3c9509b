"""Campaign reports: per campaign and per variant, what was sent, what happened, what it earned, and what
it changed compared with the hold-out.

Definitions (the docs repeat them):
- audience: recipients chosen when the campaign started (treated + hold-out); sent: deliveries attempted
  (accepted or failed); delivered: accepted by the provider; failed: refused, by reason;
- clicks: every click (total) and people who clicked (unique); CTR = unique clickers / delivered;
  opens (e-mail): people who loaded the pixel;
- conversions / revenue: orders credited to this campaign (latest touch); conversion rate = people with a
  credited order / delivered; revenue per recipient = revenue / treated recipients;
- cost = delivered × the campaign's price per message of the channel; ROI = (revenue − cost) / cost;
- lift: treated recipients (all, whether or not the message arrived: intent to treat) against the
  hold-out, both measured as "ordered within the attribution window after the send". Conversion rate by a
  two-proportion z-test, revenue per person by Welch's t-test, each with a 95% interval.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutti.platform.db import utcnow
from tutti.platform.errors import NotFound
from tutti.platform.models import Workspace
from tutti.reach.tracking import stats
from tutti.reach.tracking.models import Click, Conversion, MessageOpen

MIN_GROUP = 30  # fewer people than this in a group: no verdict
MIN_CONVERSIONS = 5  # fewer conversions than this in both groups together: no verdict
ALPHA = 0.05


def _tables():
    from tutti.reach.campaigns.models import Campaign, CampaignRecipient, Delivery, Variant

    return Campaign, CampaignRecipient, Delivery, Variant


def _empty() -> dict:
    return {"audience": 0, "sent": 0, "delivered": 0, "failed": 0, "queued": 0, "cancelled": 0, "clicks": 0, "unique_clicks": 0,
            "opens": 0, "conversions": 0, "converters": 0, "revenue": 0.0, "cost": 0.0}


def _ratios(m: dict) -> dict:
    delivered = m["delivered"]
    m["ctr"] = m["unique_clicks"] / delivered if delivered else None
    m["open_rate"] = m["opens"] / delivered if delivered else None
    m["conversion_rate"] = m["converters"] / delivered if delivered else None
    m["revenue_per_recipient"] = m["revenue"] / m["audience"] if m["audience"] else None
    m["roi"] = (m["revenue"] - m["cost"]) / m["cost"] if m["cost"] else None
    m["revenue"] = round(m["revenue"], 2)
    m["cost"] = round(m["cost"], 2)
    return m


def campaign_report(db: Session, *, workspace_id: int, campaign_id: int) -> dict:
    Campaign, CampaignRecipient, Delivery, Variant = _tables()
    campaign = db.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != workspace_id:
        raise NotFound(f"no campaign {campaign_id} in this workspace", field="campaign_id")
    workspace = db.get(Workspace, workspace_id)
    variants = list(db.execute(select(Variant.id, Variant.name).where(Variant.campaign_id == campaign_id)
                               .order_by(Variant.position, Variant.id)))
    groups: dict[int | None, dict] = {variant_id: _empty() for variant_id, _ in variants}
    holdout_size = 0
    treated_size = 0

    for variant_id, is_holdout, count in db.execute(
            select(CampaignRecipient.variant_id, CampaignRecipient.is_holdout, func.count())
            .where(CampaignRecipient.campaign_id == campaign_id).group_by(CampaignRecipient.variant_id, CampaignRecipient.is_holdout)):
        if is_holdout:
            holdout_size += count
        else:
            treated_size += count
            groups.setdefault(variant_id, _empty())["audience"] += count

    prices = {k: float(v or 0) for k, v in (campaign.costs or {}).items()}
    failed_reasons: dict[str, int] = defaultdict(int)
    for variant_id, status, channel, reason, count in db.execute(
            select(Delivery.variant_id, Delivery.status, Delivery.channel,
                   func.coalesce(Delivery.error_reason, Delivery.error_code), func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.variant_id, Delivery.status, Delivery.channel, func.coalesce(Delivery.error_reason, Delivery.error_code))):
        group = groups.setdefault(variant_id, _empty())
        if status == "sent":
            group["sent"] += count
            group["delivered"] += count
            group["cost"] += count * prices.get(channel, 0.0)
        elif status == "failed":
            group["sent"] += count
            group["failed"] += count
            failed_reasons[reason or "unknown"] += count
        elif status == "cancelled":
            group["cancelled"] += count
        else:
            group["queued"] += count

    for variant_id, total, unique in db.execute(
            select(Click.variant_id, func.count(), func.count(func.distinct(Click.contact_id)))
            .where(Click.workspace_id == workspace_id, Click.campaign_id == campaign_id).group_by(Click.variant_id)):
        group = groups.setdefault(variant_id, _empty())
        group["clicks"] += total
        group["unique_clicks"] += unique
    for variant_id, unique in db.execute(
            select(MessageOpen.variant_id, func.count(func.distinct(MessageOpen.contact_id)))
            .where(MessageOpen.workspace_id == workspace_id, MessageOpen.campaign_id == campaign_id).group_by(MessageOpen.variant_id)):
        groups.setdefault(variant_id, _empty())["opens"] += unique
    for variant_id, count, people, revenue in db.execute(
            select(Conversion.variant_id, func.count(), func.count(func.distinct(Conversion.contact_id)), func.sum(Conversion.revenue))
            .where(Conversion.workspace_id == workspace_id, Conversion.campaign_id == campaign_id, Conversion.attributed.is_(True))
            .group_by(Conversion.variant_id)):
        group = groups.setdefault(variant_id, _empty())
        group["conversions"] += count
        group["converters"] += people
        group["revenue"] += float(revenue or 0)

    total = _empty()
    for group in groups.values():
        for key in total:
            total[key] += group[key]
    # people are counted once across variants
    total["unique_clicks"] = db.scalar(select(func.count(func.distinct(Click.contact_id)))
                                       .where(Click.workspace_id == workspace_id, Click.campaign_id == campaign_id)) or 0
    total["audience"] = treated_size
    names = dict(variants)
    variant_rows = [{"id": variant_id, "name": names.get(variant_id, "—"), **_ratios(dict(m))}
                    for variant_id, m in groups.items() if variant_id is not None or any(m.values())]

    lift, holdout = _lift(db, workspace_id=workspace_id, campaign_id=campaign_id, treated=treated_size, holdout=holdout_size)
    return {
        "campaign": {"id": campaign.id, "name": campaign.name, "status": campaign.status, "channels": campaign.channels,
                     "started_at": campaign.started_at, "finished_at": campaign.finished_at,
                     "attribution_days": campaign.attribution_days, "currency": workspace.currency if workspace else "TWD",
                     "costs": prices},
        "totals": _ratios(total),
        "variants": variant_rows,
        "holdout": holdout,
        "failed_reasons": [{"reason": r, "count": c} for r, c in sorted(failed_reasons.items(), key=lambda item: -item[1])],
        "lift": lift,
        "ab": _winner(variant_rows),
        "series": _series(db, workspace_id=workspace_id, campaign=campaign, zone=workspace.timezone if workspace else "UTC"),
        "computed_at": db.scalar(select(func.max(Conversion.computed_at)).where(
            Conversion.workspace_id == workspace_id, Conversion.campaign_id == campaign_id)),
    }


def _lift(db: Session, *, workspace_id: int, campaign_id: int, treated: int, holdout: int) -> tuple[dict, dict]:
    per_person: dict[bool, list[float]] = {True: [], False: []}
    for is_holdout, _contact, revenue in db.execute(
            select(Conversion.is_holdout, Conversion.contact_id, func.sum(Conversion.revenue))
            .where(Conversion.workspace_id == workspace_id, Conversion.campaign_id == campaign_id, Conversion.in_window.is_(True))
            .group_by(Conversion.is_holdout, Conversion.contact_id)):
        per_person[bool(is_holdout)].append(float(revenue or 0))
    x1, x0 = len(per_person[False]), len(per_person[True])
    r1, r0 = sum(per_person[False]), sum(per_person[True])
    holdout_row = {"size": holdout, "converters": x0, "conversion_rate": x0 / holdout if holdout else None, "revenue": round(r0, 2),
                   "revenue_per_person": r0 / holdout if holdout else None}
    treated_row = {"size": treated, "converters": x1, "conversion_rate": x1 / treated if treated else None, "revenue": round(r1, 2),
                   "revenue_per_person": r1 / treated if treated else None}
    conversion = stats.two_proportions(x1, treated, x0, holdout)
    revenue = stats.welch(treated, r1, sum(v * v for v in per_person[False]), holdout, r0, sum(v * v for v in per_person[True]))
    lift = {"treated": treated_row, "holdout": holdout_row,
            "conversion": conversion.as_dict() if conversion else None, "revenue": revenue.as_dict() if revenue else None}
    lift["verdict"] = verdict(treated=treated, holdout=holdout, conversions=x1 + x0, test=conversion)
    lift["significant"] = lift["verdict"]["significant"]
    return lift, holdout_row


def _pct(value: float) -> str:
    return f"{value * 100:+.2f}"


def verdict(*, treated: int, holdout: int, conversions: int, test: stats.ProportionTest | None) -> dict:
    """Plain words about the conversion lift, in English and zh-TW."""
    if holdout == 0:
        return {"significant": False, "en": "No hold-out: lift cannot be measured for this campaign.",
                "zh-TW": "此活動沒有保留組，無法衡量成效提升。"}
    if min(treated, holdout) < MIN_GROUP or conversions < MIN_CONVERSIONS or test is None or test.p_value is None:
        return {"significant": False,
                "en": f"Not significant: too few people or conversions to tell yet ({holdout} in the hold-out, {conversions} conversions; "
                      f"at least {MIN_GROUP} per group and {MIN_CONVERSIONS} conversions are needed).",
                "zh-TW": f"不顯著：人數或轉換數太少，尚無法判斷（保留組 {holdout} 人、共 {conversions} 筆轉換；"
                         f"每組至少需 {MIN_GROUP} 人、共 {MIN_CONVERSIONS} 筆轉換）。"}
    interval = f"{_pct(test.ci_low)} to {_pct(test.ci_high)} points"
    interval_zh = f"{_pct(test.ci_low)} 至 {_pct(test.ci_high)} 個百分點"
    if test.p_value < ALPHA:
        direction = "more" if test.difference > 0 else "fewer"
        direction_zh = "提升" if test.difference > 0 else "下降"
        return {"significant": True,
                "en": f"Significant at 95%: {test.rate_treated:.2%} of recipients converted against {test.rate_control:.2%} of the hold-out "
                      f"({_pct(test.difference)} points, 95% CI {interval}; p = {test.p_value:.3f}): the campaign brought {direction} buyers.",
                "zh-TW": f"在 95% 信心水準下顯著：收到訊息者轉換率 {test.rate_treated:.2%}，保留組 {test.rate_control:.2%}"
                         f"（差 {_pct(test.difference)} 個百分點，95% 信賴區間 {interval_zh}；p = {test.p_value:.3f}），活動使購買人數{direction_zh}。"}
    return {"significant": False,
            "en": f"Not significant: {test.rate_treated:.2%} converted against {test.rate_control:.2%} in the hold-out; the 95% CI "
                  f"({interval}) includes zero (p = {test.p_value:.3f}).",
            "zh-TW": f"不顯著：收到訊息者轉換率 {test.rate_treated:.2%}，保留組 {test.rate_control:.2%}；95% 信賴區間"
                     f"（{interval_zh}）包含零（p = {test.p_value:.3f}）。"}


def _winner(variant_rows: list[dict]) -> dict | None:
    """The A/B winner: the best variant against the runner-up, by conversion rate (by CTR while nothing
    has converted yet), with a two-proportion test."""
    rows = [r for r in variant_rows if r["id"] is not None and r["delivered"]]
    if len(rows) < 2:
        return None
    metric = "conversion_rate" if sum(r["converters"] for r in rows) else "ctr"
    count = "converters" if metric == "conversion_rate" else "unique_clicks"
    ranked = sorted(rows, key=lambda r: (r[metric] or 0), reverse=True)
    best, second = ranked[0], ranked[1]
    test = stats.two_proportions(best[count], best["delivered"], second[count], second["delivered"])
    significant = bool(test and test.p_value is not None and test.p_value < ALPHA)
    p_text = f"p = {test.p_value:.3f}" if test and test.p_value is not None else "no difference yet"
    label = {"conversion_rate": ("conversion rate", "轉換率"), "ctr": ("click-through rate", "點擊率")}[metric]
    if significant:
        en = f"{best['name']} wins on {label[0]} ({best[metric]:.2%} against {second[metric]:.2%} for {second['name']}; {p_text})."
        zh = f"{best['name']} 勝出（{label[1]} {best[metric]:.2%}，{second['name']} 為 {second[metric]:.2%}；{p_text}）。"
    else:
        en = f"No clear winner yet: {best['name']} leads on {label[0]} ({(best[metric] or 0):.2%} against {(second[metric] or 0):.2%}) but not significantly ({p_text})."
        zh = f"尚無明確勝出者：{best['name']} 的{label[1]}領先（{(best[metric] or 0):.2%} 對 {(second[metric] or 0):.2%}），但差異不顯著（{p_text}）。"
    return {"metric": metric, "winner_id": best["id"] if significant else None, "leader_id": best["id"], "leader": best["name"],
            "runner_up": second["name"], "p_value": test.p_value if test else None, "significant": significant, "en": en, "zh-TW": zh}


def _series(db: Session, *, workspace_id: int, campaign, zone: str) -> dict:
    """Clicks and conversions per hour for the first three days, per day after that (workspace time)."""
    if campaign.started_at is None:
        return {"unit": "hour", "points": []}
    try:
        tz = ZoneInfo(zone)
    except Exception:  # noqa: BLE001 - an unknown zone name falls back to UTC rather than breaking the report
        tz = ZoneInfo("UTC")
    end = max(utcnow(), campaign.started_at)
    unit = "hour" if end - campaign.started_at <= timedelta(days=3) else "day"
    clicks = db.execute(select(Click.clicked_at).where(Click.workspace_id == workspace_id, Click.campaign_id == campaign.id))
    conversions = db.execute(select(Conversion.converted_at, Conversion.revenue).where(
        Conversion.workspace_id == workspace_id, Conversion.campaign_id == campaign.id, Conversion.attributed.is_(True)))

    def bucket(at: datetime) -> str:
        local = at.astimezone(tz)
        return local.strftime("%Y-%m-%d %H:00") if unit == "hour" else local.strftime("%Y-%m-%d")

    points: dict[str, dict] = {}
    cursor = campaign.started_at.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        cursor = cursor.replace(hour=0)
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    limit = min(end.astimezone(tz), campaign.started_at.astimezone(tz) + timedelta(days=max(campaign.attribution_days or 7, 3) + 1))
    while cursor <= limit and len(points) < 400:
        points[bucket(cursor.astimezone(UTC))] = {"clicks": 0, "conversions": 0, "revenue": 0.0}
        cursor += step
    for (at,) in clicks:
        points.setdefault(bucket(at), {"clicks": 0, "conversions": 0, "revenue": 0.0})["clicks"] += 1
    for at, revenue in conversions:
        point = points.setdefault(bucket(at), {"clicks": 0, "conversions": 0, "revenue": 0.0})
        point["conversions"] += 1
        point["revenue"] += float(revenue or 0)
    return {"unit": unit, "points": [{"t": key, **value} for key, value in sorted(points.items())]}


CSV_COLUMNS = ("group", "audience", "sent", "delivered", "failed", "clicks", "unique_clicks", "ctr", "opens", "conversions",
               "converters", "conversion_rate", "revenue", "revenue_per_recipient", "cost", "roi")


def report_csv(report: dict) -> str:
    """One row per variant, the total and the hold-out; then the lift figures."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)

    def row(name: str, m: dict) -> list:
        return [name] + [("" if m.get(c) is None else m.get(c)) for c in CSV_COLUMNS[1:]]

    for variant in report["variants"]:
        writer.writerow(row(f"variant: {variant['name']}", variant))
    writer.writerow(row("total", report["totals"]))
    h = report["holdout"]
    writer.writerow(row("holdout", {"audience": h["size"], "converters": h["converters"], "revenue": h["revenue"],
                                    "revenue_per_recipient": h["revenue_per_person"]}))
    writer.writerow([])
    writer.writerow(["lift", "treated", "holdout", "difference", "ci_low", "ci_high", "relative", "p_value"])
    lift = report["lift"]
    conversion, revenue = lift.get("conversion"), lift.get("revenue")
    if conversion:
        writer.writerow(["conversion_rate", conversion["rate_treated"], conversion["rate_control"], conversion["difference"],
                         conversion["ci_low"], conversion["ci_high"], conversion["relative"], conversion["p_value"]])
    if revenue:
        writer.writerow(["revenue_per_person", revenue["mean_treated"], revenue["mean_control"], revenue["difference"],
                         revenue["ci_low"], revenue["ci_high"], revenue["relative"], revenue["p_value"]])
    writer.writerow(["verdict", lift["verdict"]["en"]])
    return out.getvalue()
