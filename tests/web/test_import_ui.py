"""The import wizard of the web UI through HTTP (TestClient) on SQLite and PostgreSQL: each step, an edited
mapping changing what lands, refused files, tenancy (another workspace's import is 404), roles and CSRF.
The test queue runs the import inline as soon as the start is committed."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.web.conftest import csrf_of, seed_workspace, sign_in
from tutti.audience import imports
from tutti.audience.models import Contact, Identity, ImportJob, Order
from tutti.platform import workspaces
from tutti.platform.audit import Actor
from tutti.web import i18n

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
SOURCE = Path(__file__).parents[2] / "src" / "tutti" / "audience" / "import_ui.py"

# Row 4 has a phone that is not one, row 6 repeats row 3's member; the header is row 1.
MESSY = (
    "會員編號,姓名,手機,Email,會員等級,備註\r\n"
    "M001,張志豪,0912-000-001,hao@example.com,金卡,常客\r\n"
    "M002,李淑芬,0912000002,fen@example.com,銀卡,\r\n"
    "M003,黃建國,12345,kuo@example.com,銀卡,電話錯誤\r\n"
    "M004,吳佳穎,0912 000 004,ying@example.com,一般,\r\n"
    "M002,李淑芬,0912000002,fen@example.com,銀卡,\r\n"
).encode()
HEADERS = ["會員編號", "姓名", "手機", "Email", "會員等級", "備註"]


def count(database, model, *where) -> int:
    with database.session() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where))


def upload(client, content: bytes = MESSY, name: str = "會員名單.csv", kind: str = "members", **extra):
    return client.post("/imports", data={"kind": kind, "csrf_token": client.csrf},
                       files={"file": (name, content, "text/csv")}, follow_redirects=False, **extra)


def uploaded_id(client, content: bytes = MESSY, **kwargs) -> int:
    answer = upload(client, content, **kwargs)
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/imports/(\d+)/mapping", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


def selected(html: str, position: int) -> str:
    """The option chosen in the select of column `position` on the mapping page."""
    select_html = re.search(rf'<select name="col_{position}".*?</select>', html, re.DOTALL).group(0)
    return re.search(r'<option value="([^"]+)" selected>', select_html).group(1)


def form_of(mapping: dict[str, str]) -> dict[str, str]:
    data = {}
    for position, header in enumerate(HEADERS):
        target = mapping[header]
        if target.startswith("attribute:"):
            data[f"col_{position}"], data[f"attr_{position}"] = "attribute", target.split(":", 1)[1]
        else:
            data[f"col_{position}"] = target
    return data


def error_rows(html: str) -> dict[int, str]:
    table = re.search(r'<table class="table error-table">.*?</table>', html, re.DOTALL)
    if not table:
        return {}
    rows = re.findall(r'<tr data-row="(\d+)"><td class="row-no">\d+</td><td>(.*?)</td><td>(.*?)</td></tr>', table.group(0))
    return {int(row): unescape(reason) for row, _, reason in rows}


def contact_of(database, workspace_id: int, external_id: str) -> Contact | None:
    with database.session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id,
                                                                 Identity.kind == "external_id", Identity.value == external_id))
        contact = db.get(Contact, contact_id) if contact_id else None
        if contact is not None:
            db.expunge(contact)
        return contact


# --- the steps ----------------------------------------------------------------------------------------


def test_list_is_empty_then_upload_shows_columns_samples_and_the_guessed_mapping(owner_client, database, seeded):
    listing = owner_client.get("/imports")
    assert listing.status_code == 200 and "尚未匯入任何資料" in listing.text and 'href="/imports/new"' in listing.text
    form = owner_client.get("/imports/new")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text and 'name="csrf_token"' in form.text

    import_id = uploaded_id(owner_client)
    page = owner_client.get(f"/imports/{import_id}/mapping")
    assert page.status_code == 200
    assert [unescape(h) for h in re.findall(r'<td class="col-name">(.*?)</td>', page.text)] == HEADERS
    assert [selected(page.text, i) for i in range(6)] == ["external_id", "name", "phone", "email", "attribute", "attribute"]
    assert 'name="attr_4" value="tier"' in page.text and 'name="attr_5" value="note"' in page.text
    samples = re.search(r'data-column="手機".*?</tr>', page.text, re.DOTALL).group(0)
    assert re.findall(r'<span class="sample"[^>]*>(.*?)</span>', samples) == ["0912-000-001", "0912000002", "12345"]
    assert "共 6 個欄位" in page.text and "會員名單.csv" in page.text and "<option value=\"phone\"" in page.text
    assert ">手機</option>" in page.text  # field labels in zh-TW

    listing = owner_client.get("/imports").text
    row = re.search(rf'<tr class="import-row" data-import="{import_id}">.*?</tr>', listing, re.DOTALL).group(0)
    assert "會員名單.csv" in row and "待確認" in row and "陳店長" in row and f"/imports/{import_id}/mapping" in row
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert (job.status, job.total_rows, job.workspace_id, job.created_by) == ("uploaded", 5, seeded.workspace_id, seeded.owner_id)
    # an import still to be checked has no progress page yet: it goes back to its mapping
    assert owner_client.get(f"/imports/{import_id}", follow_redirects=False).headers["location"] == f"/imports/{import_id}/mapping"


def test_preview_counts_bad_rows_by_file_row_number_then_start_imports_and_reports(owner_client, database, seeded):
    import_id = uploaded_id(owner_client)
    preview = owner_client.get(f"/imports/{import_id}/preview")
    assert preview.status_code == 200
    counts = {name: int(value.replace(",", "")) for name, value in
              re.findall(r'data-stat="(\w+)"><div class="stat-label">.*?</div><div class="stat-value[^"]*">([\d,]+)', preview.text, re.DOTALL)}
    assert counts == {"total": 5, "ok": 3, "bad": 2}
    errors = error_rows(preview.text)
    assert sorted(errors) == [4, 6]
    assert "「12345」不是有效的電話號碼" in errors[4] and "第 3 列" in errors[6]
    sample = re.search(r'<tr data-row="2">.*?</tr>', preview.text, re.DOTALL).group(0)
    assert "+886912000001" in sample and "張志豪" in sample and "金卡" in sample and "可匯入" in sample
    assert "略過" in re.search(r'<tr data-row="4">.*?</tr>', preview.text.split('id="preview-sample"')[1], re.DOTALL).group(0)
    assert count(database, Contact, Contact.workspace_id == seeded.workspace_id) == 3  # a dry run: only the seeded ones

    answer = owner_client.post(f"/imports/{import_id}/start", data={"csrf_token": owner_client.csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/imports/{import_id}"
    progress = owner_client.get(f"/imports/{import_id}")
    assert progress.status_code == 200
    assert 'data-status="done"' in progress.text and "匯入完成" in progress.text and "hx-trigger" not in progress.text
    assert "已處理 5 列中的 5 列（100%）" in progress.text and 'href="/contacts"' in progress.text
    assert sorted(error_rows(progress.text)) == [4, 6]
    for external_id, name in [("M001", "張志豪"), ("M002", "李淑芬"), ("M004", "吳佳穎")]:
        contact = contact_of(database, seeded.workspace_id, external_id)
        assert contact is not None and contact.name == name
    assert contact_of(database, seeded.workspace_id, "M003") is None
    assert contact_of(database, seeded.workspace_id, "M001").attributes == {"tier": "金卡", "note": "常客"}
    contacts_page = owner_client.get("/contacts").text
    assert all(name in contacts_page for name in ("張志豪", "李淑芬", "吳佳穎")) and "黃建國" not in contacts_page

    report = owner_client.get(f"/imports/{import_id}/errors.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert "attachment" in report.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0] == ["列", "欄位", "原因", "code", *HEADERS]
    assert [(line[0], line[1], line[3]) for line in lines[1:]] == [("4", "手機", "bad_phone"), ("6", "會員編號", "duplicate")]
    assert lines[1][4:] == ["M003", "黃建國", "12345", "kuo@example.com", "銀卡", "電話錯誤"]  # the row as it was in the file
    owner_client.cookies.set("tutti_locale", "en")
    english = list(csv.reader(io.StringIO(owner_client.get(f"/imports/{import_id}/errors.csv").content.decode("utf-8-sig"))))
    assert english[0][:3] == ["Row", "Column", "Reason"] and "is not a valid phone number" in english[1][2]

    # a finished import: its mapping and preview lead to the result, starting again changes nothing
    assert owner_client.get(f"/imports/{import_id}/mapping", follow_redirects=False).headers["location"] == f"/imports/{import_id}"
    assert owner_client.get(f"/imports/{import_id}/preview", follow_redirects=False).headers["location"] == f"/imports/{import_id}"
    again = owner_client.post(f"/imports/{import_id}/start", data={"csrf_token": owner_client.csrf}, follow_redirects=False)
    assert again.status_code == 303
    listing = owner_client.get("/imports").text
    row = re.search(rf'<tr class="import-row" data-import="{import_id}">.*?</tr>', listing, re.DOTALL).group(0)
    assert ">Done<" in row and ">3<" in row and ">2<" in row


def test_an_edited_mapping_changes_what_lands(owner_client, database, seeded):
    import_id = uploaded_id(owner_client)
    mapping = {"會員編號": "external_id", "姓名": "name", "手機": "ignore", "Email": "email", "會員等級": "attribute:level",
               "備註": "ignore"}
    answer = owner_client.post(f"/imports/{import_id}/mapping", data={**form_of(mapping), "csrf_token": owner_client.csrf},
                               follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/imports/{import_id}/preview"
    with database.session() as db:
        assert db.get(ImportJob, import_id).mapping == mapping
    page = owner_client.get(f"/imports/{import_id}/mapping").text  # going back shows the edited mapping
    assert [selected(page, i) for i in range(6)] == ["external_id", "name", "ignore", "email", "attribute", "ignore"]
    assert 'name="attr_4" value="level"' in page
    preview = owner_client.get(f"/imports/{import_id}/preview").text
    assert sorted(error_rows(preview)) == [6]  # without the phone column, row 4 is fine
    owner_client.post(f"/imports/{import_id}/start", data={"csrf_token": owner_client.csrf})
    kuo = contact_of(database, seeded.workspace_id, "M003")
    assert kuo is not None and kuo.name == "黃建國" and kuo.attributes == {"level": "銀卡"}
    with database.session() as db:
        phones = db.scalar(select(func.count()).select_from(Identity).where(Identity.workspace_id == seeded.workspace_id,
                                                                            Identity.kind == "phone"))
    assert phones == 2  # only the seeded contacts' phones: the column was not imported


def test_a_mapping_that_cannot_work_is_explained_and_kept_on_the_page(owner_client, database, seeded):
    import_id = uploaded_id(owner_client)
    cases = [
        ({"手機": "email"}, "「手機」與「Email」兩欄都對應到「電子郵件」"),
        ({"會員編號": "ignore", "手機": "ignore", "Email": "ignore"}, "請至少將一欄對應到會員編號"),
        ({"會員等級": "attribute:會員 等級"}, "「會員等級」欄：「會員 等級」不能當作屬性名稱"),
        ({"會員等級": "attribute:"}, "不能當作屬性名稱"),
    ]
    base = {"會員編號": "external_id", "姓名": "name", "手機": "phone", "Email": "email", "會員等級": "attribute:tier", "備註": "ignore"}
    for change, message in cases:
        answer = owner_client.post(f"/imports/{import_id}/mapping", data={**form_of({**base, **change}), "csrf_token": owner_client.csrf})
        assert answer.status_code == 422 and message in unescape(answer.text), (change, answer.text[-3000:])
        assert selected(answer.text, 2) == {**base, **change}["手機"]  # what was chosen stays chosen
    owner_client.cookies.set("tutti_locale", "en")
    answer = owner_client.post(f"/imports/{import_id}/mapping", data={**form_of({**base, "手機": "email"}), "csrf_token": owner_client.csrf})
    assert answer.status_code == 422 and "Columns “手機” and “Email” both go to “E-mail”" in unescape(answer.text)
    with database.session() as db:
        assert db.get(ImportJob, import_id).mapping == imports.guess_mapping(HEADERS, "members")  # nothing bad was saved


def test_orders_go_through_the_same_steps(owner_client, database, seeded):
    import_id = uploaded_id(owner_client, (FIXTURES / "orders.csv").read_bytes(), name="orders.csv", kind="orders")
    page = owner_client.get(f"/imports/{import_id}/mapping").text
    assert selected(page, 0) == "order_id" and selected(page, 3) == "placed_at" and ">訂單編號</option>" in page
    preview = owner_client.get(f"/imports/{import_id}/preview")
    assert preview.status_code == 200 and "匯入前檢查" in preview.text
    owner_client.post(f"/imports/{import_id}/start", data={"csrf_token": owner_client.csrf})
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert job.status == "done" and job.ok_rows > 0
        assert db.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == seeded.workspace_id,
                                                                      Order.external_id == "A1001")) == 1


def test_progress_polls_every_second_while_running_and_stops_when_done(owner_client, database, seeded):
    import_id = uploaded_id(owner_client)
    with database.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(status="running", processed_rows=2, ok_rows=1, error_rows=1))
    page = owner_client.get(f"/imports/{import_id}")
    assert f'hx-get="/imports/{import_id}/progress" hx-trigger="every 1s"' in page.text
    assert "已處理 5 列中的 2 列（40%）" in page.text and "匯入中" in page.text and 'data-action="contacts"' not in page.text
    fragment = owner_client.get(f"/imports/{import_id}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<div id="import-progress"')
    assert "<html" not in fragment.text and 'hx-trigger="every 1s"' in fragment.text
    with database.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(status="done", processed_rows=5, ok_rows=3, error_rows=2))
    fragment = owner_client.get(f"/imports/{import_id}/progress", headers={"HX-Request": "true"}).text
    assert "hx-trigger" not in fragment and 'data-status="done"' in fragment and 'data-action="contacts"' in fragment


# --- refused files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, name, zh, en", [
    (b"", "empty.csv", "檔案是空的。", "The file is empty."),
    ("姓名,手機\n".encode(), "header-only.csv", "檔案只有標題列，沒有任何資料列。", "The file has a header row but no data rows."),
    (b"PK\x03\x04this is not really a zip", "broken.xlsx", "無法讀取這個 Excel 檔案", "This Excel file cannot be read"),
    (bytes(range(256)) * 20, "photo.csv", "這不是 CSV 或 Excel 檔案", "This file is not a CSV or Excel file"),
])
def test_a_bad_file_is_refused_in_the_chosen_language_and_nothing_is_stored(owner_client, database, content, name, zh, en):
    answer = upload(owner_client, content, name=name)
    assert answer.status_code == 422 and zh in answer.text and 'role="alert"' in answer.text
    assert '<form class="card stack" method="post" action="/imports"' in answer.text  # the form again, to try another file
    owner_client.cookies.set("tutti_locale", "en")
    answer = upload(owner_client, content, name=name, kind="orders")
    assert answer.status_code == 422 and en in answer.text
    assert 'value="orders" checked' in answer.text  # the chosen kind is kept
    assert count(database, ImportJob) == 0


def test_no_file_or_an_unknown_kind_is_refused(owner_client, database):
    answer = owner_client.post("/imports", data={"kind": "members", "csrf_token": owner_client.csrf})
    assert answer.status_code == 422 and "請選擇要上傳的檔案。" in answer.text
    answer = upload(owner_client, kind="coupons")
    assert answer.status_code == 422 and "請選擇會員或訂單。" in answer.text
    assert count(database, ImportJob) == 0


# --- tenancy, roles, CSRF -----------------------------------------------------------------------------


def test_an_import_of_another_workspace_is_404_and_left_alone(owner_client, database, seeded):
    other = seed_workspace(database, name="別家店", email="other@example.com")
    with database.session() as db:
        job = imports.create_import(db, workspace_id=other.workspace_id, kind="members", filename="theirs.csv", content=MESSY,
                                    actor=Actor.cli())
        theirs = job.id
    token = {"csrf_token": owner_client.csrf}
    for method, url, data in [
        ("get", f"/imports/{theirs}", None), ("get", f"/imports/{theirs}/mapping", None), ("get", f"/imports/{theirs}/preview", None),
        ("get", f"/imports/{theirs}/progress", None), ("get", f"/imports/{theirs}/errors.csv", None),
        ("post", f"/imports/{theirs}/mapping", {**form_of({h: "ignore" for h in HEADERS}), "col_0": "external_id", **token}),
        ("post", f"/imports/{theirs}/start", token), ("get", "/imports/9223372036854775807", None),
        ("get", "/imports/99999999999999999999999/mapping", None), ("get", "/imports/0", None),
    ]:
        answer = getattr(owner_client, method)(url, data=data) if data else getattr(owner_client, method)(url)
        assert answer.status_code == 404, (method, url, answer.status_code)
        assert "theirs.csv" not in answer.text
    assert "theirs.csv" not in owner_client.get("/imports").text
    with database.session() as db:
        job = db.get(ImportJob, theirs)
        assert (job.status, job.processed_rows, job.mapping) == ("uploaded", 0, imports.guess_mapping(HEADERS, "members"))
    assert contact_of(database, other.workspace_id, "M001") is None


@pytest.mark.parametrize("role", ["analyst", "agent"])
def test_a_role_without_imports_run_is_refused(client, database, seeded, role):
    with database.session() as db:
        user = workspaces.create_user(db, email=f"{role}@example.com", password=seeded.password, name=role)
        workspaces.add_member(db, workspace_id=seeded.workspace_id, user_id=user.id, role=role, actor=Actor.cli())
        job = imports.create_import(db, workspace_id=seeded.workspace_id, kind="members", filename="ours.csv", content=MESSY,
                                    actor=Actor.cli())
        ours = job.id
    assert sign_in(client, email=f"{role}@example.com").status_code == 303
    client.csrf = csrf_of(client.get("/settings/tags").text)
    for url in ["/imports", "/imports/new", f"/imports/{ours}", f"/imports/{ours}/mapping", f"/imports/{ours}/preview",
                f"/imports/{ours}/progress", f"/imports/{ours}/errors.csv"]:
        answer = client.get(url)
        assert answer.status_code == 403 and "你的角色沒有權限執行此操作。" in answer.text, url
    assert upload(client).status_code == 403
    assert client.post(f"/imports/{ours}/start", data={"csrf_token": client.csrf}).status_code == 403
    assert count(database, ImportJob) == 1
    with database.session() as db:
        assert db.get(ImportJob, ours).status == "uploaded"


def test_every_write_needs_the_csrf_token(owner_client, database):
    answer = owner_client.post("/imports", data={"kind": "members"}, files={"file": ("a.csv", MESSY, "text/csv")})
    assert answer.status_code == 403 and count(database, ImportJob) == 0
    import_id = uploaded_id(owner_client)
    assert owner_client.post(f"/imports/{import_id}/start").status_code == 403
    assert owner_client.post(f"/imports/{import_id}/start", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert owner_client.post(f"/imports/{import_id}/mapping", data=form_of(imports.guess_mapping(HEADERS, "members"))).status_code == 403
    with database.session() as db:
        assert db.get(ImportJob, import_id).status == "uploaded"
    # htmx sends the token as a header: that is accepted too
    answer = owner_client.post(f"/imports/{import_id}/start", headers={"X-CSRF-Token": owner_client.csrf}, follow_redirects=False)
    assert answer.status_code == 303
    with database.session() as db:
        assert db.get(ImportJob, import_id).status == "done"


def test_pages_carry_the_csrf_token_and_the_htmx_header(owner_client):
    import_id = uploaded_id(owner_client)
    for url in ["/imports/new", f"/imports/{import_id}/mapping", f"/imports/{import_id}/preview"]:
        html = owner_client.get(url).text
        assert f'name="csrf_token" value="{owner_client.csrf}"' in html, url
        assert f'hx-headers=\'{{"X-CSRF-Token": "{owner_client.csrf}"}}\'' in html, url


def test_english_pages_show_no_untranslated_keys(owner_client):
    owner_client.cookies.set("tutti_locale", "en")
    import_id = uploaded_id(owner_client)
    texts = [owner_client.get(url).text for url in ["/imports", "/imports/new", f"/imports/{import_id}/mapping",
                                                        f"/imports/{import_id}/preview"]]
    owner_client.post(f"/imports/{import_id}/start", data={"csrf_token": owner_client.csrf})
    texts += [owner_client.get(url).text for url in ["/imports", f"/imports/{import_id}"]]
    for text in texts:
        assert not re.findall(r">\s*((?:imports|errors)\.[a-z_.]+)\s*<", text)
    assert "Match the columns" in texts[2] and "Check before importing" in texts[3] and "Import finished" in texts[5]


def test_keys_used_by_the_wizard_exist_in_both_languages():
    en, zh = i18n.catalog("en"), i18n.catalog("zh-TW")
    used = set(re.findall(r'"((?:imports|errors)\.[a-z_.]+)"', SOURCE.read_text(encoding="utf-8")))
    used |= {f"imports.status.{s}" for s in ("uploaded", "queued", "running", "done", "failed")}
    used |= {f"imports.state.{s}" for s in ("uploaded", "queued", "running", "done", "failed")}
    used |= {f"imports.kind.{k}" for k in imports.KINDS} | {f"imports.kind.{k}_hint" for k in imports.KINDS}
    used |= {f"imports.step.{s}" for s in ("upload", "mapping", "preview", "run")}
    used -= {"imports.run"}  # the permission, not a text
    assert not used - set(en) and not used - set(zh), sorted(used - set(en) - set(zh))
