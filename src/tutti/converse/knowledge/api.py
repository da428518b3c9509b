"""REST API of the knowledge base under /api/v1/knowledge (Bearer API key).

Reading and asking need `knowledge.read` (every role); changing needs `knowledge.manage` (owner, admin,
marketer, agent: the people who answer customers keep the answers right)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tutti.converse.knowledge import gaps, questions, service
from tutti.converse.knowledge.jobs import embed_after_commit
from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.errors import InvalidInput, TooLarge
from tutti.platform.schemas import ERROR_RESPONSES, Body, Id, IdPath, Text

router = APIRouter(tags=["knowledge"], responses=ERROR_RESPONSES)
READ = allowed("knowledge.read")
MANAGE = allowed("knowledge.manage")
MAX_FILE = 20 * 1024 * 1024
Language = Literal["zh-TW", "en", "both"]


class ItemIn(Body):
    external_id: Text(200) | None = Field(
        default=None, description="your id; default faq-0001, faq-0002, …", examples=["ship-001"]
    )
    kind: Literal["faq", "article"] = "faq"
    title: Text(300) = ""
    answer: Text(20_000, 1) = Field(description="Markdown", examples=["滿 NT$990 免運。"])
    phrasings: list[Text(500, 1)] = Field(
        default_factory=list, max_length=200, examples=[["運費多少？", "How much is shipping?"]]
    )
    language: Language | None = None
    topic: Text(100) | None = None
    team: Text(100) | None = Field(default=None, description="the team that takes hand-offs about this item")
    tags: list[Text(100, 1)] = Field(default_factory=list, max_length=50)
    enabled: bool = True


class ItemPatch(Body):
    title: Text(300) | None = None
    answer: Text(20_000, 1) | None = None
    kind: Literal["faq", "article"] | None = None
    phrasings: list[Text(500, 1)] | None = Field(default=None, max_length=200)
    language: Language | None = None
    topic: Text(100) | None = None
    team: Text(100) | None = None
    tags: list[Text(100, 1)] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class ItemOut(BaseModel):
    id: int
    external_id: str
    kind: str
    title: str
    answer: str
    language: str
    topic: str | None
    tags: list[str]
    team: str | None
    enabled: bool
    phrasings: list[str]
    updated_at: datetime | str | None


class ItemPage(BaseModel):
    items: list[ItemOut]
    total: int


class ImportOut(BaseModel):
    created: int
    updated: int
    deleted: int
    phrasings: int
    passages: int


class AskIn(Body):
    question: Text(2000, 1) = Field(examples=["請問運費多少？"])


class AskOut(BaseModel):
    action: str = Field(description="answer, tool or handoff")
    knowledge_id: int | None
    external_id: str | None
    confidence: float | None
    answer: str | None
    reason: str
    handoff_reason: str | None = None
    tool: str | None = None


class GapCluster(BaseModel):
    count: int
    question: str = Field(description="the most representative question of the cluster")
    questions: list[str]
    gap_ids: list[int]
    best_item_id: int | None
    last_at: str


class GapList(BaseModel):
    clusters: list[GapCluster]


class AddFaqIn(Body):
    gap_ids: list[Id] = Field(min_length=1, max_length=1000)
    answer: Text(20_000, 1)
    question: Text(500) | None = Field(default=None, description="an extra phrasing written by you")
    title: Text(300) = ""
    topic: Text(100) | None = None
    team: Text(100) | None = None


class DismissIn(Body):
    gap_ids: list[Id] = Field(min_length=1, max_length=1000)


class DismissOut(BaseModel):
    dismissed: int


def _item(db: Session, ctx: ApiContext, item_id: int) -> dict:
    item = service.get_item(db, workspace_id=ctx.workspace_id, item_id=item_id)
    phrasings = service.phrasings_of(db, workspace_id=ctx.workspace_id, item_ids=[item.id])[item.id]
    return service.as_dict(item, phrasings)


@router.get("/knowledge/items", response_model=ItemPage)
def list_items(
    search: Text(200) | None = None,
    topic: Text(100) | None = None,
    kind: Literal["faq", "article"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
    ctx: ApiContext = READ,
    db: Session = get_db,
) -> dict:
    items, total = service.list_items(
        db, workspace_id=ctx.workspace_id, search=search, topic=topic, kind=kind, limit=limit, offset=offset
    )
    return {"items": items, "total": total}


@router.post("/knowledge/items", response_model=ItemOut, status_code=201)
def create_item(body: ItemIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    item = service.create_item(db, workspace_id=ctx.workspace_id, actor=ctx.actor, **body.model_dump())
    embed_after_commit(db, ctx.workspace_id)
    return _item(db, ctx, item.id)


@router.get("/knowledge/items/{item_id}", response_model=ItemOut)
def get_item(item_id: IdPath, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    return _item(db, ctx, item_id)


@router.patch("/knowledge/items/{item_id}", response_model=ItemOut)
def update_item(item_id: IdPath, body: ItemPatch, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    changes = body.model_dump(exclude_unset=True)
    service.update_item(db, workspace_id=ctx.workspace_id, actor=ctx.actor, item_id=item_id, changes=changes)
    embed_after_commit(db, ctx.workspace_id)
    return _item(db, ctx, item_id)


@router.delete("/knowledge/items/{item_id}", status_code=204)
def delete_item(item_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> Response:
    service.delete_item(db, workspace_id=ctx.workspace_id, actor=ctx.actor, item_id=item_id)
    embed_after_commit(db, ctx.workspace_id)
    return Response(status_code=204)


@router.post(
    "/knowledge/import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": ".csv, .jsonl or .md",
                            }
                        },
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["filename", "content"],
                        "properties": {
                            "filename": {"type": "string", "description": "its suffix names the format"},
                            "content": {"type": "string"},
                        },
                    }
                },
            }
        }
    },
)
async def import_file(
    request: Request,
    replace: bool = Query(False, description="also delete items not in the file"),
    ctx: ApiContext = MANAGE,
    db: Session = get_db,
) -> dict:
    """Import a knowledge file (multipart `file`, or JSON {filename, content}); all or nothing."""
    filename, data = await _uploaded(request)
    summary = service.import_file(
        db, workspace_id=ctx.workspace_id, actor=ctx.actor, filename=filename, data=data, replace=replace
    )
    embed_after_commit(db, ctx.workspace_id)
    return summary


async def _uploaded(request: Request) -> tuple[str, bytes]:
    """The file of a request: multipart `file`, or JSON {filename, content}."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("send the file as the multipart field 'file'", field="file")
        filename, data = upload.filename or "", await upload.read(MAX_FILE + 1)
    else:
        try:
            body = await request.json()
        except ValueError:
            raise InvalidInput("send a multipart file or JSON {filename, content}", field="file") from None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("filename"), str)
            or not isinstance(body.get("content"), str)
        ):
            raise InvalidInput("JSON needs 'filename' and 'content' as text", field="content")
        filename, data = body["filename"], body["content"].encode()
    if len(data) > MAX_FILE:
        raise TooLarge(f"the file is larger than {MAX_FILE // (1024 * 1024)} MB", field="file")
    return filename, data


