"""Segment pages: the list with size and freshness, the builder's JSON endpoints (live count with a
sample, words, save, errors with paths), refresh and export; and in Chromium: build "has LINE AND tag VIP",
see the count, save, see the members."""

from __future__ import annotations

import pytest

from tests.web.conftest import browser, csrf_of, live_server, page, seed_workspace, sign_in, sign_in_browser  # noqa: F401

HAS_LINE_AND_VIP = {"version": 1, "root": {"kind": "group", "op": "and", "children": [
    {"kind": "identity", "identity": "line_uid", "present": True}, {"kind": "tag", "tag": "VIP", "op": "has"}]}}


@pytest.fixture
def owner(client, database):
    seed = seed_workspace(database)
    assert sign_in(client).status_code == 303
    client.csrf = csrf_of(client.get("/settings/tags").text)
    client.seed = seed
    return client


def _post(client, url, body):
    return client.post(url, json=body, headers={"X-CSRF-Token": client.csrf})


def test_builder_endpoints_and_pages(owner):
    assert owner.get("/segments").status_code == 200
    assert 'href="/segments"' in owner.get("/segments").text  # the nav link
    assert "segmentBuilder" in owner.get("/segments/new").text
    answer = _post(owner, "/segments/live/count", {"rules": HAS_LINE_AND_VIP, "sample": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 1 and answer.json()["sample"][0]["name"] == "王小明"
    bad = _post(owner, "/segments/live/count", {"rules": {"root": {"kind": "group", "children": [{"kind": "tag", "tag": "VIP", "op": "applied_at_least"}]}}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rules.children[0]"
    parsed = _post(owner, "/segments/live/parse", {"text": "有LINE的VIP，喜歡貓"}).json()
    assert parsed["rules"]["root"]["children"] == HAS_LINE_AND_VIP["root"]["children"] and parsed["not_understood"] == ["喜歡貓"]
    saved = _post(owner, "/segments/live/save", {"name": "LINE VIP", "rules": HAS_LINE_AND_VIP})
    assert saved.status_code == 200 and saved.json()["size"] == 1
    url = saved.json()["url"]
    listing = owner.get("/segments").text
    assert "LINE VIP" in listing and "剛剛更新" in listing
    assert owner.get(url).status_code == 200
    assert owner.post(url + "/refresh", data={"csrf_token": owner.csrf}, follow_redirects=False).status_code == 303
    csv_text = owner.get(url + "/export.csv").text
    assert "ming@example.com" in csv_text and "meiling@example.com" not in csv_text
    owner.cookies.set("tutti_locale", "en")
    assert "updated just now" in owner.get("/segments").text


def _one_member_saved(browser_page, member: str, name: str) -> None:
    """The live count shows one member, `member`; saved as `name`, the segment's page says one."""
    browser_page.wait_for_function("document.querySelector('[data-testid=live-count]').textContent.trim() === '1'")
    assert member in browser_page.get_by_test_id("sample").inner_text()
    browser_page.get_by_test_id("segment-name").fill(name)
    browser_page.get_by_test_id("save").click()
    browser_page.wait_for_url("**/segments/*")
    assert browser_page.get_by_test_id("saved-size").inner_text().strip() == "1"


def test_build_count_save_and_see_members_in_the_browser(page, live_server):  # noqa: F811
    sign_in_browser(page, live_server, wait=True)
    page.goto("/segments/new")
    page.get_by_test_id("add-condition").click()  # a tag condition: VIP (the first tag)
    page.get_by_test_id("tag").first.select_option("VIP")
    page.get_by_test_id("add-condition").click()
    page.get_by_test_id("kind").nth(1).select_option("identity")
    page.get_by_test_id("identity").select_option("line_uid")
    _one_member_saved(page, "王小明", "有 LINE 的 VIP")
    page.wait_for_function("document.querySelector('[data-testid=sample]').innerText.includes('王小明')")
    page.goto("/segments")
    assert "有 LINE 的 VIP" in page.content()


def test_groups_nest_in_groups_in_the_browser(page, live_server):  # noqa: F811
    # VIP AND (any of: (NOT all of: 愛喝烏龍)): the VIP who does not love oolong, 林美玲
    sign_in_browser(page, live_server, wait=True)
    page.goto("/segments/new")
    page.get_by_test_id("add-condition").click()
    page.get_by_test_id("tag").first.select_option("VIP")
    page.get_by_test_id("add-group").click()
    page.get_by_test_id("group-add-group").first.click()  # a group inside the group
    inner = page.get_by_test_id("group").nth(1)
    inner.get_by_test_id("group-op").select_option("and")
    inner.get_by_test_id("group-negate").check()
    inner.get_by_test_id("group-add-condition").click()
    page.get_by_test_id("tag").nth(1).select_option("愛喝烏龍")
    _one_member_saved(page, "林美玲", "不愛烏龍的 VIP")
    assert page.get_by_test_id("group").count() == 2  # the saved tree comes back with both levels editable
    assert page.get_by_test_id("group").nth(1).get_by_test_id("group-negate").is_checked()
    assert page.get_by_test_id("tag").nth(1).input_value() == "愛喝烏龍"
