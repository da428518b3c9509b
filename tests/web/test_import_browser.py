"""The import wizard in a real browser (headless Chromium via Playwright) against a live server, on both
engines: a messy zh-TW members file goes through upload, mapping, dry run and import, and the people land
in the contact list. The live server's queue runs the import inline when it is started."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright import sync_api
from sqlalchemy import select, update

from tests.web.conftest import SCREENSHOTS, sign_in_browser
from tutti.audience import imports
from tutti.audience.models import Contact, Identity, ImportJob
from tutti.platform.audit import Actor

expect = sync_api.expect

# As a shop's export often is: a BOM, zh-TW headers, phones written three ways, a blank line, a phone that is
# not one (row 4) and the same member twice (row 7 repeats row 3). Row numbers are the ones a spreadsheet shows.
MESSY = "\ufeff" + (
    "會員編號,姓名,手機,Email,會員等級,備註\r\n"
    "M001,張志豪,0912-000-001,hao@example.com,金卡,常客\r\n"
    "M002,李淑芬,0912000002,fen@example.com,銀卡,\r\n"
    "M003,黃建國,12345,kuo@example.com,銀卡,電話錯誤\r\n"
    "\r\n"
    "M004,吳佳穎,０９１２ ０００ ００４,ying@example.com,一般,\r\n"
    "M002,李淑芬,0912000002,fen@example.com,銀卡,\r\n"
)

pytestmark = pytest.mark.browser


def test_messy_members_file_through_every_step_lands_in_the_contact_list(page, live_server, database, database_url):
    workspace_id = live_server.seed.workspace_id
    sign_in_browser(page, live_server, wait=True)
    page.click(".sidebar >> text=匯入")
    page.wait_for_url(live_server.url + "/imports")
    expect(page.locator(".page-header h1")).to_have_text("匯入")
    page.click("[data-action=new-import]")

    # 1. upload
    expect(page.locator(".wizard-steps li.current")).to_have_text("上傳檔案")
    expect(page.locator("input[name=kind][value=members]")).to_be_checked()
    page.set_input_files("input[name=file]", files=[{"name": "空白.csv", "mimeType": "text/csv", "buffer": b"\r\n"}])
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-form .alert-error")).to_have_text("檔案是空的。")  # refused, in the page's language
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-import-upload.png"), full_page=True)
    page.set_input_files("input[name=file]", files=[{"name": "會員名單.csv", "mimeType": "text/csv", "buffer": MESSY.encode()}])
    page.click("#upload-form button[type=submit]")

    # 2. mapping: the guess, then one column changed
    page.wait_for_url("**/mapping")
    expect(page.locator(".wizard-steps li.current")).to_have_text("對應欄位")
    rows = page.locator("tr.map-row")
    expect(rows).to_have_count(6)
    expect(page.locator("select[name=col_0]")).to_have_value("external_id")
    expect(page.locator("select[name=col_1]")).to_have_value("name")
    expect(page.locator("select[name=col_2]")).to_have_value("phone")
    expect(page.locator("select[name=col_3]")).to_have_value("email")
    expect(page.locator("select[name=col_4]")).to_have_value("attribute")
    expect(page.locator("input[name=attr_4]")).to_have_value("tier")
    expect(page.locator("input[name=attr_4]")).to_be_visible()
    expect(page.locator("select[name=col_5]")).to_have_value("attribute")
    expect(page.locator("tr[data-column='手機'] .sample")).to_have_text(["0912-000-001", "0912000002", "12345"])
    page.select_option("select[name=col_5]", "ignore")  # the remarks column is not wanted
    expect(page.locator("input[name=attr_5]")).to_be_hidden()
    expect(page.locator("tr[data-column='備註']")).to_have_class("map-row ignored")
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-import-mapping.png"), full_page=True)
    page.click("#mapping-form button[type=submit]")

    # 3. dry run: the bad rows by the numbers the spreadsheet shows
    page.wait_for_url("**/preview")
    expect(page.locator("[data-stat=total] .stat-value")).to_have_text("5")
    expect(page.locator("[data-stat=ok] .stat-value")).to_have_text("3")
    expect(page.locator("[data-stat=bad] .stat-value")).to_have_text("2")
    errors = page.locator("#preview-errors tr[data-row]")
    expect(errors).to_have_count(2)
    expect(page.locator("#preview-errors tr[data-row='4']")).to_contain_text("「12345」不是有效的電話號碼")
    expect(page.locator("#preview-errors tr[data-row='4']")).to_contain_text("手機")
    expect(page.locator("#preview-errors tr[data-row='7']")).to_contain_text("第 3 列")
    expect(page.locator("#preview-sample tr[data-row='6']")).to_contain_text("+886912000004")  # full-width digits read
    expect(page.locator("#preview-sample tr[data-row='4']")).to_contain_text("手機：「12345」不是有效的電話號碼")
    expect(page.locator("#preview-sample thead")).not_to_contain_text("note")
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-import-preview.png"), full_page=True)

    # back to the mapping: the change is kept; on again
    page.click("[data-action=back]")
    page.wait_for_url("**/mapping")
    expect(page.locator("select[name=col_5]")).to_have_value("ignore")
    page.click("#mapping-form button[type=submit]")
    page.wait_for_url("**/preview")

    # 4. start, and the progress page says done
    page.click("[data-action=start]")
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "done")
    expect(page.locator("#import-progress h2").first).to_contain_text("匯入完成")
    expect(page.locator("[data-stat=ok] .stat-value")).to_have_text("3")
    expect(page.locator("#error-report tr[data-row]")).to_have_count(2)
    expect(page.locator("[data-action=errors-csv]")).to_be_visible()
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-import-progress.png"), full_page=True)
    with page.expect_download() as download_info:
        page.click("[data-action=errors-csv]")
    report = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert report.splitlines()[0].startswith("列,欄位,原因,code,會員編號") and "bad_phone" in report and "duplicate" in report

    # 5. the people are in the contact list
    page.click("[data-action=contacts]")
    page.wait_for_url(live_server.url + "/contacts")
    results = page.locator("#contact-results")
    for name in ("張志豪", "李淑芬", "吳佳穎"):
        expect(results).to_contain_text(name)
    expect(results).not_to_contain_text("黃建國")
    page.goto("/imports")
    expect(page.locator("tr.import-row").first).to_contain_text("會員名單.csv")
    expect(page.locator("tr.import-row").first).to_contain_text("完成")
    expect(page.locator("tr.import-row")).to_have_count(1)  # the refused file left nothing behind
    if "sqlite" in database_url:
        page.screenshot(path=str(SCREENSHOTS / "tutti-import-list.png"), full_page=True)

    with database.session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == "external_id",
                                                                 Identity.value == "M001"))
        assert db.get(Contact, contact_id).attributes == {"tier": "金卡"}  # the ignored remarks did not land


def test_progress_page_follows_a_running_import_until_it_is_done(page, live_server, database, database_url):
    """The page polls every second: a job finishing elsewhere (a worker) shows up without reloading."""
    workspace_id = live_server.seed.workspace_id
    with database.session() as db:
        job = imports.create_import(db, workspace_id=workspace_id, kind="members", filename="大檔案.csv", content=MESSY.encode(),
                                    actor=Actor.cli())
        job.status, job.processed_rows, job.ok_rows, job.error_rows = "running", 2, 2, 0
        import_id = job.id
    sign_in_browser(page, live_server, wait=True)
    page.goto(f"/imports/{import_id}")
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "running")
    expect(page.locator("#import-processed")).to_have_text("已處理 5 列中的 2 列（40%）")
    with page.expect_request(f"**/imports/{import_id}/progress"):
        pass  # it asks again by itself
    with database.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(processed_rows=4, ok_rows=3, error_rows=1))
    expect(page.locator("#import-processed")).to_have_text("已處理 5 列中的 4 列（80%）")
    with database.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(status="done", processed_rows=5, ok_rows=3, error_rows=2))
    expect(page.locator("#import-progress")).to_have_attribute("data-status", "done")
    expect(page.locator("[data-action=contacts]")).to_be_visible()
    requests = []
    page.on("request", lambda request: requests.append(request.url) if "/progress" in request.url else None)
    page.wait_for_timeout(2500)
    assert requests == []  # finished: no more polling