class CalibrationQuestionsOut(BaseModel):
    questions: int
    in_scope: int
    out_of_scope: int


class CalibrationQuestion(BaseModel):
    question: str
    expected: str | None = Field(description="the id of the item that answers it; null: hand off")


class CalibrationQuestionList(CalibrationQuestionsOut):
    items: list[CalibrationQuestion]


@router.get("/knowledge/calibration-questions", response_model=CalibrationQuestionList)
def calibration_questions(limit: int = Query(200, ge=1, le=20_000), ctx: ApiContext = READ,
                          db: Session = get_db) -> dict:
    """The workspace's calibration questions (the first `limit`) and how many there are (docs/knowledge.md)."""
    return {**questions.counts(db, workspace_id=ctx.workspace_id),
            "items": questions.listed(db, workspace_id=ctx.workspace_id, limit=limit)}


@router.put("/knowledge/calibration-questions", response_model=CalibrationQuestionsOut,
            openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["filename", "content"],
                "properties": {"filename": {"type": "string", "description": ".jsonl or .csv"},
                               "content": {"type": "string",
                                           "description": 'JSONL {"question", "expected"} or CSV question,expected'}},
            }}}}})
async def put_calibration_questions(request: Request, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Replace the workspace's calibration questions (real questions with the id of the item that answers
    them, null where none does), all or nothing; the knowledge job refits the calibration on them."""
    filename, data = await _uploaded(request)
    summary = questions.replace(db, workspace_id=ctx.workspace_id, actor=ctx.actor, filename=filename, data=data)
    embed_after_commit(db, ctx.workspace_id)
    return summary


@router.get("/knowledge/export")
def export(
    format: Literal["jsonl", "csv", "markdown"] = "jsonl", ctx: ApiContext = READ, db: Session = get_db
) -> Response:
    text = service.export(db, workspace_id=ctx.workspace_id, format=format)
    media = {"jsonl": "application/x-ndjson", "csv": "text/csv", "markdown": "text/markdown"}[format]
    suffix = {"jsonl": "jsonl", "csv": "csv", "markdown": "md"}[format]
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="knowledge.{suffix}"'},
    )


@router.post("/knowledge/ask", response_model=AskOut)
def ask(body: AskIn, ctx: ApiContext = READ, db: Session = get_db) -> dict:
    """What the agent would do with this question from an unknown customer (nothing is sent or stored)."""
    from tutti.converse.knowledge.ask import ask as ask_question

    return ask_question(db, workspace_id=ctx.workspace_id, question=body.question)


@router.get("/knowledge/gaps", response_model=GapList)
def list_gaps(limit: int = Query(50, ge=1, le=200), ctx: ApiContext = READ, db: Session = get_db) -> dict:
    return {"clusters": gaps.report(db, workspace_id=ctx.workspace_id, limit=limit)}


@router.post("/knowledge/gaps/faq", response_model=ItemOut, status_code=201)
def add_gap_faq(body: AddFaqIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    item = gaps.add_as_faq(db, workspace_id=ctx.workspace_id, actor=ctx.actor, **body.model_dump())
    embed_after_commit(db, ctx.workspace_id)
    return _item(db, ctx, item.id)


@router.post("/knowledge/gaps/out-of-scope", response_model=ItemOut)
def mark_gaps_out_of_scope(body: DismissIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Add these questions to the workspace's out-of-scope examples: questions like them are handed off."""
    item = gaps.mark_out_of_scope(db, workspace_id=ctx.workspace_id, actor=ctx.actor, gap_ids=body.gap_ids)
    embed_after_commit(db, ctx.workspace_id)
    return _item(db, ctx, item.id)


@router.post("/knowledge/gaps/dismiss", response_model=DismissOut)
def dismiss_gaps(body: DismissIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    return {"dismissed": gaps.dismiss(db, workspace_id=ctx.workspace_id, gap_ids=body.gap_ids)}
