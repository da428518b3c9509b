"""Pages of campaigns: the list, the wizard (audience with a live count, channel order, message per variant,
hold-out, A/B split, schedule in the workspace's time zone, quiet hours, frequency cap) and the live
progress page (htmx polling) with pause, resume and cancel. The report page belongs to tracking."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from starlette.datastructures import FormData

from tutti.platform.errors import TuttiError
from tutti.platform.ui import error_text
from tutti.reach.campaigns import audience, service
from tutti.reach.campaigns.models import CHANNEL_KINDS, Campaign
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)


def _segments(ui: UiContext) -> list:
    try:
        from tutti.reach.segments import service as segments
    except ImportError:
        return []
    return segments.list_segments(ui.db, workspace_id=ui.workspace_id)


def _templates(ui: UiContext) -> list:
    from tutti.reach.templates import service as templates

    return templates.list_templates(ui.db, workspace_id=ui.workspace_id)


def _connected(ui: UiContext) -> dict[str, int]:
    from tutti.channels.service import default_channel

    out = {}
    for kind in CHANNEL_KINDS:
        channel = default_channel(ui.db, workspace_id=ui.workspace_id, kind=kind)
        if channel is not None:
            out[kind] = channel.id
    return out


def _ints(values) -> list[int]:
    return [int(v) for v in values if str(v).isdigit() and 0 < int(v) < 2**63]


def _number(form, name: str, default: float | None = None) -> float | None:
    raw = str(form.get(name) or "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


def _prices(form) -> dict:
    """The price per message of each channel as typed. What is not a number goes on as written, so the
    service names the field that is wrong instead of the price being dropped."""
    prices = {}
    for kind in CHANNEL_KINDS:
        raw = str(form.get(f"cost_{kind}") or "").strip()
        if raw:
            try:
                prices[kind] = float(raw)
            except ValueError:
                prices[kind] = raw
    return prices


def _data_from_form(form, zone: str) -> tuple[dict, str]:
    """The campaign as the service takes it, and what to do: draft, send or schedule."""
    channels = [c for c in (form.get("channel_1"), form.get("channel_2"), form.get("channel_3")) if c in CHANNEL_KINDS]
    channels = list(dict.fromkeys(channels)) or ["line"]
    variants = []
    names = ["A", "B"] if form.get("ab") == "on" else ["A"]
    split_a = _number(form, "split_a", 50) if len(names) == 2 else 100
    for index, name in enumerate(names):
        template_ids, content = {}, {}
        for kind in channels:
            template = str(form.get(f"template_{name}_{kind}") or "")
            text = str(form.get(f"text_{name}_{kind}") or "").strip()
            if template.isdigit():
                template_ids[kind] = int(template)
            elif text:
                content[kind] = ({"messages": [{"type": "text", "text": text}]} if kind == "line" else {"text": text} if kind == "sms"
                                 else {"subject": str(form.get(f"subject_{name}") or text[:60]), "html": f"<p>{text}</p>"})
        split = split_a if index == 0 else 100 - split_a
        variants.append({"name": name, "split_percent": split, "template_ids": template_ids, "content": content})
    data = {
        "name": str(form.get("name") or "").strip(),
        "audience": {"segment_ids": _ints(form.getlist("segment_ids")), "exclude_segment_ids": _ints(form.getlist("exclude_segment_ids"))},
        "channels": channels, "holdout_percent": _number(form, "holdout_percent", 0) or 0, "variants": variants,
        "quiet_hours": ({"start": form.get("quiet_start"), "end": form.get("quiet_end")}
                        if form.get("quiet_start") and form.get("quiet_end") else None),
        "frequency_cap": ({"max": int(_number(form, "cap_max")), "days": int(_number(form, "cap_days", 7))}
                          if _number(form, "cap_max") else None),
        "costs": _prices(form),
    }
    when = str(form.get("when") or "now")
    if when == "later" and form.get("scheduled_at"):
        local = datetime.fromisoformat(str(form.get("scheduled_at")))
        data["scheduled_at"] = local.replace(tzinfo=ZoneInfo(zone or "Asia/Taipei")).isoformat()
    action = str(form.get("action") or "draft")
    return data, ("schedule" if action == "send" and when == "later" else action)


def live_count(ui: UiContext, data: dict) -> dict:
    """How many the campaign would reach now: members minus exclusions, the unreachable and the capped."""
    connected = _connected(ui)
    probe = Campaign(id=0, workspace_id=ui.workspace_id, kind="marketing", audience=data["audience"],
                     channels=data["channels"], frequency_cap=data.get("frequency_cap"), key_namespace=uuid.uuid4().hex)
    rules = {s.id: s.rules for s in _segments(ui)}  # evaluated now: the count is live, not as of the last refresh
    cand = audience.candidates(probe, [k for k in probe.channels if k in connected], live_rules=rules)
    counts = {"ok": 0}
    if cand is not None:
        counts.update(dict(ui.db.execute(select(cand.c.reason, func.count()).group_by(cand.c.reason)).all()))
        by_channel = dict(ui.db.execute(select(cand.c.channel, func.count()).where(cand.c.reason == "ok")
                                        .group_by(cand.c.channel)).all())
    else:
        by_channel = {}
    held = round(counts["ok"] * (data.get("holdout_percent") or 0) / 100)
    sent_share = 1 - (data.get("holdout_percent") or 0) / 100
    # an estimate from the valid prices only: a wrong one is reported when the campaign is saved
    prices = {kind: price for kind, price in (data.get("costs") or {}).items() if isinstance(price, float) and price >= 0}
    cost = sum(n * sent_share * prices.get(kind, 0.0) for kind, n in by_channel.items())
    return {"reachable": counts["ok"], "holdout": held, "send": counts["ok"] - held, "by_channel": by_channel,
            "cost": round(cost, 2) if prices else None, "currency": ui.workspace.currency,
            "skipped": {k: v for k, v in counts.items() if k != "ok"}, "missing_channels": [k for k in data["channels"] if k not in connected]}


@router.get("/campaigns")
def campaign_list(ui: UiContext = page_context):
    ui.require("campaigns.read")
    items = service.list_campaigns(ui.db, workspace_id=ui.workspace_id)
    return render(ui, "campaigns/list.html", items=[(c, service.progress(c)) for c in items])


@router.get("/campaigns/new")
def campaign_new(ui: UiContext = page_context):
    ui.require("campaigns.send")
    return render(ui, "campaigns/wizard.html", segments=_segments(ui), templates=_templates(ui), connected=_connected(ui),
                  kinds=CHANNEL_KINDS, error=None, form=_last_prices(ui))


def _last_prices(ui: UiContext) -> FormData:
    """The prices per message the workspace's latest campaign used: a new campaign starts from them (as the
    form's values, which the page reads like a submitted form)."""
    costs = ui.db.scalar(select(Campaign.costs).where(Campaign.workspace_id == ui.workspace_id)
                         .order_by(Campaign.id.desc()).limit(1)) or {}
    return FormData([(f"cost_{kind}", f"{price:g}") for kind, price in costs.items()])


