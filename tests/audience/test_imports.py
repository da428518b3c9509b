"""Imports of members and orders from messy CSV and Excel files: bad rows reported by row number and skipped,
good rows landing exactly once, even when the job crashes half-way and resumes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.conftest import bearer
from tutti.audience import commerce, imports, jobs
from tutti.audience.filereader import read_table
from tutti.audience.models import (
    Consent,
    ConsentChange,
    Contact,
    ContactTag,
    Identity,
    ImportJob,
    Order,
    OrderLine,
    Product,
    TagApplication,
)
from tutti.platform.audit import Actor
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.models import AuditLog

FIXTURES = Path(__file__).parent.parent / "fixtures" / "imports"
ACTOR = Actor.cli()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


def identity_owner(db, workspace_id, kind, value):
    return db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == kind,
                                                       Identity.value == value))


def contact_by(db, workspace_id, kind, value) -> Contact:
    return db.get(Contact, identity_owner(db, workspace_id, kind, value))


def upload(database, workspace_id, name, kind="members", content=None):
    with database.session() as db:
        job = imports.create_import(db, workspace_id=workspace_id, kind=kind, filename=name,
                                    content=fixture(name) if content is None else content, actor=ACTOR)
        return job.id


def import_file(database, workspace_id, name, kind="members", mapping=None, content=None) -> ImportJob:
    """Upload and start; the test queue runs the job as soon as start() commits."""
    import_id = upload(database, workspace_id, name, kind, content)
    with database.session() as db:
        imports.start(db, workspace_id=workspace_id, import_id=import_id, mapping=mapping, actor=ACTOR)
    with database.session() as db:
        return imports.get_import(db, workspace_id=workspace_id, import_id=import_id)


def errors_by_row(job_or_report) -> dict[int, list[tuple[str, str]]]:
    errors = job_or_report.errors if isinstance(job_or_report, ImportJob) else job_or_report["errors"]
    result: dict[int, list] = {}
    for e in errors:
        result.setdefault(e["row"], []).append((e["column"], e["code"]))
    return result


# --- reading files (no database) ----------------------------------------------------------------------


@pytest.mark.parametrize("name, encoding, delimiter, header_row, first_headers, rows", [
    ("utf8-bom.csv", "utf-8-sig", ",", 1, ["會員編號", "姓名", "手機號碼", "Email"], 3),
    ("big5.csv", "cp950", ",", 1, ["會員編號", "姓名", "電話", "電子郵件"], 3),
    ("unicode-text.txt", "utf-16", "\t", 1, ["姓名", "手機", "LINE ID"], 2),
    ("semicolon.csv", "utf-8", ";", 1, ["Customer ID", "E-mail", "Mobile"], 3),
    ("excel-dates.xlsx", None, None, 2, ["會員編號", "姓名", "手機", "生日"], 5),
])
def test_reads_each_encoding_delimiter_and_layout(name, encoding, delimiter, header_row, first_headers, rows):
    table = read_table(fixture(name), name)
    assert (table.encoding, table.delimiter, table.header_row) == (encoding, delimiter, header_row)
    assert table.headers[: len(first_headers)] == first_headers
    assert table.total_rows == rows  # blank lines are not rows


def test_utf16_without_bom_and_a_title_line_above_the_header():
    content = "會員名單 2024\r\n\r\n姓名\t手機\r\n王\t0912345678\r\n".encode("utf-16-le")
    table = read_table(content, "export.txt")
    assert (table.encoding, table.delimiter, table.header_row, table.headers) == ("utf-16-le", "\t", 3, ["姓名", "手機"])
    assert table.rows == [(4, ["王", "0912345678"])]


def test_row_numbers_are_the_ones_a_person_sees():
    table = read_table(fixture("utf8-bom.csv"), "utf8-bom.csv")
    # header is row 1; rows 3 and 5 are blank, so the data rows are 2, 4 and 6
    assert [row for row, _ in table.rows] == [2, 4, 6]
    assert table.rows[0][1][1] == "王小明"  # trailing space trimmed


def test_guess_mapping_understands_chinese_and_english_headers():
    members = imports.guess_mapping(["姓名", "手機號碼", "電子郵件", "出生日期", "性別", "縣市", "customer id", "LINE ID", "標籤",
                                     "會員等級", "Favourite Colour", "序號", "備用電話"], "members")
    assert members == {
        "姓名": "name", "手機號碼": "phone", "電子郵件": "email", "出生日期": "birthday", "性別": "gender", "縣市": "city",
        "customer id": "external_id", "LINE ID": "line_uid", "標籤": "tags", "會員等級": "attribute:tier",
        "Favourite Colour": "attribute:favourite_colour", "序號": "ignore", "備用電話": "ignore",  # phone is taken already
    }
    orders = imports.guess_mapping(["Order ID", "Email", "Order Date", "Total", "Status", "SKU", "Product", "Qty", "Price",
                                    "備註"], "orders")
    assert orders == {"Order ID": "order_id", "Email": "email", "Order Date": "placed_at", "Total": "total",
                      "Status": "status", "SKU": "sku", "Product": "product_name", "Qty": "quantity", "Price": "unit_price",
                      "備註": "ignore"}
    assert "attribute:<key>" not in imports.fields_for("members") and "ignore" in imports.fields_for("orders")


@pytest.mark.parametrize("text, expected", [
    ("1990-01-05", date(1990, 1, 5)), ("1990/1/5", date(1990, 1, 5)), ("1990年1月5日", date(1990, 1, 5)),
    ("民國79年1月5日", date(1990, 1, 5)), ("民國 79/01/05", date(1990, 1, 5)), ("079/01/05", date(1990, 1, 5)),
    ("19900105", date(1990, 1, 5)), ("33243", date(1991, 1, 5)), (33243, date(1991, 1, 5)), ("1/25/1990", date(1990, 1, 25)),
    ("25/1/1990", date(1990, 1, 25)), ("１９９０／１／５", date(1990, 1, 5)),
])
def test_dates_as_people_and_excel_write_them(text, expected):
    assert imports.parse_date(text) == expected


@pytest.mark.parametrize("text, code", [("1990-13-45", "bad_date"), ("3/4/1990", "ambiguous_date"), ("yesterday", "bad_date"),
                                        ("79/01/05", "ambiguous_date"), ("123", "bad_date")])
def test_dates_that_cannot_be_read_name_the_reason(text, code):
    with pytest.raises(imports.RowError) as raised:
        imports.parse_date(text)
    assert raised.value.code == code


# --- upload and preview ---------------------------------------------------------------------------------


def test_upload_detects_the_file_and_guesses_the_mapping(database, workspace_id):
    import_id = upload(database, workspace_id, "utf8-bom.csv")
    with database.session() as db:
        job = imports.get_import(db, workspace_id=workspace_id, import_id=import_id)
        assert (job.status, job.total_rows, job.encoding, job.file_format) == ("uploaded", 3, "utf-8-sig", "csv")
        assert job.mapping["手機號碼"] == "phone" and job.mapping["標籤"] == "tags"
        assert count(db, AuditLog, AuditLog.action == "import.create") == 1


@pytest.mark.parametrize("content, kind, message", [
    (b"", "members", "empty"),
    (b"   \r\n\r\n", "members", "empty"),
    ("姓名,手機\n".encode(), "members", "no data rows"),
    (b"PK\x03\x04this is not really a zip", "members", "Excel file cannot be read"),
    (bytes(range(256)) * 20, "members", "binary"),
    ("姓名,手機\n王,0912345678\n".encode(), "coupons", "unknown import kind"),
])
def test_unreadable_or_empty_files_are_refused_and_nothing_is_stored(database, workspace_id, content, kind, message):
    with database.session() as db, pytest.raises(InvalidInput, match=message):
        imports.create_import(db, workspace_id=workspace_id, kind=kind, filename="x.csv", content=content, actor=ACTOR)
    with database.session() as db:
        assert count(db, ImportJob) == 0


def test_preview_reports_every_bad_row_and_writes_no_contact(database, workspace_id):
    import_id = upload(database, workspace_id, "bad-rows.csv")
    with database.session() as db:
        report = imports.preview(db, workspace_id=workspace_id, import_id=import_id)
    assert (report["total_rows"], report["ok_rows"], report["error_rows"]) == (7, 2, 5)
    assert errors_by_row(report) == {
        3: [("手機", "bad_phone")], 4: [("Email", "bad_email")], 5: [("生日", "bad_date")], 6: [("性別", "bad_gender")],
        7: [("會員編號, 手機, Email", "no_identity")],
    }
    phone_error = report["errors"][0]
    assert "12345" in phone_error["reason"] and "電話" in phone_error["reason_zh"]
    assert report["sample"][0] == {"row": 2, "ok": True, "errors": [], "values": {
        "external_id": "G1", "email": "g1@example.com", "phone": "+886912345001", "name": "好一", "birthday": "1990-01-01",
        "gender": "female"}}
    assert report["sample"][6]["values"]["birthday"] == "1990-01-05"  # 民國79年1月5日
    with database.session() as db:
        assert count(db, Contact) == 0 and count(db, Identity) == 0
        assert db.get(ImportJob, import_id).status == "uploaded"


def test_preview_saves_an_edited_mapping_and_refuses_a_bad_one(database, workspace_id):
    import_id = upload(database, workspace_id, "bad-rows.csv")
    with database.session() as db:
        mapping = {"會員編號": "external_id", "手機": "ignore", "Email": "ignore", "生日": "ignore", "性別": "ignore", "姓名": "name"}
        report = imports.preview(db, workspace_id=workspace_id, import_id=import_id, mapping=mapping)
        assert (report["ok_rows"], report["error_rows"]) == (6, 1)  # only the row without any id is left bad
    with database.session() as db:
        assert db.get(ImportJob, import_id).mapping["手機"] == "ignore"
    bad_mappings = [
        ({"不存在": "phone"}, "no column '不存在'"),
        ({"手機": "shoe_size"}, "unknown field 'shoe_size'"),
        ({"手機": "phone", "Email": "phone"}, "both mapped to phone"),
        ({"會員編號": "ignore", "手機": "ignore", "Email": "ignore"}, "at least one column"),
        ({"姓名": "attribute:姓名"}, "not a valid attribute key"),
    ]
    for mapping, message in bad_mappings:
        full = {"會員編號": "ignore", "手機": "ignore", "Email": "ignore", "姓名": "name", **mapping}
        if "不存在" in mapping:
            full = mapping
        with database.session() as db, pytest.raises(InvalidInput, match=message):
            imports.preview(db, workspace_id=workspace_id, import_id=import_id, mapping=full)


# --- running ------------------------------------------------------------------------------------------


def test_run_lands_good_rows_and_reports_bad_ones_by_row(database, workspace_id):
    job = import_file(database, workspace_id, "bad-rows.csv")
    assert (job.status, job.processed_rows, job.ok_rows, job.error_rows) == ("done", 7, 2, 5)
    assert sorted(errors_by_row(job)) == [3, 4, 5, 6, 7]
    with database.session() as db:
        assert count(db, Contact) == 2
        first = contact_by(db, workspace_id, "external_id", "G1")
        assert (first.name, first.gender, first.birthday) == ("好一", "female", date(1990, 1, 1))
        assert contact_by(db, workspace_id, "phone", "+886912345006").birthday == date(1990, 1, 5)
        assert identity_owner(db, workspace_id, "email", "g2@example.com") is None  # the bad row left nothing behind
        assert count(db, AuditLog, AuditLog.action.in_(("import.start", "import.finish"))) == 2


def test_utf8_bom_file_with_spaces_blank_lines_and_tags(database, workspace_id):
    job = import_file(database, workspace_id, "utf8-bom.csv")
    assert (job.ok_rows, job.error_rows) == (3, 0)
    with database.session() as db:
        ming = contact_by(db, workspace_id, "external_id", "M001")
        assert (ming.name, ming.city, ming.gender, ming.birthday) == ("王小明", "台北市", "male", date(1990, 1, 5))
        assert identity_owner(db, workspace_id, "email", "ming@example.com") == ming.id
        assert identity_owner(db, workspace_id, "phone", "+886912345678") == ming.id
        assert contact_by(db, workspace_id, "external_id", "M003").birthday == date(1975, 11, 29)
        from tutti.audience import tags

        assert [t["name"] for t in tags.tags_of(db, contact_id=ming.id)] == ["VIP", "新會員"]
        assert count(db, ContactTag) == 3 and count(db, TagApplication) == 3


def test_big5_file(database, workspace_id):
    job = import_file(database, workspace_id, "big5.csv")
    assert (job.ok_rows, job.error_rows, job.encoding) == (3, 0, "cp950")
    with database.session() as db:
        amei = contact_by(db, workspace_id, "email", "amei@example.com")
        assert (amei.name, amei.city) == ("張惠妹", "臺東縣")


def test_excel_unicode_text_with_line_ids(database, workspace_id):
    job = import_file(database, workspace_id, "unicode-text.txt")
    assert (job.ok_rows, job.error_rows) == (2, 0)
    with database.session() as db:
        assert contact_by(db, workspace_id, "line_uid", "U" + "1" * 32).name == "黃小琥"


def test_excel_dates_serials_roc_and_title_line(database, workspace_id):
    job = import_file(database, workspace_id, "excel-dates.xlsx")
    assert (job.header_row, job.ok_rows, job.error_rows) == (2, 5, 0), job.errors
    with database.session() as db:
        people = {c.name: c for c in db.scalars(select(Contact))}
        assert people["日期格式"].birthday == date(1990, 1, 5)
        assert people["序號日期"].birthday == date(1991, 1, 5)  # serial 33243
        assert {people[n].birthday for n in ("文字日期", "民國日期", "中文日期")} == {date(1990, 1, 5)}
        assert {p.attributes["signup_date"] for p in people.values()} == {"2023-07-15"}  # serials 45122 too (number and text)
        assert identity_owner(db, workspace_id, "phone", "+886912345678") == people["日期格式"].id  # a number cell
        from tutti.audience import attributes

        assert attributes.definitions(db, workspace_id=workspace_id)["signup_date"].type == "date"


def test_fullwidth_and_oddly_written_phones(database, workspace_id):
    job = import_file(database, workspace_id, "fullwidth-phones.csv")
    assert (job.ok_rows, job.error_rows) == (6, 0), job.errors
    with database.session() as db:
        phones = set(db.scalars(select(Identity.value).where(Identity.kind == "phone")))
    assert phones == {"+886912345678", "+886912000001", "+886912000002", "+886912000003", "+886912000004", "+886912000005"}


def test_duplicates_within_the_file_are_reported_and_skipped(database, workspace_id):
    job = import_file(database, workspace_id, "duplicates.csv")
    assert errors_by_row(job) == {3: [("Email", "duplicate")], 5: [("手機", "duplicate")], 8: [("會員編號", "duplicate")]}
    assert "row 2" in job.errors[0]["reason"] and "第 2 列" in job.errors[0]["reason_zh"]
    with database.session() as db:
        assert count(db, Contact) == 4  # 甲, 乙, mum and son
        mum = contact_by(db, workspace_id, "external_id", "D2")
        son = contact_by(db, workspace_id, "external_id", "D3")
        assert mum.id != son.id and son.name == "兒子"
        assert identity_owner(db, workspace_id, "phone", "+886912333333") == mum.id  # the shared phone stays with mum
        assert contact_by(db, workspace_id, "external_id", "D1").name == "甲"


def test_attributes_and_consent_from_english_headers(database, workspace_id):
    job = import_file(database, workspace_id, "semicolon.csv")
    assert (job.ok_rows, job.error_rows) == (3, 0), job.errors
    with database.session() as db:
        anna = contact_by(db, workspace_id, "external_id", "S1")
        assert anna.attributes == {"member_tier": "gold", "points": 1200} and anna.gender == "female"
        statuses = dict(db.execute(select(Consent.contact_id, Consent.status).where(Consent.channel == "email")).all())
        ben = identity_owner(db, workspace_id, "external_id", "S2")
        cara = identity_owner(db, workspace_id, "external_id", "S3")
        assert statuses == {anna.id: "subscribed", ben: "unsubscribed", cara: "subscribed"}
        assert count(db, ConsentChange, ConsentChange.source == "import") == 3


def test_reimporting_updates_the_same_people_and_never_resubscribes(database, workspace_id):
    import_file(database, workspace_id, "semicolon.csv")
    with database.session() as db:
        anna = identity_owner(db, workspace_id, "external_id", "S1")
        from tutti.audience import consent

        consent.set_consent(db, workspace_id=workspace_id, contact_id=anna, channel="email", status="unsubscribed", source="link")
    job = import_file(database, workspace_id, "semicolon.csv")
    assert job.ok_rows == 3
    with database.session() as db:
        assert count(db, Contact) == 3 and count(db, Identity) == 8
        assert db.get(Consent, (anna, "email")).status == "unsubscribed"  # the person's later choice stands


def test_existing_contacts_are_updated_and_joined_by_identity(database, workspace_id):
    from tutti.audience import contacts

    with database.session() as db:
        known, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "ming@example.com"},
                                   profile={"name": "舊名字"}, actor=ACTOR)
        other, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"external_id": "M002"}, actor=ACTOR)
    import_file(database, workspace_id, "utf8-bom.csv")
    with database.session() as db:
        assert count(db, Contact, Contact.merged_into_id.is_(None)) == 3
        assert contact_by(db, workspace_id, "external_id", "M001").id == known.id  # found by e-mail, id attached
        assert db.get(Contact, known.id).name == "王小明"
        assert contact_by(db, workspace_id, "email", "mei@example.com").id == other.id


def make_members_csv(rows: int) -> tuple[bytes, int, set[int]]:
    """A file with good rows, bad phones every 7th row and, every 11th row, a duplicate of a row two chunks back."""
    lines = ["會員編號,姓名,手機,Email,標籤,電子報"]
    bad_rows: set[int] = set()
    good = 0
    for n in range(rows):
        row = n + 2
        if n % 7 == 3:
            lines.append(f"C{n},壞{n},123,,VIP,是")
            bad_rows.add(row)
        elif n % 11 == 10 and n >= 20:
            lines.append(f"C{n - 20},重複{n},,,VIP,是")  # same customer id as 20 rows earlier
            bad_rows.add(row)
        else:
            lines.append(f"C{n},會員{n},09{n:08d},m{n}@example.com,\"VIP,新會員\",是")
            good += 1
    # the duplicates above point at rows that were bad themselves in a few cases: those are not duplicates
    return ("\n".join(lines) + "\n").encode(), good, bad_rows


def test_a_crash_in_the_middle_resumes_without_duplicates(database, workspace_id, monkeypatch):
    content, _, _ = make_members_csv(60)
    import_id = upload(database, workspace_id, "big.csv", content=content)
    with database.session() as db:
        expected = imports.preview(db, workspace_id=workspace_id, import_id=import_id)
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(status="queued"))
    assert expected["error_rows"] > 5 and any(e["code"] == "duplicate" for e in expected["errors"])

    real_write = imports.job._write_chunk
    calls = []

    def crash_on_second_chunk(*args, **kwargs):
        calls.append(1)
        real_write(*args, **kwargs)  # the chunk's writes happen ...
        if len(calls) == 2:
            raise RuntimeError("worker killed")  # ... then the process dies before the checkpoint commits

    monkeypatch.setattr(imports.job, "_write_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="worker killed"):
        imports.run(import_id, chunk_size=25)
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert (job.status, job.processed_rows) == ("failed", 25) and "row 27" in job.message
    with database.session() as db, pytest.raises(Conflict, match="imported 25 rows"):  # half done: mapping is fixed
        imports.start(db, workspace_id=workspace_id, import_id=import_id, mapping={"會員編號": "external_id"}, actor=ACTOR)
    with database.session() as db:
        landed_after_crash = count(db, Contact)
        assert 0 < landed_after_crash < expected["ok_rows"]

    monkeypatch.setattr(imports.job, "_write_chunk", real_write)
    with database.session() as db:
        imports.start(db, workspace_id=workspace_id, import_id=import_id, actor=ACTOR)  # resumes at the checkpoint
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert (job.status, job.processed_rows, job.ok_rows, job.error_rows) == ("done", 60, expected["ok_rows"], expected["error_rows"])
        assert job.errors == expected["errors"]  # each bad row reported once, in order
        ok = expected["ok_rows"]
        assert count(db, Contact) == ok
        assert count(db, Identity) == 3 * ok  # external_id, phone, e-mail: every good row exactly once
        assert count(db, TagApplication) == 2 * ok  # not re-logged for the chunk that committed before the crash
        assert count(db, ConsentChange) == ok and count(db, Consent) == ok


def test_a_worker_that_died_is_resumed_by_the_tick(database, workspace_id):
    content, _, _ = make_members_csv(30)
    import_id = upload(database, workspace_id, "big.csv", content=content)
    with database.session() as db:
        imports.preview(db, workspace_id=workspace_id, import_id=import_id)
        # a worker took the job and died silently: status running, heartbeat five minutes old
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(
            status="running", heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)))
    jobs.resume_stalled_imports()
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert job.status == "done" and job.processed_rows == 30
        assert imports.stalled_imports(db) == []


def test_a_live_worker_is_left_alone(database, workspace_id):
    import_id = upload(database, workspace_id, "utf8-bom.csv")
    with database.session() as db:
        db.execute(update(ImportJob).where(ImportJob.id == import_id).values(status="running", heartbeat_at=datetime.now(UTC)))
    jobs.resume_stalled_imports()
    assert imports.run(import_id) is None
    with database.session() as db:
        assert db.get(ImportJob, import_id).processed_rows == 0 and count(db, Contact) == 0


def test_start_refuses_running_and_finished_imports(database, workspace_id):
    job = import_file(database, workspace_id, "utf8-bom.csv")
    with database.session() as db, pytest.raises(Conflict, match="done"):
        imports.start(db, workspace_id=workspace_id, import_id=job.id, actor=ACTOR)
    with database.session() as db, pytest.raises(NotFound):
        imports.start(db, workspace_id=workspace_id + 1000, import_id=job.id, actor=ACTOR)


# --- orders ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1000, 2])
def test_orders_import_groups_lines_finds_customers_and_reports_bad_rows(database, workspace_id, chunk_size, monkeypatch):
    import_file(database, workspace_id, "utf8-bom.csv")  # members M001..M003
    monkeypatch.setattr(imports.job, "CHUNK_SIZE", chunk_size)
    import_id = upload(database, workspace_id, "orders.csv", kind="orders")
    with database.session() as db:
        imports.start(db, workspace_id=workspace_id, import_id=import_id, actor=ACTOR)
    with database.session() as db:
        job = db.get(ImportJob, import_id)
        assert (job.status, job.ok_rows, job.error_rows) == ("done", 5, 2), job.errors
        assert errors_by_row(job) == {6: [("下單時間", "bad_date")], 7: [("訂單金額", "order_conflict")]}
        assert "1500" in job.errors[1]["reason"] and "row 2" in job.errors[1]["reason"]
        orders = {o.external_id: o for o in db.scalars(select(Order))}
        assert sorted(orders) == ["A1001", "A1002", "A1003", "A1005"]
        ming = identity_owner(db, workspace_id, "external_id", "M001")
        first = orders["A1001"]
        assert (first.contact_id, first.total, first.status, first.currency) == (ming, 1200, "completed", "TWD")
        assert first.placed_at == datetime(2024, 3, 5, 6, 30, tzinfo=UTC)  # 14:30 in Taipei
        lines = db.execute(select(OrderLine.sku, OrderLine.quantity, OrderLine.unit_price, OrderLine.product_id)
                           .where(OrderLine.order_id == first.id).order_by(OrderLine.id)).all()
        assert [(s, q, p) for s, q, p, _ in lines] == [("TEA-1", 2, 400), ("CUP-1", 1, 400)]
        assert all(product_id for *_, product_id in lines)
        assert db.scalar(select(Product.name).where(Product.sku == "TEA-1")) == "凍頂烏龍茶"
        assert orders["A1002"].contact_id == identity_owner(db, workspace_id, "email", "new@example.com")  # a new customer
        assert (orders["A1002"].total, orders["A1002"].status) == (350, "paid")
        assert (orders["A1003"].status, count(db, OrderLine, OrderLine.order_id == orders["A1003"].id)) == ("fulfilled", 0)
        assert orders["A1005"].total == 360  # no total column value: the lines add up
        assert count(db, Order, Order.contact_id == ming) == 2
        view = commerce.get_order(db, workspace_id=workspace_id, external_id="A1001")
        assert len(view.lines) == 2


def test_orders_imported_twice_are_not_duplicated(database, workspace_id):
    import_file(database, workspace_id, "orders.csv", kind="orders")
    import_file(database, workspace_id, "orders.csv", kind="orders")
    with database.session() as db:
        assert count(db, Order) == 4 and count(db, OrderLine) == 4
        assert count(db, Contact) == 3  # M001, new@example.com, M009 (M002's only order was bad)


def test_orders_mapping_needs_an_order_id_a_customer_and_a_date(database, workspace_id):
    import_id = upload(database, workspace_id, "orders.csv", kind="orders")
    with database.session() as db, pytest.raises(InvalidInput, match="placed_at"):
        imports.preview(db, workspace_id=workspace_id, import_id=import_id, mapping={"訂單編號": "order_id", "Email": "email"})


# --- REST API ---------------------------------------------------------------------------------------------


def test_rest_upload_preview_start_and_follow(client, make_workspace):
    _, key, _ = make_workspace("Tea Shop")
    headers = bearer(key)
    files = {"file": ("會員.csv", fixture("bad-rows.csv"), "text/csv")}
    created = client.post("/api/v1/imports", files=files, data={"kind": "members"}, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["headers"][:3] == ["會員編號", "姓名", "手機"] and body["mapping"]["手機"] == "phone"
    assert body["status"] == "uploaded" and body["total_rows"] == 7 and "content" not in body
    import_id = body["id"]

    preview = client.post(f"/api/v1/imports/{import_id}/preview", json={"mapping": {**body["mapping"], "性別": "ignore"}}, headers=headers)
    assert preview.status_code == 200, preview.text
    assert (preview.json()["ok_rows"], preview.json()["error_rows"]) == (3, 4)
    bad = client.post(f"/api/v1/imports/{import_id}/preview", json={"mapping": {"手機": "shoe_size"}}, headers=headers)
    assert bad.status_code == 422 and "shoe_size" in bad.json()["error"]["message"]

    started = client.post(f"/api/v1/imports/{import_id}/start", headers=headers)
    assert started.status_code == 202, started.text
    followed = client.get(f"/api/v1/imports/{import_id}", headers=headers).json()
    assert (followed["status"], followed["ok_rows"], followed["error_rows"]) == ("done", 3, 4)
    assert {e["row"] for e in followed["errors"]} == {3, 4, 5, 7}
    listed = client.get("/api/v1/imports", headers=headers).json()["imports"]
    assert [i["id"] for i in listed] == [import_id]
    again = client.post(f"/api/v1/imports/{import_id}/start", headers=headers)
    assert again.status_code == 409


def test_rest_refuses_bad_uploads_without_500(client, make_workspace):
    _, key, _ = make_workspace("Tea Shop")
    headers = bearer(key)
    empty = client.post("/api/v1/imports", files={"file": ("e.csv", b"", "text/csv")}, data={"kind": "members"}, headers=headers)
    assert empty.status_code == 422 and "empty" in empty.json()["error"]["message"]
    kind = client.post("/api/v1/imports", files={"file": ("a.csv", fixture("big5.csv"), "text/csv")}, data={"kind": "x"}, headers=headers)
    assert kind.status_code == 422 and kind.json()["error"]["field"] == "kind"
    missing = client.post("/api/v1/imports", data={"kind": "members"}, headers=headers)
    assert missing.status_code == 422
    assert client.post("/api/v1/imports/999999/preview", json={"mapping": None}, headers=headers).status_code == 404
    assert client.post("/api/v1/imports/1/preview", content=b"[1,2]", headers={**headers, "content-type": "application/json"}).status_code in (404, 422)
    assert client.get("/api/v1/imports").status_code == 401


def test_rest_a_key_of_one_workspace_cannot_see_or_start_anothers_import(client, make_workspace):
    _, key_a, _ = make_workspace("Shop A")
    _, key_b, _ = make_workspace("Shop B")
    created = client.post("/api/v1/imports", files={"file": ("a.csv", fixture("big5.csv"), "text/csv")},
                          data={"kind": "members"}, headers=bearer(key_a))
    import_id = created.json()["id"]
    assert client.get(f"/api/v1/imports/{import_id}", headers=bearer(key_b)).status_code == 404
    assert client.post(f"/api/v1/imports/{import_id}/preview", json={}, headers=bearer(key_b)).status_code == 404
    assert client.post(f"/api/v1/imports/{import_id}/start", headers=bearer(key_b)).status_code == 404
    assert client.get("/api/v1/imports", headers=bearer(key_b)).json()["imports"] == []
    assert client.get(f"/api/v1/imports/{import_id}", headers=bearer(key_a)).json()["status"] == "uploaded"


def test_rest_roles_without_imports_run_are_refused(client, make_workspace):
    _, key, _ = make_workspace("Shop", role="analyst")
    response = client.post("/api/v1/imports", files={"file": ("a.csv", fixture("big5.csv"), "text/csv")},
                           data={"kind": "members"}, headers=bearer(key))
    assert response.status_code == 403


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_import_with_dry_run_then_for_real(database_url, database, workspace_id, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tutti.cli import app
    from tutti.platform.config import reset_settings

    monkeypatch.setenv("TUTTI_DATABASE_URL", database_url)
    monkeypatch.setenv("TUTTI_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    runner = CliRunner()
    path = FIXTURES / "bad-rows.csv"
    try:
        dry = runner.invoke(app, ["import", str(path), "--workspace", str(workspace_id), "--kind", "members", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        report = json.loads(dry.stdout.strip().splitlines()[-1])
        assert (report["dry_run"], report["ok_rows"], report["error_rows"]) == (True, 2, 5)
        with database.session() as db:
            assert count(db, Contact) == 0 and count(db, ImportJob) == 0

        mapping = json.dumps({"會員編號": "external_id", "姓名": "name", "手機": "phone"})
        real = runner.invoke(app, ["import", str(path), "--workspace", str(workspace_id), "--mapping", mapping])
        assert real.exit_code == 0, real.output
        result = json.loads(real.stdout.strip().splitlines()[-1])
        assert (result["status"], result["ok_rows"], result["error_rows"]) == ("done", 5, 2)
        assert {e["row"] for e in result["errors"]} == {3, 7}
        with database.session() as db:
            assert count(db, Contact) == 5

        bad = runner.invoke(app, ["import", str(path), "--workspace", str(workspace_id), "--kind", "coupons"])
        assert bad.exit_code == 1 and "unknown import kind" in bad.stderr
    finally:
        reset_settings()
