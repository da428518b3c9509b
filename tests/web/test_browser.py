"""The UI in a real browser (headless Chromium via Playwright) against a live server, on both engines."""

from __future__ import annotations

import pytest
from playwright import sync_api

from tests.web.conftest import SCREENSHOTS, sign_in_browser

pytestmark = pytest.mark.browser


def test_wrong_password_shows_error_in_chosen_language_then_right_one_lands_on_home(page, live_server, database_url):
    sign_in_browser(page, live_server, password="not the password")
    sync_api.expect(page.locator(".alert-error")).to_have_text("電子郵件或密碼不正確。")
    page.click("a[data-locale=en]")
    sync_api.expect(page.locator("h1")).to_have_text("Sign in to Tutti")
    sign_in_browser(page, live_server, password="still wrong")
    sync_api.expect(page.locator(".alert-error")).to_have_text("The e-mail or password is not right.")

    sign_in_browser(page, live_server)
    page.wait_for_url(live_server.url + "/")
    sync_api.expect(page.locator("[data-stat=contacts] .stat-value")).to_have_text("3")
    sync_api.expect(page.locator("[data-stat=reachable-line] .stat-value")).to_have_text("1")
    sync_api.expect(page.locator("[data-stat=orders] .stat-value")).to_have_text("2")
    sync_api.expect(page.locator(".workspace-name")).to_have_text("茶語商行")
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-home-en.png"), full_page=True)


def test_language_switch_changes_every_label_and_sticks(page, live_server):
    sign_in_browser(page, live_server)
    page.wait_for_url(live_server.url + "/")
    sync_api.expect(page.locator(".page-header h1")).to_have_text("總覽")
    sync_api.expect(page.locator("html")).to_have_attribute("lang", "zh-TW")
    page.click(".topbar a[data-locale=en]")
    sync_api.expect(page.locator(".page-header h1")).to_have_text("Home")
    sync_api.expect(page.locator(".sidebar")).to_contain_text("Contacts")
    page.goto("/contacts")
    sync_api.expect(page.locator(".page-header h1")).to_have_text("Contacts")
    page.click(".topbar a[data-locale=zh-TW]")
    sync_api.expect(page.locator(".page-header h1")).to_have_text("聯絡人")
    page.wait_for_url(live_server.url + "/contacts")


def test_live_search_by_name_and_dashed_phone_then_open_the_360_page(page, live_server, database_url):
    sign_in_browser(page, live_server)
    page.wait_for_url(live_server.url + "/")
    page.click(".sidebar >> text=聯絡人")
    rows = page.locator("#contact-results tr.contact-row")
    sync_api.expect(rows).to_have_count(3)
    page.fill("input[name=q]", "美玲")
    sync_api.expect(rows).to_have_count(1)
    sync_api.expect(rows.first).to_contain_text("林美玲")
    page.fill("input[name=q]", "0922-333-444")
    sync_api.expect(rows).to_have_count(1)
    sync_api.expect(rows.first).to_contain_text("林美玲")
    page.fill("input[name=q]", "小明")
    sync_api.expect(rows).to_have_count(1)
    sync_api.expect(rows.first).to_contain_text("王小明")  # not the previous answer still on screen
    rows.first.locator("a.person").click()
    page.wait_for_url(f"{live_server.url}/contacts/{live_server.seed.contacts['王小明']}")
    sync_api.expect(page.locator("#identities")).to_contain_text("+886912345678")
    sync_api.expect(page.locator("#identities")).to_contain_text("ming@example.com")
    sync_api.expect(page.locator("#tags")).to_contain_text("愛喝烏龍")
    sync_api.expect(page.locator("#consent")).to_contain_text("已訂閱")
    timeline = page.locator("#timeline .tl-item")
    sync_api.expect(timeline.filter(has_text="O-1001")).to_have_count(1)
    sync_api.expect(timeline.filter(has_text="Product Viewed")).to_have_count(3)
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-contact-360.png"), full_page=True)
        page.goto("/")
        page.screenshot(path=str(SCREENSHOTS / "tutti-home.png"), full_page=True)


def test_form_post_without_csrf_token_is_refused(page, live_server, database_url):
    sign_in_browser(page, live_server)
    page.wait_for_url(live_server.url + "/")
    # a form on another page (as a hostile site would post it) carries the cookie but not the token
    answer = page.request.post("/settings/tags", form={"name": "偷渡標籤"})
    assert answer.status == 403
    page.goto("/settings/tags")
    sync_api.expect(page.locator("body")).not_to_contain_text("偷渡標籤")
    # the real form, with its token, works
    page.fill("form[action='/settings/tags'] input[name=name]", "新品試喝")
    page.click("form[action='/settings/tags'] button[type=submit]")
    sync_api.expect(page.locator(".alert-success")).to_have_text("標籤已建立。")
    sync_api.expect(page.locator("table")).to_contain_text("新品試喝")
