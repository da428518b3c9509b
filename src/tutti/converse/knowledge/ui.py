"""Pages of the knowledge base: the list with search, try-a-question and import; the item editor (one
phrasing per line); the gaps report with "add as FAQ". Reading needs knowledge.read, changes knowledge.manage."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from tutti.converse.knowledge import gaps, questions, service
from tutti.converse.knowledge.jobs import embed_after_commit
from tutti.platform.errors import TuttiError
from tutti.web.pages import render
from tutti.web.session import PageError, UiContext, page_context

router = APIRouter(include_in_schema=False)
PAGE = 50


def _lines(value) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


@router.get("/knowledge")
def knowledge_list(ui: UiContext = page_context, q: str = "", topic: str = "", page: int = 1):
    ui.require("knowledge.read")
    page = max(page, 1)
    items, total = service.list_items(
        ui.db,
        workspace_id=ui.workspace_id,
        search=q or None,
        topic=topic or None,
        limit=PAGE,
        offset=(page - 1) * PAGE,
    )
    return _list_page(ui, items, total, q=q, topic=topic, page=page)


def _list_page(ui: UiContext, items, total: int, *, q: str = "", topic: str = "", page: int = 1, problems=(),
               summary: dict | None = None, calibrated: dict | None = None):
    """The knowledge list, with what an import or a calibration upload did (problems: status 422)."""
    return render(
        ui,
        "knowledge/list.html",
        status=422 if problems else 200,
        items=items,
        total=total,
        q=q,
        topic=topic,
        page=page,
        pages=(total + PAGE - 1) // PAGE,
        topics=service.topics(ui.db, workspace_id=ui.workspace_id),
        result=None,
        question="",
        problems=list(problems),
        summary=summary,
        calibrated=calibrated,
        calibration_counts=questions.counts(ui.db, workspace_id=ui.workspace_id),
    )


@router.post("/knowledge/ask")
async def knowledge_ask(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.read")
    from tutti.converse.knowledge.ask import ask

    question = str((await request.form()).get("question") or "").strip()[:2000]
    result = ask(ui.db, workspace_id=ui.workspace_id, question=question, use_llm=False) if question else None
    return render(ui, "knowledge/_ask.html", result=result, question=question)


@router.post("/knowledge/import")
async def knowledge_import(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    form = await request.form()
    replace = bool(form.get("replace"))
    problems, summary = await _upload(ui, form, lambda name, data: service.import_file(
        ui.db, workspace_id=ui.workspace_id, actor=ui.actor, filename=name, data=data, replace=replace))
    items, total = service.list_items(ui.db, workspace_id=ui.workspace_id, limit=PAGE)
    return _list_page(ui, items, total, problems=problems, summary=summary)


@router.post("/knowledge/calibration-questions")
async def knowledge_calibration_questions(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    problems, calibrated = await _upload(ui, await request.form(), lambda name, data: questions.replace(
        ui.db, workspace_id=ui.workspace_id, actor=ui.actor, filename=name, data=data))
    items, total = service.list_items(ui.db, workspace_id=ui.workspace_id, limit=PAGE)
    return _list_page(ui, items, total, problems=problems, calibrated=calibrated)


async def _upload(ui: UiContext, form, store) -> tuple[list[dict], dict | None]:
    """Hand the form's file to `store(filename, data)`: (problems, its summary); the knowledge job is
    queued after the commit when something was stored."""
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return [{"row": 0, "field": "file", "message": "file"}], None
    try:
        summary = store(upload.filename, await upload.read(20 * 1024 * 1024))
    except TuttiError as error:
        details = error.details if isinstance(error.details, list) else None
        return details or [{"row": 0, "field": error.field, "message": error.message}], None
    embed_after_commit(ui.db, ui.workspace_id)
    return [], summary


def _editor(ui: UiContext, item: dict | None, problems=(), status: int = 200):
    return render(ui, "knowledge/edit.html", status=status, item=item, problems=list(problems))


@router.get("/knowledge/new")
def knowledge_new(ui: UiContext = page_context):
    ui.require("knowledge.manage")
    return _editor(ui, None)


@router.get("/knowledge/gaps")
def knowledge_gaps(ui: UiContext = page_context):
    ui.require("knowledge.read")
    return render(ui, "knowledge/gaps.html", clusters=gaps.report(ui.db, workspace_id=ui.workspace_id))


@router.post("/knowledge/gaps/faq")
async def knowledge_gap_faq(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    form = await request.form()
    ids = _gap_ids(form)
    try:
        embed_after_commit(ui.db, ui.workspace_id)
        item = gaps.add_as_faq(
            ui.db,
            workspace_id=ui.workspace_id,
            actor=ui.actor,
            gap_ids=ids,
            answer=str(form.get("answer") or ""),
            title=str(form.get("title") or ""),
        )
    except TuttiError:
        return RedirectResponse("/knowledge/gaps?error=1", status_code=303)
    return RedirectResponse(f"/knowledge/{item.id}?saved=1", status_code=303)


@router.post("/knowledge/gaps/out-of-scope")
async def knowledge_gap_out_of_scope(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    form = await request.form()
    ids = _gap_ids(form)
    try:
        gaps.mark_out_of_scope(ui.db, workspace_id=ui.workspace_id, actor=ui.actor, gap_ids=ids)
        embed_after_commit(ui.db, ui.workspace_id)
    except TuttiError:
        return RedirectResponse("/knowledge/gaps?error=1", status_code=303)
    return RedirectResponse("/knowledge/gaps", status_code=303)


@router.post("/knowledge/gaps/dismiss")
async def knowledge_gap_dismiss(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    form = await request.form()
    ids = _gap_ids(form)
    gaps.dismiss(ui.db, workspace_id=ui.workspace_id, gap_ids=ids)
    return RedirectResponse("/knowledge/gaps", status_code=303)


def _gap_ids(form) -> list[int]:
    return [int(v) for v in str(form.get("gap_ids") or "").split(",") if v.strip().isdigit()]


def _fields(form) -> dict:
    return {
        "title": str(form.get("title") or ""),
        "answer": str(form.get("answer") or ""),
        "phrasings": _lines(form.get("phrasings")),
        "topic": str(form.get("topic") or "") or None,
        "team": str(form.get("team") or "") or None,
        "enabled": bool(form.get("enabled")),
    }


@router.post("/knowledge")
async def knowledge_create(request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    form = await request.form()
    fields = _fields(form)
    try:
        item = service.create_item(
            ui.db,
            workspace_id=ui.workspace_id,
            actor=ui.actor,
            external_id=str(form.get("external_id") or "") or None,
            **fields,
        )
    except TuttiError as error:
        return _editor(
            ui, {"id": None, "external_id": form.get("external_id"), **fields}, [error.message], 422
        )
    embed_after_commit(ui.db, ui.workspace_id)
    return RedirectResponse(f"/knowledge/{item.id}?saved=1", status_code=303)


def _item_or_404(ui: UiContext, item_id: int) -> dict:
    try:
        item = service.get_item(ui.db, workspace_id=ui.workspace_id, item_id=item_id)
    except TuttiError:
        raise PageError(404, "knowledge.not_found") from None
    return service.as_dict(
        item, service.phrasings_of(ui.db, workspace_id=ui.workspace_id, item_ids=[item.id])[item.id]
    )


@router.get("/knowledge/{item_id}")
def knowledge_edit(item_id: int, ui: UiContext = page_context):
    ui.require("knowledge.read")
    return _editor(ui, _item_or_404(ui, item_id))


@router.post("/knowledge/{item_id}")
async def knowledge_update(item_id: int, request: Request, ui: UiContext = page_context):
    ui.require("knowledge.manage")
    item = _item_or_404(ui, item_id)
    form = await request.form()
    if form.get("delete"):
        service.delete_item(ui.db, workspace_id=ui.workspace_id, actor=ui.actor, item_id=item_id)
        embed_after_commit(ui.db, ui.workspace_id)
        return RedirectResponse("/knowledge", status_code=303)
    fields = _fields(form)
    try:
        service.update_item(
            ui.db, workspace_id=ui.workspace_id, actor=ui.actor, item_id=item_id, changes=fields
        )
    except TuttiError as error:
        return _editor(ui, {**item, **fields}, [error.message], 422)
    embed_after_commit(ui.db, ui.workspace_id)
    return RedirectResponse(f"/knowledge/{item_id}?saved=1", status_code=303)
