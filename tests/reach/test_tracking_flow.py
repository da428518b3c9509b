"""The issue's "done" flow end to end: a LINE broadcast with a hold-out goes to the emulator, a customer opens
the link from the message they received, the shop records the purchase through the tracking API, and the
report shows the click, the conversion, the revenue and the lift."""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from tests.channels import emulator
from tests.conftest import bearer
from tests.reach.campaign_world import ACTOR, add_contacts, connect_line, line_uid, make_campaign

line_emulator = emulator.line_emulator  # the fixture

MESSAGE = {"messages": [{"type": "text", "text": "{{ name | default('朋友') }}，春季新品 8 折 https://shop.example.com/spring?from=line"}]}


def test_send_click_buy_and_see_it_in_the_report(client, database, make_workspace, line_emulator):
    from tutti.reach.campaigns import service as campaigns

    workspace_id, key, write_key = make_workspace()
    connect_line(database, workspace_id, line_emulator)
    ids = add_contacts(database, workspace_id, 80)
    campaign_id = make_campaign(database, workspace_id, ids, holdout_percent=10, costs={"line": 0.2},
                                variants=[{"name": "A", "split_percent": 100, "content": {"line": MESSAGE}}])
    with database.session() as db:
        campaigns.send_now(db, workspace_id=workspace_id, campaign_id=campaign_id, actor=ACTOR)  # runs inline in tests

    report = client.get(f"/api/v1/campaigns/{campaign_id}/report", headers=bearer(key)).json()
    delivered = report["totals"]["delivered"]
    assert delivered + report["holdout"]["size"] == 80 and report["holdout"]["size"] > 0
    buyer = next(c for c in ids if line_emulator.texts(line_uid(database, c)))
    text = line_emulator.texts(line_uid(database, buyer))[0]
    short = re.search(r"https?://\S+/l/(\w+)", text)
    assert short, text  # the link the customer got is a tracked one
    landing = client.get(f"/l/{short.group(1)}", follow_redirects=False)
    assert landing.status_code == 302 and urlsplit(landing.headers["location"]).netloc == "shop.example.com"
    assert "utm_campaign=" in landing.headers["location"] and "from=line" in landing.headers["location"]

    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    # the shop knows the visitor from LINE Login (identify), then reports the purchase (track)
    bought = client.post("/v1/batch", headers=auth, json={"batch": [
        {"type": "identify", "anonymousId": "web-visitor-1", "traits": {"line_user_id": line_uid(database, buyer)}},
        {"type": "track", "anonymousId": "web-visitor-1", "event": "Order Completed",
         "properties": {"order_id": "SO-SPRING-1", "total": 1280, "revenue": 1280, "currency": "TWD"}}]})
    assert bought.status_code == 200, bought.text

    report = client.post(f"/api/v1/campaigns/{campaign_id}/report/refresh", headers=bearer(key)).json()
    totals = report["totals"]
    assert totals["unique_clicks"] == 1 and totals["clicks"] == 1
    assert totals["conversions"] == 1 and totals["revenue"] == 1280.0
    assert totals["cost"] == round(0.2 * delivered, 2) and totals["roi"] > 0
    lift = report["lift"]
    assert lift["treated"]["converters"] == 1 and lift["holdout"]["converters"] == 0
    assert lift["conversion"]["difference"] > 0 and lift["verdict"]["en"] and lift["verdict"]["zh-TW"]
    timeline = client.get(f"/api/v1/contacts/{buyer}/timeline", headers=bearer(key))
    assert "Campaign Link Clicked" in timeline.text
