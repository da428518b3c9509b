"""Who is calling: API keys (Bearer) for the REST API, write keys (HTTP Basic user) for tracking, and
signed-in browsers for the UI. Each gives a workspace id that every query is then scoped by."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tutti.platform import roles, workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import get_database, utcnow
from tutti.platform.errors import Unauthorized
from tutti.platform.models import Workspace


def _db() -> Iterator[Session]:
    with get_database().session() as db:
        yield db


# scope="function": the transaction commits when the route returns, before the answer is sent, so a
# 200 means the data is durably stored.
get_db = Depends(_db, scope="function")


@dataclass(frozen=True)
class ApiContext:
    workspace: Workspace
    actor: Actor

    @property
    def workspace_id(self) -> int:
        return self.workspace.id

    @property
    def region(self) -> str:
        return self.workspace.default_region

    def require(self, permission: str) -> None:
        roles.require(self.actor.role, permission)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API key as 'Authorization: Bearer tk_…'")
    return token.strip()


def api_context(request: Request, db: Session = get_db) -> ApiContext:
    key = workspaces.authenticate_api_key(db, _bearer(request))
    if key is None:
        raise Unauthorized("this API key is not valid or was revoked")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=5):
        key.last_used_at = now  # throttled: a write per request would serialise every call on SQLite
    workspace = db.get(Workspace, key.workspace_id)
    return ApiContext(workspace=workspace, actor=Actor(kind="api_key", id=key.id, label=key.name, role=key.role))


def write_key_workspace(request: Request, db: Session) -> Workspace:
    """The workspace whose write key is the HTTP Basic user name (Segment's convention; no password)."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    write_key = None
    if scheme.lower() == "basic":
        try:
            write_key = base64.b64decode(encoded.strip()).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            write_key = None
    if not write_key:
        raise Unauthorized("send the workspace's write key as the HTTP Basic user name")
    workspace = workspaces.workspace_for_write_key(db, write_key)
    if workspace is None:
        raise Unauthorized("this write key is not valid")
    return workspace
