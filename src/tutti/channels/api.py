"""REST API of channels under /api/v1/channels. Secrets go in, never come out (masked as ••••abcd).

Permissions: reading `channels.read` (every role: campaigns and the inbox pick channels), changing
`channels.manage` (owner, admin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from tutti.channels import service
from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.schemas import ERROR_RESPONSES, IdPath, JsonObject, Text

router = APIRouter(prefix="/channels", tags=["channels"], responses=ERROR_RESPONSES)

Kind = Literal["line", "email", "sms", "webhook"]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    name: Text(200, 1)
    config: JsonObject = {}
    credentials: JsonObject = {}


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text(200, 1) | None = None
    config: JsonObject | None = None
    credentials: JsonObject | None = None
    status: Literal["active", "disabled"] | None = None


class ChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    status: str
    status_detail: str | None = None
    config: dict[str, Any]
    credentials: dict[str, str | None]  # masked
    created_at: datetime
    updated_at: datetime
    last_tested_at: datetime | None = None
    bot_user_id: str | None = None
    basic_id: str | None = None
    webhook_path: str | None = None  # LINE: where LINE should send events (set it in the LINE console)
    signing_secret: str | None = None  # webhook: shown once, in the answer of the create call only


class ChannelList(BaseModel):
    items: list[ChannelOut]


class TestResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool
    message: str


@router.get("", response_model=ChannelList)
def list_channels(kind: Kind | None = None, ctx: ApiContext = allowed("channels.read"), db: Session = get_db) -> dict:
    """The workspace's channels, oldest first. Permission: channels.read."""
    return {"items": [service.describe(c) for c in service.list_channels(db, workspace_id=ctx.workspace_id, kind=kind)]}


@router.post("", response_model=ChannelOut, status_code=201)
def connect(body: ChannelIn, ctx: ApiContext = allowed("channels.manage"), db: Session = get_db) -> dict:
    """Connect a channel. `config` and `credentials` per kind are in docs/channels.md (LINE: credentials
    channel_secret and access_token, config api_base_url to use the emulator). Permission: channels.manage."""
    generated = body.kind == "webhook" and not body.credentials.get("signing_secret")
    channel = service.connect(db, workspace_id=ctx.workspace_id, kind=body.kind, name=body.name, config=body.config,
                              credentials=body.credentials, actor=ctx.actor)
    shown = service.describe(channel)
    if generated:
        shown["signing_secret"] = service.secrets_of(channel)["signing_secret"]
    return shown


@router.get("/{channel_id}", response_model=ChannelOut)
def get_channel(channel_id: IdPath, ctx: ApiContext = allowed("channels.read"), db: Session = get_db) -> dict:
    """One channel (secrets masked). Permission: channels.read."""
    return service.describe(service.get_channel(db, workspace_id=ctx.workspace_id, channel_id=channel_id))


@router.patch("/{channel_id}", response_model=ChannelOut)
def update_channel(channel_id: IdPath, body: ChannelPatch, ctx: ApiContext = allowed("channels.manage"), db: Session = get_db) -> dict:
    """Change the name, settings, secrets (an empty secret keeps the stored one) or status (active/disabled).
    Permission: channels.manage."""
    channel = service.update_channel(db, workspace_id=ctx.workspace_id, channel_id=channel_id, actor=ctx.actor, name=body.name,
                                     config=body.config, credentials=body.credentials, status=body.status)
    return service.describe(channel)


@router.delete("/{channel_id}", status_code=204, response_class=Response)
def delete_channel(channel_id: IdPath, ctx: ApiContext = allowed("channels.manage"), db: Session = get_db) -> Response:
    """Remove a channel and its secrets. Permission: channels.manage."""
    service.delete_channel(db, workspace_id=ctx.workspace_id, channel_id=channel_id, actor=ctx.actor)
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=TestResult)
def test_channel(channel_id: IdPath, ctx: ApiContext = allowed("channels.manage"), db: Session = get_db) -> dict:
    """Ask the provider whether the channel works (LINE: bot info; SMTP: login; SMS/webhook: a request).
    Answers 200 with ok false and the provider's words when it does not. Permission: channels.manage."""
    return service.test_channel(db, workspace_id=ctx.workspace_id, channel_id=channel_id, actor=ctx.actor)
