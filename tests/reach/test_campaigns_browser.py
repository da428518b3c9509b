"""The campaign wizard in a real browser (Chromium through Playwright): a LINE campaign to a segment with a
10% hold-out, sent to the LINE emulator, and the progress page reaching done."""

from __future__ import annotations

from sqlalchemy import select

from tests.channels import emulator
from tests.reach.campaign_world import ACTOR, add_contacts, connect_line, line_uid
from tests.web.conftest import browser, live_server, page, sign_in_browser  # noqa: F401
from tutti.reach.campaigns.models import Campaign, CampaignRecipient

line_emulator = emulator.line_emulator  # the fixture


def test_wizard_sends_a_line_campaign_with_a_holdout(page, live_server, database, line_emulator):  # noqa: F811
    from tutti.reach.segments import service as segments

    page.set_default_timeout(60_000)  # a shared, busy machine
    workspace_id = live_server.seed.workspace_id
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 60)
    with database.session() as db:
        segment = segments.create_segment(db, workspace_id=workspace_id, name="LINE 好友", actor=ACTOR, rules={
            "version": 1, "root": {"kind": "group", "op": "and", "children": [{"kind": "reachable", "channel": "line"}]}})
        segment_id = segment.id
        reachable = segments.count(db, workspace_id=workspace_id, rules=segment.rules)  # ours and the seeded LINE friends
    assert reachable >= 60
    sign_in_browser(page, live_server, wait=True)
    page.goto("/campaigns")
    page.get_by_test_id("new-campaign").click()
    page.get_by_test_id("name").fill("週年慶 LINE")
    page.get_by_test_id(f"segment-{segment_id}").check()
    page.get_by_test_id("text-A-line").fill("{{ name | default('朋友') }}，週年慶全館 8 折！")
    page.get_by_test_id("holdout").fill("10")
    page.wait_for_function("document.querySelector('[data-testid=count-send]') !== null")
    page.get_by_test_id("holdout").press("Tab")
    page.wait_for_function(f"document.querySelector('[data-testid=live-count]').innerText.includes('可觸及 {reachable} 人')")
    page.get_by_test_id("submit-send").click()
    page.wait_for_url("**/campaigns/*")
    page.wait_for_function("document.querySelector('[data-testid=progress]').dataset.done === 'yes'")
    assert page.get_by_test_id("status").inner_text() == "已完成"
    with database.read_session() as db:
        campaign = db.scalar(select(Campaign).where(Campaign.workspace_id == workspace_id))
        held = set(db.scalars(select(CampaignRecipient.contact_id).where(CampaignRecipient.campaign_id == campaign.id,
                                                                         CampaignRecipient.is_holdout.is_(True))))
    assert campaign.sent_count == reachable - len(held) and campaign.holdout_percent == 10 and len(held) < reachable / 4
    assert page.get_by_test_id("sent").inner_text() == str(campaign.sent_count)
    for contact_id in ids:
        assert len(line_emulator.messages(line_uid(database, contact_id))) == (0 if contact_id in held else 1)
    page.goto("/campaigns")
    assert "週年慶 LINE" in page.content()
