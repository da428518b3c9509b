"""The import wizard of the web UI (permission imports.run), in the manner of Braze's or Klaviyo's CSV import:

1. /imports             past imports of the workspace, and "New import"
2. /imports/new         choose members or orders and a CSV/Excel file; an unreadable file is refused, nothing kept
3. /imports/{id}/mapping each column with sample values and the field it goes to (the guess, editable)
4. /imports/{id}/preview a dry run: good and bad rows, the first errors by row number, parsed sample rows
5. /imports/{id}        the job's progress, polled by htmx every second; when done, the error report (also as CSV)

Routes are thin: `tutti.audience.imports` does the work. Every id is looked up within the signed-in
workspace, so an import of another workspace is 404. Service errors about the file or the mapping are
told in the visitor's language (the service's English words only when there is no translation for them).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from tutti.audience import imports
from tutti.audience.filereader import MAX_FILE_BYTES, Table, read_table
from tutti.audience.models import ImportJob
from tutti.platform.errors import NotFound, TooLarge, TuttiError
from tutti.platform.models import User
from tutti.platform.schemas import MAX_ID
from tutti.platform.ui import error_text
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)

PERMISSION = "imports.run"
SAMPLE_VALUES = 3  # per column on the mapping step
SAMPLE_SCAN_ROWS = 200  # rows looked at to find those samples
PREVIEW_ROWS = 10  # parsed rows shown on the preview step
SHOWN_ERRORS = 100  # errors listed on a page; the CSV has them all
FINISHED = ("done", "failed")
ATTRIBUTE = "attribute"  # the select's value for "custom attribute"; the key is typed next to it


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _job(ui: UiContext, import_id: int) -> ImportJob:
    """The import, only if it belongs to the signed-in workspace; otherwise a 404 page. The stored file
    (up to 100 MB) is a deferred column: pages that do not read it, like the polled progress, never load it."""
    ui.require(PERMISSION)
    if not 1 <= import_id <= MAX_ID:
        raise PageError(404, "errors.import_not_found")
    try:
        return imports.get_import(ui.db, workspace_id=ui.workspace_id, import_id=import_id)
    except NotFound:
        raise PageError(404, "errors.import_not_found") from None


def _table(job: ImportJob) -> Table:
    return read_table(job.content, job.filename, file_format=job.file_format, encoding=job.encoding,
                      delimiter=job.delimiter, header_row=job.header_row)


def _reason(ui: UiContext, error: dict) -> str:
    return (error.get("reason_zh") if ui.locale == "zh-TW" else None) or error.get("reason") or error.get("code", "")


def _field_labels(ui: UiContext, kind: str) -> dict[str, str]:
    return imports.field_labels(kind, ui.locale)


def _target_label(ui: UiContext, kind: str, target: str) -> str:
    if target.startswith(imports.ATTRIBUTE_PREFIX):
        return target[len(imports.ATTRIBUTE_PREFIX):]
    return _field_labels(ui, kind).get(target, target)


# --- translating service errors -------------------------------------------------------------------


_FILE_ERRORS = [  # (words in the service's message, translation key)
    ("no data rows", "imports.file_error.no_rows"),
    ("has no rows", "imports.file_error.no_rows"),
    ("is empty", "imports.file_error.empty"),
    ("is binary", "imports.file_error.binary"),
    ("Excel file cannot be read", "imports.file_error.excel"),
    (".xls file cannot be read", "imports.file_error.excel"),
    ("encoding", "imports.file_error.encoding"),
    ("is not valid", "imports.file_error.encoding"),
    ("CSV file cannot be read", "imports.file_error.csv"),
]


def file_error_text(ui: UiContext, error: TuttiError) -> str:
    """Why a file was refused, in the visitor's language."""
    if isinstance(error, TooLarge):
        return ui.t("imports.file_error.too_large", mb=MAX_FILE_BYTES // (1024 * 1024))
    for words, key in _FILE_ERRORS:
        if words in error.message:
            return ui.t(key)
    return f"{ui.t('imports.file_error.generic')} {error.message}"


_MAPPING_ERRORS = [  # (pattern of the service's message, translation key, names of the groups)
    (re.compile(r"columns '(.*)' and '(.*)' are both mapped to (\S+)$"), "imports.mapping_error.duplicate", ("first", "second", "field")),
    (re.compile(r"column '(.*)': '(.*)' is not a valid attribute key"), "imports.mapping_error.attribute_key", ("column", "attribute")),
    (re.compile(r"map at least one column to external_id"), "imports.mapping_error.no_identity", ()),
    (re.compile(r"map a column to external_id, email or phone"), "imports.mapping_error.order_customer", ()),
    (re.compile(r"map a column to total or unit_price"), "imports.mapping_error.order_amount", ()),
    (re.compile(r"map a column to (\w+)$"), "imports.mapping_error.required", ("field",)),
]


def mapping_error_text(ui: UiContext, kind: str, error: TuttiError) -> str:
    """Why a mapping cannot be used, in the visitor's language."""
    for pattern, key, names in _MAPPING_ERRORS:
        found = pattern.search(error.message)
        if found:
            values = dict(zip(names, found.groups(), strict=True))
            if "field" in values:
                values["field"] = _target_label(ui, kind, values["field"])
            return ui.t(key, **values)
    return error_text(ui, error)


# --- 1. the list ----------------------------------------------------------------------------------


@router.get("/imports")
def import_list(ui: UiContext = page_context):
    ui.require(PERMISSION)
    jobs = imports.list_imports(ui.db, workspace_id=ui.workspace_id)
    user_ids = {job.created_by for job in jobs if job.created_by}
    people = {}
    if user_ids:
        people = {uid: name or email for uid, name, email in ui.db.execute(
            select(User.id, User.name, User.email).where(User.id.in_(user_ids)))}
    return render(ui, "imports/list.html", jobs=jobs, people=people)


# --- 2. upload ------------------------------------------------------------------------------------


def _upload_page(ui: UiContext, *, status: int = 200, error: str | None = None, kind: str = "members"):
    return render(ui, "imports/upload.html", status=status, error=error, kind=kind if kind in imports.KINDS else "members",
                  kinds=imports.KINDS, max_mb=MAX_FILE_BYTES // (1024 * 1024), step=1)


UPLOADED_FILE = File(None)


@router.get("/imports/new")
def upload_page(kind: str = "members", ui: UiContext = page_context):
    ui.require(PERMISSION)
    return _upload_page(ui, kind=kind)


@router.post("/imports")
def upload(kind: str = Form("members"), file: UploadFile | None = UPLOADED_FILE, ui: UiContext = page_context):
    ui.require(PERMISSION)
    if kind not in imports.KINDS:
        return _upload_page(ui, status=422, error=ui.t("imports.kind_error"))
    if file is None or not file.filename:
        return _upload_page(ui, status=422, error=ui.t("imports.file_error.missing"), kind=kind)
    content = file.file.read(MAX_FILE_BYTES + 1)
    try:
        if len(content) > MAX_FILE_BYTES:
            raise TooLarge("the file is too large", field="file")
        with ui.db.begin_nested():  # a refused file leaves nothing behind
            job = imports.create_import(ui.db, workspace_id=ui.workspace_id, kind=kind, filename=file.filename,
                                        content=content, actor=ui.actor)
    except TuttiError as error:
        return _upload_page(ui, status=error.status, error=file_error_text(ui, error), kind=kind)
    return _redirect(f"/imports/{job.id}/mapping")


# --- 3. mapping -----------------------------------------------------------------------------------


def _columns(job: ImportJob, table: Table, mapping: dict[str, str]) -> list[dict]:
    """Each column with a few sample values and what it maps to (select value and attribute key)."""
    columns = []
    for position, header in enumerate(table.headers):
        samples: list[str] = []
        for _, cells in table.rows[:SAMPLE_SCAN_ROWS]:
            value = cells[position] if position < len(cells) else None
            text = _display(value)
            if text and text not in samples:
                samples.append(text)
                if len(samples) == SAMPLE_VALUES:
                    break
        target = mapping.get(header, imports.IGNORE)
        attribute = ""
        if target.startswith(imports.ATTRIBUTE_PREFIX):
            target, attribute = ATTRIBUTE, target[len(imports.ATTRIBUTE_PREFIX):]
        columns.append({"index": position, "header": header, "samples": samples, "target": target, "attribute": attribute})
    return columns


def _display(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") if (value.hour, value.minute) != (0, 0) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()[:80]


def _mapping_page(ui: UiContext, job: ImportJob, *, mapping: dict[str, str] | None = None, status: int = 200,
                  error: str | None = None):
    table = _table(job)
    labels = _field_labels(ui, job.kind)
    fields = [f for f in imports.fields_for(job.kind) if f != imports.IGNORE]
    return render(ui, "imports/mapping.html", status=status, job=job, error=error, step=2,
                  columns=_columns(job, table, job.mapping if mapping is None else mapping),
                  fields=fields, labels=labels, total_rows=table.total_rows)


def _must_be_editable(job: ImportJob) -> RedirectResponse | None:
    if job.status in ("queued", "running", "done") or job.processed_rows:
        return _redirect(f"/imports/{job.id}")  # its mapping is fixed: show how it went
    return None


@router.get("/imports/{import_id}/mapping")
def mapping_page(import_id: int, ui: UiContext = page_context):
    job = _job(ui, import_id)
    return _must_be_editable(job) or _mapping_page(ui, job)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()  # already read (and cached) by the CSRF check
    return {key: value for key, value in form.items() if isinstance(value, str)}


form_fields = Depends(_form)


def mapping_from_form(headers: list[str], form: dict[str, str]) -> dict[str, str]:
    """col_<n> is the field of column n ("attribute" with attr_<n> for a custom attribute)."""
    mapping = {}
    for position, header in enumerate(headers):
        target = (form.get(f"col_{position}") or imports.IGNORE).strip()
        if target == ATTRIBUTE:
            target = imports.ATTRIBUTE_PREFIX + (form.get(f"attr_{position}") or "").strip()
        mapping[header] = target
    return mapping


@router.post("/imports/{import_id}/mapping")
def save_mapping(import_id: int, form: dict = form_fields, ui: UiContext = page_context):
    """Save the edited mapping if it can work, then go on to the preview (which checks every row once)."""
    job = _job(ui, import_id)
    if (redirect := _must_be_editable(job)) is not None:
        return redirect
    mapping = mapping_from_form(job.headers or [], form)
    try:
        imports.save_mapping(ui.db, workspace_id=ui.workspace_id, import_id=job.id, mapping=mapping)
    except TuttiError as error:
        return _mapping_page(ui, job, mapping=mapping, status=error.status, error=mapping_error_text(ui, job.kind, error))
    return _redirect(f"/imports/{job.id}/preview")


# --- 4. dry run -----------------------------------------------------------------------------------


@router.get("/imports/{import_id}/preview")
def preview_page(import_id: int, ui: UiContext = page_context):
    job = _job(ui, import_id)
    if (redirect := _must_be_editable(job)) is not None:
        return redirect
    try:
        report = imports.preview(ui.db, workspace_id=ui.workspace_id, import_id=job.id, limit=PREVIEW_ROWS)
    except TuttiError as error:  # the guessed mapping is not usable as it is: fix it first
        return _mapping_page(ui, job, status=error.status, error=mapping_error_text(ui, job.kind, error))
    mapped = [(header, target) for header, target in report["mapping"].items() if target != imports.IGNORE]
    sample_columns = [(target, header, _target_label(ui, job.kind, target)) for header, target in mapped]
    errors = [{**e, "text": _reason(ui, e)} for e in report["errors"][:SHOWN_ERRORS]]
    return render(ui, "imports/preview.html", job=job, report=report, errors=errors, step=3, mapped=mapped,
                  sample_columns=sample_columns, shown_errors=SHOWN_ERRORS, show=_display_sample,
                  reason=lambda error: _reason(ui, error))


def _display_sample(value) -> str:
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return "" if value is None else str(value)


# --- 5. start and progress ------------------------------------------------------------------------


@router.post("/imports/{import_id}/start")
def start_import(import_id: int, ui: UiContext = page_context):
    job = _job(ui, import_id)
    if job.status in ("queued", "running", "done"):
        return _redirect(f"/imports/{job.id}")
    try:
        # no SAVEPOINT here: the service queues the job "after commit", and releasing a savepoint counts as one
        imports.start(ui.db, workspace_id=ui.workspace_id, import_id=job.id, actor=ui.actor)
    except TuttiError as error:  # refused before anything was changed
        return _mapping_page(ui, job, status=error.status, error=mapping_error_text(ui, job.kind, error))
    return _redirect(f"/imports/{job.id}")


def _progress_values(ui: UiContext, job: ImportJob) -> dict:
    stored = job.errors or []
    return {
        "job": job, "finished": job.status in FINISHED,
        "percent": round(100 * job.processed_rows / job.total_rows) if job.total_rows else 100,
        "errors": [{**e, "text": _reason(ui, e)} for e in stored[:SHOWN_ERRORS]], "error_count": len(stored),
        "shown_errors": SHOWN_ERRORS,
    }


@router.get("/imports/{import_id}")
def progress_page(import_id: int, ui: UiContext = page_context):
    job = _job(ui, import_id)
    if job.status == "uploaded":
        return _redirect(f"/imports/{job.id}/mapping")
    return render(ui, "imports/progress.html", step=4, **_progress_values(ui, job))


@router.get("/imports/{import_id}/progress")
def progress_fragment(import_id: int, ui: UiContext = page_context):
    """What the progress page polls; once the import is finished the fragment stops polling."""
    job = _job(ui, import_id)
    return render(ui, "imports/_progress.html", **_progress_values(ui, job))


@router.get("/imports/{import_id}/errors.csv")
def error_report(import_id: int, ui: UiContext = page_context):
    """Every skipped row: its number in the file, the column, the reason, then the row as it was in the file."""
    job = _job(ui, import_id)
    stored = job.errors or []
    table = _table(job)
    cells_of = {row: cells for row, cells in table.rows}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([ui.t("imports.row"), ui.t("imports.column"), ui.t("imports.reason"), "code", *table.headers])
    for error in stored:
        cells = cells_of.get(error.get("row"), [])
        writer.writerow([error.get("row"), error.get("column") or "", _reason(ui, error), error.get("code", ""),
                         *[_display(c) for c in cells]])
    name = re.sub(r"[^\w.-]+", "_", job.filename.rsplit(".", 1)[0], flags=re.ASCII)[:60] or "import"
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}-{job.id}-errors.csv"', "Cache-Control": "no-store"})

