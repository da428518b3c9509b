"""Template and report pages: the editor's live preview (LINE phone, e-mail, SMS parts), errors in place,
saving, preview as a contact, and the campaign report page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.reach.tracking_world import order, send_campaign
from tests.web.conftest import csrf_of, seed_workspace, sign_in
from tutti.platform.db import utcnow


@pytest.fixture
def owner(client, database):
    seed = seed_workspace(database)
    assert sign_in(client).status_code == 303
    client.csrf = csrf_of(client.get("/settings/tags").text)
    client.seed = seed
    return client


def test_list_and_new_pages_in_both_languages(owner):
    page = owner.get("/templates")
    assert page.status_code == 200 and 'href="/templates/new?channel=line"' in page.text
    assert 'href="/templates"' in page.text  # the nav link
    owner.cookies.set("tutti_locale", "en")
    assert "New LINE template" in owner.get("/templates").text
    owner.cookies.set("tutti_locale", "zh-TW")
    assert "新增LINE範本" in owner.get("/templates").text
    for channel in ("line", "email", "sms"):
        assert owner.get(f"/templates/new?channel={channel}").status_code == 200


def test_live_preview_draws_line_in_the_phone_and_puts_errors_beside_fields(owner):
    messages = [{"type": "text", "text": "嗨 {{ name | default('朋友') }}"},
                {"type": "template", "altText": "x", "template": {"type": "buttons", "title": "春季", "text": "8 折",
                                                                  "actions": [{"type": "uri", "label": "買", "uri": "https://s.example/a"}]}}]
    ming = owner.seed.contacts["王小明"]
    good = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "line", "messages": json.dumps(messages),
                                                  "contact_id": str(ming)})
    assert good.status_code == 200
    assert 'class="phone"' in good.text and "嗨 王小明" in good.text and "line-card-title" in good.text and ">買<" in good.text
    messages[1]["template"]["actions"] = messages[1]["template"]["actions"] * 5
    bad = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "line", "messages": json.dumps(messages)})
    assert 'data-testid="tpl-problems"' in bad.text and "messages[1].template.actions" in bad.text
    assert 'id="err-messages"' in bad.text and 'hx-swap-oob="true"' in bad.text
    broken = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "line", "messages": "[{"})
    assert "not JSON" in broken.text


def test_email_and_sms_previews(owner):
    email = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "email", "subject": "Hi {{ first_name }}",
                                                   "html": "<p>{{ name }}</p>"})
    assert 'data-testid="mail-frame"' in email.text and "srcdoc=" in email.text and "List-Unsubscribe-Post" in email.text
    no_subject = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "email", "html": "<p>x</p>"})
    assert 'id="err-subject" class="field-error-list" hx-swap-oob="true"><div class="field-error"' in no_subject.text
    sms = owner.post("/templates/preview", data={"csrf_token": owner.csrf, "channel": "sms", "text": "中" * 71})
    assert 'data-testid="sms-parts"' in sms.text and "UCS-2" in sms.text and ">2 " in sms.text.split('data-testid="sms-parts"')[1][:40]


def test_save_edit_and_refuse_bad_content(owner):
    created = owner.post("/templates", data={"csrf_token": owner.csrf, "channel": "sms", "name": "春季簡訊", "text": "嗨 {{ name }}"},
                         follow_redirects=False)
    assert created.status_code == 303
    url = created.headers["location"].split("?")[0]
    page = owner.get(url)
    assert "春季簡訊" in page.text and "嗨 {{ name }}" in page.text
    refused = owner.post(url, data={"csrf_token": owner.csrf, "name": "春季簡訊", "text": "{% if %}"})
    assert refused.status_code == 422 and "{% if %}" in refused.text and "line 1" in refused.text
    options = owner.get("/templates/contact-options?q=王")
    assert f'value="{owner.seed.contacts["王小明"]}"' in options.text
    sent = owner.post(f"{url}/test-send", data={"csrf_token": owner.csrf, "to": "+886912345678"})
    assert "no sms channel" in sent.text
    assert owner.post(f"{url}/delete", data={"csrf_token": owner.csrf}, follow_redirects=False).status_code == 303
    assert owner.get(url).status_code == 404


def test_the_report_page(owner, database):
    ws = owner.seed.workspace_id
    people = list(owner.seed.contacts.values())
    sent = send_campaign(database, ws, variants={"A": people[:2]}, holdout=people[2:], started_at=utcnow() - timedelta(days=1))
    order(database, ws, people[0], utcnow() - timedelta(hours=2), 880.0)
    refreshed = owner.post(f"/campaigns/{sent.campaign_id}/report/refresh", data={"csrf_token": owner.csrf}, follow_redirects=False)
    assert refreshed.status_code == 303
    page = owner.get(f"/campaigns/{sent.campaign_id}/report")
    assert page.status_code == 200
    assert 'data-testid="kpi-conversions">1<' in page.text and "880" in page.text and 'data-testid="verdict"' in page.text
    assert "report-chart" in page.text and "variant-table" in page.text
    csv_text = owner.get(f"/campaigns/{sent.campaign_id}/report.csv").text
    assert csv_text.startswith("group,audience")
    assert owner.get("/campaigns/999999/report").status_code == 404
