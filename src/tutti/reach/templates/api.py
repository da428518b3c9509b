"""REST API of templates under /api/v1 (Bearer API key): CRUD, validation, preview as a contact, test send.
Every route needs `templates.manage` (owner, admin, marketer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.errors import TuttiError
from tutti.platform.schemas import ERROR_RESPONSES, Body, Id, IdPath, JsonObject, Text
from tutti.reach.templates import service

router = APIRouter(tags=["templates"], responses=ERROR_RESPONSES)
Channel = Literal["line", "email", "sms"]
MANAGE = allowed("templates.manage")


class TemplateIn(Body):
    name: Text(200, 1) = Field(examples=["春季新品 LINE"])
    channel: Channel = Field(examples=["line"])
    content: JsonObject = Field(description="LINE {messages: [...]}, e-mail {subject, html, text}, SMS {text}; Jinja2 in text",
                                examples=[{"messages": [{"type": "text", "text": "嗨 {{ name | default('朋友') }}，春季新品上市！"}]}])


class TemplatePatch(Body):
    name: Text(200, 1) | None = None
    content: JsonObject | None = None


class TemplateOut(BaseModel):
    id: int
    name: str
    channel: str
    content: dict
    info: dict = Field(description="facts about the message: SMS parts and encoding, LINE message count")
    created_at: datetime
    updated_at: datetime


class TemplateList(BaseModel):
    items: list[TemplateOut]


class CheckIn(Body):
    channel: Channel
    content: JsonObject
    contact_id: Id | None = Field(default=None, description="render as this contact; a made-up one when absent")


class PreviewOut(BaseModel):
    payload: dict = Field(description="what the channel would send")
    info: dict
    variables: list[str] = Field(description="the variables this contact has")


class TestSendIn(Body):
    to: Text(320, 1) = Field(description="the tester's address on the channel: LINE user id, e-mail, phone",
                             examples=["mei@example.com"])
    contact_id: Id | None = None
    channel_id: Id | None = Field(default=None, description="the provider account; the workspace's default when absent")


class TestSendOut(BaseModel):
    status: str = Field(examples=["sent"])
    reason: str | None = None
    provider_id: str | None = None


def _out(template) -> dict:
    return {"id": template.id, "name": template.name, "channel": template.channel, "content": template.content,
            "info": service.describe(template.channel, template.content), "created_at": template.created_at,
            "updated_at": template.updated_at}


@router.get("/templates", response_model=TemplateList)
def list_templates(channel: Annotated[Channel | None, Query()] = None, ctx: ApiContext = MANAGE,
                   db: Session = get_db) -> dict:
    """Templates of the workspace, most recently changed first. Permission: templates.manage."""
    return {"items": [_out(t) for t in service.list_templates(db, workspace_id=ctx.workspace_id, channel=channel)]}


@router.post("/templates", response_model=TemplateOut, status_code=201)
def create_template(body: TemplateIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Create a template; the content is validated against the channel's limits (422 names the path, e.g.
    `content.messages[1].template.actions[4]`). Permission: templates.manage."""
    with _content_fields():
        template = service.create_template(db, workspace_id=ctx.workspace_id, name=body.name, channel=body.channel,
                                           content=body.content, actor=ctx.actor)
    return _out(template)


@router.get("/templates/{template_id}", response_model=TemplateOut)
def get_template(template_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """One template. Permission: templates.manage."""
    return _out(service.get_template(db, workspace_id=ctx.workspace_id, template_id=template_id))


@router.patch("/templates/{template_id}", response_model=TemplateOut)
def update_template(template_id: IdPath, body: TemplatePatch, ctx: ApiContext = MANAGE,
                    db: Session = get_db) -> dict:
    """Rename a template or replace its content (validated). Permission: templates.manage."""
    with _content_fields():
        template = service.update_template(db, workspace_id=ctx.workspace_id, template_id=template_id, actor=ctx.actor,
                                           name=body.name, content=body.content)
    return _out(template)


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: IdPath, ctx: ApiContext = MANAGE, db: Session = get_db) -> Response:
    """Delete a template (campaigns keep their own copy of the content). Permission: templates.manage."""
    service.delete_template(db, workspace_id=ctx.workspace_id, template_id=template_id, actor=ctx.actor)
    return Response(status_code=204)


@router.post("/templates/preview", response_model=PreviewOut)
def preview(body: CheckIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Validate content and render it as a contact (or a made-up one). 422 lists every problem in
    `error.details`. Permission: templates.manage."""
    with _content_fields():
        result = service.preview(db, workspace_id=ctx.workspace_id, channel=body.channel, content=body.content,
                                 contact_id=body.contact_id)
    return {"payload": result["payload"], "info": result["info"], "variables": sorted(result["context"])}


@router.post("/templates/{template_id}/test-send", response_model=TestSendOut)
def test_send(template_id: IdPath, body: TestSendIn, ctx: ApiContext = MANAGE, db: Session = get_db) -> dict:
    """Send the template once to a tester's address through the workspace's channel (not tracked).
    Permission: templates.manage."""
    template = service.get_template(db, workspace_id=ctx.workspace_id, template_id=template_id)
    return service.test_send(db, workspace_id=ctx.workspace_id, channel=template.channel, content=template.content,
                             to=body.to, actor=ctx.actor, contact_id=body.contact_id, channel_id=body.channel_id)


@contextmanager
def _content_fields() -> Iterator[None]:
    """Report a content problem's path as the request spells it (`content.messages[0].text`)."""
    try:
        yield
    except TuttiError as error:
        if error.field and error.field not in ("name", "channel", "contact_id", "to"):
            error.field = f"content.{error.field}"
            for item in error.details if isinstance(error.details, list) else []:
                if isinstance(item, dict) and item.get("field"):
                    item["field"] = f"content.{item['field']}"
        raise
