"""The channels page in headless Chromium: pick SMTP, connect, see it listed; connect LINE to the emulator and test it."""

from __future__ import annotations

import pytest

from tests.web.conftest import SCREENSHOTS, browser, live_server, page, sign_in_browser  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def test_connect_smtp_then_line_and_test_it(page, live_server, line_emulator, database_url):  # noqa: F811
    from playwright import sync_api

    sign_in_browser(page, live_server, wait=True)
    page.click("a[href='/channels']")
    page.wait_for_url(live_server.url + "/channels")
    sync_api.expect(page.locator("form[data-form=email]")).to_be_hidden()
    page.click("a[data-kind=email]")
    form = page.locator("form[data-form=email]")
    sync_api.expect(form).to_be_visible()
    form.locator("input[name=name]").fill("電子報")
    form.locator("input[name='email.host']").fill("127.0.0.1")
    form.locator("input[name='email.from_address']").fill("news@shop.example")
    form.locator("button[type=submit]").click()
    sync_api.expect(page.locator(".alert-success")).to_contain_text("電子報")
    sync_api.expect(page.locator(".channels-table")).to_contain_text("news@shop.example")

    form = page.locator("form[data-form=line]")
    form.locator("input[name=name]").fill("茶語 LINE")
    form.locator("input[name='line.channel_secret']").fill(line_emulator.channel_secret)
    form.locator("input[name='line.access_token']").fill(line_emulator.access_token)
    form.locator("input[name='line.api_base_url']").fill(line_emulator.base_url)
    form.locator("button[type=submit]").click()
    row = page.locator("tr", has_text="茶語 LINE")
    with page.expect_navigation(timeout=60_000):  # a busy machine: the provider round trip may take a while
        row.locator("button", has_text="測試連線").click()
    sync_api.expect(page.locator(".alert-success")).to_contain_text("@tutti-emu")
    sync_api.expect(page.locator("tr", has_text="茶語 LINE").locator(".badge-green")).to_be_visible()
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-channels.png"), full_page=True)
