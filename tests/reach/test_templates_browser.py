"""The template editor and the report page in a real browser (Chromium through Playwright)."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.reach.tracking_world import order, send_campaign
from tests.web.conftest import browser, live_server, page, sign_in_browser  # noqa: F401
from tutti.platform.db import utcnow

BUTTONS = [{"type": "text", "text": "{{ name | default('朋友') }}，春季新品"},
           {"type": "template", "altText": "x", "template": {"type": "buttons", "title": "春季", "text": "8 折",
                                                             "actions": [{"type": "uri", "label": "立即選購", "uri": "https://s.example/a"}]}}]


def test_live_preview_errors_in_place_preview_as_contact_and_save(page, live_server):  # noqa: F811
    page.set_default_timeout(45_000)  # a shared, busy machine
    sign_in_browser(page, live_server, wait=True)
    page.goto("/templates")
    page.get_by_test_id("new-line").click()
    page.wait_for_function("document.querySelector('[data-testid=phone]') !== null")
    page.get_by_test_id("tpl-name").fill("春季 LINE")
    page.get_by_test_id("tpl-messages").fill(json.dumps(BUTTONS, ensure_ascii=False))
    page.wait_for_function("document.querySelector('[data-testid=phone]').innerText.includes('立即選購')")
    assert "王小明" in page.get_by_test_id("phone").inner_text()  # the sample contact
    too_many = [*BUTTONS[:1], {**BUTTONS[1], "template": {**BUTTONS[1]["template"], "actions": BUTTONS[1]["template"]["actions"] * 5}}]
    page.get_by_test_id("tpl-messages").fill(json.dumps(too_many, ensure_ascii=False))
    page.wait_for_function("document.querySelector('#err-messages') && document.querySelector('#err-messages').innerText.includes('messages[1].template.actions')")
    page.get_by_test_id("tpl-messages").fill(json.dumps(BUTTONS, ensure_ascii=False))
    page.wait_for_function("document.querySelector('[data-testid=phone]') !== null && document.querySelector('#err-messages').innerText.trim() === ''")
    previews = []  # typing in the search box must not refresh the preview: that request aborted a slow search
    page.on("request", lambda request: previews.append(request.url) if "/templates/preview" in request.url else None)
    page.get_by_test_id("tpl-contact-search").fill("林美玲")
    mei = live_server.seed.contacts["林美玲"]
    page.wait_for_selector(f'[data-testid=tpl-contact] option[value="{mei}"]', state="attached")
    page.wait_for_timeout(600)  # past the preview's 400 ms delay
    assert previews == []
    page.get_by_test_id("tpl-contact").select_option(value=str(mei))
    page.wait_for_function("document.querySelector('[data-testid=phone]').innerText.includes('林美玲')")
    page.get_by_test_id("tpl-save").click()
    page.wait_for_url("**/templates/*?saved=1")
    page.goto("/templates")
    assert "春季 LINE" in page.content()


def test_sms_parts_and_the_report_chart(page, live_server, database):  # noqa: F811
    page.set_default_timeout(45_000)
    seed = live_server.seed
    people = list(seed.contacts.values())
    sent = send_campaign(database, seed.workspace_id, variants={"A": people[:2]}, holdout=people[2:], started_at=utcnow() - timedelta(hours=20))
    order(database, seed.workspace_id, people[0], utcnow() - timedelta(hours=2), 880.0)
    sign_in_browser(page, live_server, wait=True)
    page.goto("/templates/new?channel=sms")
    page.get_by_test_id("tpl-sms").fill("中" * 71)
    page.wait_for_function("document.querySelector('[data-testid=sms-parts]') && document.querySelector('[data-testid=sms-parts]').innerText.startsWith('2')")
    page.goto(f"/campaigns/{sent.campaign_id}/report")
    page.get_by_test_id("report-refresh").click()
    page.wait_for_function("document.querySelector('[data-testid=kpi-conversions]').innerText.trim() === '1'")
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('report-chart')) !== undefined")
    assert "880" in page.get_by_test_id("kpis").inner_text()
    assert page.get_by_test_id("verdict").inner_text().startswith("不顯著")  # zh-TW browser, too few people
