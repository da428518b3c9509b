"""Issue 3's "Done means", end to end on the demo brand: a newcomer builds a segment in the UI, sends a LINE
broadcast with a 20% hold-out to the LINE emulator, clicks the link in the message as the customer, the shop
records the purchase with Segment's own Python library, the conversion job runs, and the report (API and
page) shows the click, the conversion, the revenue and the lift with its verdict.

The campaign is made and sent in the campaign wizard (Reach → 群發活動 Campaigns → new)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import bearer
from tests.e2e.conftest import new_context, sign_in

pytestmark = pytest.mark.browser

TAG = "沉睡會員"  # dormant members: a win-back campaign
SHOP_URL = "https://shop.hao-rizi.example/sale/winback?from=line"
MESSAGE = {"messages": [{"type": "text", "text": "{{ name | default('朋友') }}，好久不見！回來逛逛，全館 85 折：" + SHOP_URL}]}
RULES = {"version": 1, "root": {"kind": "group", "op": "and", "children": [
    {"kind": "tag", "tag": TAG, "op": "has"}, {"kind": "identity", "identity": "line_uid", "present": True}]}}
ORDER_TOTAL = 2380


def _api_key(database, workspace_id: int) -> str:
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor

    with database.session() as db:
        return workspaces.create_api_key(db, workspace_id=workspace_id, name="e2e", role="marketer", actor=Actor.cli()).key


def _build_segment_in_the_ui(browser, demo) -> int:
    """Segments → new: has the tag, has LINE; the live count matches the rules; save."""
    from playwright.sync_api import expect

    from tutti.platform.db import get_database
    from tutti.reach.segments import service as segments

    with get_database().read_session() as db:
        expected = segments.count(db, workspace_id=demo.workspace_id, rules=RULES)
    assert expected > 20  # enough people for a 20% hold-out to hold someone

    context = new_context(browser, demo)
    try:
        page = context.new_page()
        sign_in(page, demo)
        page.goto("/segments")
        page.get_by_test_id("new-segment").click()
        page.wait_for_url("**/segments/new")
        page.get_by_test_id("add-condition").click()  # a tag condition
        page.get_by_test_id("tag").first.select_option(TAG)
        page.get_by_test_id("add-condition").click()
        page.get_by_test_id("kind").nth(1).select_option("identity")
        page.get_by_test_id("identity").select_option("line_uid")
        expect(page.get_by_test_id("live-count")).to_have_text(re.compile(rf"^\s*{expected}\s*$"))
        page.get_by_test_id("segment-name").fill("沉睡會員（有 LINE）")
        page.get_by_test_id("save").click()
        page.wait_for_url(re.compile(r".*/segments/\d+$"))
        expect(page.get_by_test_id("saved-size")).to_have_text(re.compile(rf"^\s*{expected}\s*$"))
        segment_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    finally:
        context.close()
    return segment_id


def _send_through_the_wizard(browser, demo, segment_id: int) -> int:
    """Campaigns → new: name, the segment, LINE first, the message, a 20% hold-out, send now; the progress page."""
    from playwright.sync_api import expect

    context = new_context(browser, demo)
    try:
        page = context.new_page()
        sign_in(page, demo)
        page.goto("/campaigns")
        page.get_by_test_id("new-campaign").click()
        page.wait_for_url("**/campaigns/new")
        page.get_by_test_id("name").fill("沉睡會員回流 Win-back")
        page.get_by_test_id(f"segment-{segment_id}").check()
        page.get_by_test_id("channel-1").select_option("line")
        page.get_by_test_id("text-A-line").fill(MESSAGE["messages"][0]["text"])
        page.get_by_test_id("holdout").fill("20")
        page.get_by_test_id("when-now").check()
        expect(page.get_by_test_id("count-send")).not_to_have_text("0")  # the live count of who will get it
        page.get_by_test_id("submit-send").click(timeout=120_000)  # the send runs inline in tests: the click waits for it
        page.wait_for_url(re.compile(r".*/campaigns/\d+$"), timeout=120_000)
        campaign_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    finally:
        context.close()
    return campaign_id


def test_segment_broadcast_click_purchase_report(browser, demo, database):
    from playwright.sync_api import expect
    from segment.analytics import Client

    from tutti.audience.models import Identity
    from tutti.reach.campaigns.models import CampaignRecipient, Delivery
    from tutti.reach.segments.models import SegmentMember
    from tutti.reach.tracking import jobs as tracking_jobs

    wid = demo.workspace_id
    segment_id = _build_segment_in_the_ui(browser, demo)
    key = _api_key(database, wid)
    api = httpx.Client(base_url=demo.url, headers=bearer(key), timeout=120)

    # --- the broadcast: LINE, 20% hold-out, sent now (jobs run inline in tests) -----------------------------
    campaign_id = _send_through_the_wizard(browser, demo, segment_id)
    progress = api.get(f"/api/v1/campaigns/{campaign_id}/progress").json()
    assert progress["status"] == "sent", progress

    with database.read_session() as db:
        members = set(db.scalars(select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id)))
        recipients = {contact_id: is_holdout for contact_id, is_holdout in db.execute(
            select(CampaignRecipient.contact_id, CampaignRecipient.is_holdout).where(CampaignRecipient.campaign_id == campaign_id))}
        deliveries = db.execute(select(Delivery.contact_id, Delivery.status, Delivery.address)
                                .where(Delivery.campaign_id == campaign_id)).all()
        line_uids: dict[int, set[str]] = {}
        for contact_id, value in db.execute(select(Identity.contact_id, Identity.value)
                                            .where(Identity.workspace_id == wid, Identity.kind == "line_uid")):
            line_uids.setdefault(contact_id, set()).add(value)
        external_ids = dict(db.execute(select(Identity.contact_id, Identity.value)
                                       .where(Identity.workspace_id == wid, Identity.kind == "external_id")).all())
    treated = {c for c, holdout in recipients.items() if not holdout}
    held_out = {c for c, holdout in recipients.items() if holdout}
    assert set(recipients) <= members and treated and held_out
    # about 20%, drawn at random per campaign: with ~60 recipients, 10% held out once held 1 (a bound of 3%
    # failed 1.6% of runs); at 20% nobody held out or more than 45% has odds below 1 in 10,000. The share
    # itself is tested on 2,000 recipients (tests/reach/test_campaign_audience.py)
    assert len(held_out) <= 0.45 * len(recipients)
    assert {c for c, _, _ in deliveries} == treated and {s for _, s, _ in deliveries} == {"sent"}

    # the emulator ("the customers' phones"): one message per treated recipient, none for anyone else
    for contact_id in members:
        got = sum(len(demo.emulator.messages(uid, endpoint=None)) for uid in line_uids.get(contact_id, ()))
        assert got == (1 if contact_id in treated else 0), (contact_id, contact_id in held_out, got)
    assert sum(demo.emulator.counts().values()) == len(treated)

    # --- the customer clicks the link in the message they received --------------------------------------------
    buyer = next(c for c in sorted(treated) if c in external_ids)
    address = next(a for c, _, a in deliveries if c == buyer)
    text = demo.emulator.texts(address)[0]
    assert "好久不見" in text and SHOP_URL not in text  # personalised, and the link was rewritten
    link = re.search(r"https?://\S+?/l/([0-9A-Za-z]+)", text)
    assert link, text
    landing = httpx.get(f"{demo.url}/l/{link.group(1)}", follow_redirects=False, headers={"User-Agent": "Line/13.0 iPhone"})
    assert landing.status_code in (302, 303, 307), landing.text
    target = urlsplit(landing.headers["location"])
    query = parse_qs(target.query)
    assert (target.netloc, target.path) == ("shop.hao-rizi.example", "/sale/winback")
    assert query["from"] == ["line"] and query["utm_medium"] == ["line"] and query["utm_source"] and query["utm_campaign"]

    # --- the shop reports the purchase with Segment's library (userId = the member number) --------------------
    with database.read_session() as db:
        from tutti.platform.models import Workspace

        write_key = db.scalar(select(Workspace.write_key).where(Workspace.id == wid))
    errors = []
    analytics = Client(write_key, host=demo.url, sync_mode=True, max_retries=0, on_error=lambda error, batch: errors.append(error))
    analytics.track(external_ids[buyer], "Order Completed", {"order_id": "E2E-WINBACK-1", "total": ORDER_TOTAL,
                                                             "revenue": ORDER_TOTAL, "currency": "TWD"})
    analytics.flush()
    assert errors == []

    # --- the conversion job, then the report ----------------------------------------------------------------
    tracking_jobs.refresh_conversions(wid, campaign_id)  # the huey task (inline in tests)
    report = api.get(f"/api/v1/campaigns/{campaign_id}/report").json()
    totals = report["totals"]
    assert totals["delivered"] == len(treated) and report["holdout"]["size"] == len(held_out)
    assert totals["unique_clicks"] == 1 and totals["clicks"] == 1
    assert totals["conversions"] == 1 and totals["revenue"] == ORDER_TOTAL
    lift = report["lift"]
    assert lift["treated"]["size"] == len(treated) and lift["holdout"]["size"] == len(held_out)
    assert lift["treated"]["converters"] == 1 and lift["holdout"]["converters"] == 0
    assert lift["conversion"]["difference"] > 0 and lift["verdict"]["zh-TW"] and lift["verdict"]["en"]
    assert lift["significant"] is False  # one purchase among a few dozen people proves nothing, and it says so

    context = new_context(browser, demo)
    try:
        page = context.new_page()
        sign_in(page, demo)
        page.goto(f"/campaigns/{campaign_id}")  # the campaign's progress page links to its report
        page.locator(f'a[href="/campaigns/{campaign_id}/report"]').first.click()
        page.wait_for_url(f"**/campaigns/{campaign_id}/report")
        expect(page.get_by_test_id("kpi-delivered")).to_have_text(str(len(treated)))
        expect(page.get_by_test_id("kpi-clicks")).to_have_text("1")
        expect(page.get_by_test_id("kpi-conversions")).to_have_text("1")
        expect(page.get_by_test_id("kpi-revenue")).to_contain_text("2,380")
        expect(page.get_by_test_id("verdict")).to_have_text(lift["verdict"]["zh-TW"])
        expect(page.get_by_test_id("lift")).to_contain_text(str(len(held_out)))
    finally:
        context.close()