@router.post("/campaigns/count")
async def campaign_count(request: Request, ui: UiContext = page_context):
    ui.require("campaigns.send")
    form = await request.form()
    data, _ = _data_from_form(form, ui.workspace.timezone)
    return render(ui, "campaigns/_count.html", count=live_count(ui, data))


@router.post("/campaigns")
async def campaign_create(request: Request, ui: UiContext = page_context):
    ui.require("campaigns.send")
    form = await request.form()
    campaign = None
    try:
        data, action = _data_from_form(form, ui.workspace.timezone)
        campaign = service.create(ui.db, workspace_id=ui.workspace_id, data=data, actor=ui.actor)
        if action == "send":
            service.send_now(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign.id, actor=ui.actor)
        elif action == "schedule":
            service.schedule(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign.id, actor=ui.actor)
    except (TuttiError, ValueError) as problem:
        if campaign is not None:  # the page's transaction commits: take the half-made draft away again
            service.delete(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign.id, actor=ui.actor)
        message = error_text(ui, problem) if isinstance(problem, TuttiError) else str(problem)
        return render(ui, "campaigns/wizard.html", status=422, segments=_segments(ui), templates=_templates(ui),
                      connected=_connected(ui), kinds=CHANNEL_KINDS, error=message, form=form)
    return RedirectResponse(f"/campaigns/{campaign.id}", status_code=303)


def _campaign(ui: UiContext, campaign_id: int) -> Campaign:
    try:
        return service.get(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
    except TuttiError:
        raise PageError(404, "campaigns.not_found") from None


@router.get("/campaigns/{campaign_id}")
def campaign_page(campaign_id: int, ui: UiContext = page_context):
    ui.require("campaigns.read")
    campaign = _campaign(ui, campaign_id)
    return render(ui, "campaigns/progress.html", campaign=campaign, progress=service.progress(campaign),
                  variants=service.as_dict(ui.db, campaign)["variants"])


@router.get("/campaigns/{campaign_id}/progress")
def campaign_progress(campaign_id: int, ui: UiContext = page_context):
    ui.require("campaigns.read")
    campaign = _campaign(ui, campaign_id)
    return render(ui, "campaigns/_progress.html", campaign=campaign, progress=service.progress(campaign))


def _action(name: str, verb):
    async def route(campaign_id: int, ui: UiContext = page_context):
        ui.require("campaigns.send")
        try:  # the services check before they change anything, so a refusal leaves nothing half-done
            verb(ui.db, workspace_id=ui.workspace_id, campaign_id=campaign_id, actor=ui.actor)
        except TuttiError as problem:
            campaign = _campaign(ui, campaign_id)
            return render(ui, "campaigns/progress.html", status=409, campaign=campaign, progress=service.progress(campaign),
                          variants=service.as_dict(ui.db, campaign)["variants"], error=error_text(ui, problem))
        return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)

    route.__name__ = f"campaign_{name}"
    return route


for _name, _verb in (("send", service.send_now), ("pause", service.pause), ("resume", service.resume), ("cancel", service.cancel)):
    router.post(f"/campaigns/{{campaign_id}}/{_name}")(_action(_name, _verb))
