"""Campaign pages through the TestClient: the list, the wizard's live count, creating a draft, errors kept in
the form, and the progress page with its actions (both languages carry every key)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.reach.campaign_world import add_contacts, connect_line
from tests.web.conftest import owner_client, seeded  # noqa: F401
from tutti.reach.campaigns.models import Campaign

LOCALES = Path(__file__).resolve().parents[2] / "src/tutti/web/locales/reach"


def _form(client, **extra) -> dict:
    return {"csrf_token": client.csrf, "name": "週年慶", "channel_1": "line", "text_A_line": "週年慶全館 8 折", "holdout_percent": "10",
            "when": "now", **extra}


def test_wizard_count_draft_and_progress(owner_client, seeded, database):  # noqa: F811
    client = owner_client
    connect_line(database, seeded.workspace_id, base_url="http://127.0.0.1:9")
    ids = add_contacts(database, seeded.workspace_id, 20)
    assert client.get("/campaigns").status_code == 200
    assert client.get("/campaigns/new").status_code == 200
    count = client.post("/campaigns/count", data=_form(client))
    assert count.status_code == 200, count.text
    assert 'data-testid="count-send">0<' in count.text  # no segment chosen yet
    answer = client.post("/campaigns", data=_form(client, action="draft", name=""), follow_redirects=False)
    assert answer.status_code == 422 and "name" in answer.text
    with database.read_session() as db:
        assert db.scalar(select(Campaign.id)) is None  # nothing of a refused campaign stays
    answer = client.post("/campaigns", data=_form(client, action="draft"), follow_redirects=False)
    assert answer.status_code == 303
    page = client.get(answer.headers["location"])
    assert page.status_code == 200 and "週年慶" in page.text and 'data-testid="send"' in page.text
    assert len(ids) == 20


def test_the_wizard_estimates_the_cost_and_remembers_the_prices(owner_client, seeded, database):  # noqa: F811
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service as segments

    client = owner_client
    connect_line(database, seeded.workspace_id, base_url="http://127.0.0.1:9")
    add_contacts(database, seeded.workspace_id, 20)
    with database.session() as db:
        segment_id = segments.create_segment(db, workspace_id=seeded.workspace_id, name="有 LINE", actor=Actor.cli(), rules={
            "root": {"kind": "group", "op": "and", "children": [{"kind": "identity", "identity": "line_uid", "present": True}]}}).id
    form = _form(client, segment_ids=str(segment_id), cost_line="0.35")
    count = client.post("/campaigns/count", data=form)
    assert count.status_code == 200, count.text
    reachable = int(count.text.split('data-testid="count-send">')[1].split("<")[0].replace(",", ""))
    expected = f"{(reachable + round(reachable * 10 / 9) - reachable) * 0.9 * 0.35:,.2f}"  # the hold-out costs nothing
    assert 'data-testid="count-cost"' in count.text and expected in count.text, (expected, count.text)
    assert client.post("/campaigns", data={**form, "action": "draft"}, follow_redirects=False).status_code == 303
    with database.read_session() as db:
        assert db.scalar(select(Campaign.costs)) == {"line": 0.35}
    assert 'name="cost_line" min="0" step="0.01" value="0.35"' in client.get("/campaigns/new").text


@pytest.mark.parametrize("price, problem", [("-1", "costs.line must be between 0 and 1e+06"), ("兩塊", "costs.line must be a number")])
def test_a_wrong_price_is_named_and_nothing_is_saved(owner_client, seeded, database, price, problem):  # noqa: F811
    client = owner_client
    connect_line(database, seeded.workspace_id, base_url="http://127.0.0.1:9")
    count = client.post("/campaigns/count", data=_form(client, cost_line=price))
    assert count.status_code == 200 and 'data-testid="count-cost"' not in count.text  # no estimate from it
    answer = client.post("/campaigns", data=_form(client, action="draft", cost_line=price), follow_redirects=False)
    assert answer.status_code == 422 and problem in answer.text, answer.text[-2000:]
    with database.read_session() as db:
        assert db.scalar(select(Campaign.id)) is None


def test_both_languages_have_every_campaign_key():
    en = {k for k in json.loads((LOCALES / "en.json").read_text()) if k.startswith("campaigns.")}
    zh = {k for k in json.loads((LOCALES / "zh-TW.json").read_text()) if k.startswith("campaigns.")}
    assert en == zh and len(en) > 50
