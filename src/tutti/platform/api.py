"""REST API of the platform under /api/v1: the workspace, API keys, write key, members, invitations and
the audit log. Thin: each route checks the key's permission and calls a service."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tutti.platform import audit, workspaces
from tutti.platform.auth import ApiContext, api_context, get_db
from tutti.platform.config import public_url
from tutti.platform.errors import Forbidden
from tutti.platform.models import ROLES
from tutti.platform.schemas import ERROR_RESPONSES, Body, IdPath, Text, decode_cursor, encode_cursor

Role = Literal["owner", "admin", "marketer", "agent", "analyst"]
assert set(Role.__args__) == set(ROLES)
# A key or an invitation can never grant more than its creator holds.
RANK = {"owner": 3, "admin": 2, "marketer": 1, "agent": 1, "analyst": 1}


def allowed(permission: str | None = None) -> Any:
    """The API context of the calling key, after checking its role may do `permission` (403 if not)."""

    def dependency(ctx: ApiContext = Depends(api_context)) -> ApiContext:
        if permission:
            ctx.require(permission)
        return ctx

    return Depends(dependency)


def check_grant(ctx: ApiContext, role: str) -> None:
    if RANK[role] > RANK[ctx.actor.role]:
        raise Forbidden(f"a key with the role '{ctx.actor.role}' cannot grant the role '{role}'", field="role")


router = APIRouter(tags=["workspace"], responses=ERROR_RESPONSES)


# --- shapes ----------------------------------------------------------------------------------------


class WorkspaceOut(BaseModel):
    id: int
    name: str = Field(examples=["小島咖啡 Island Coffee"])
    slug: str = Field(examples=["island-coffee"])
    timezone: str = Field(examples=["Asia/Taipei"])
    locale: str = Field(examples=["zh-TW"])
    currency: str = Field(examples=["TWD"])
    default_region: str = Field(examples=["TW"])
    role: str = Field(description="the role of the key making this call", examples=["admin"])


class ApiKeyIn(Body):
    name: Text(200, 1) = Field(examples=["shop integration"])
    role: Role = Field(default="marketer", examples=["marketer"])


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="the first characters of the key, to tell keys apart", examples=["tk_9f2a1c"])
    role: str
    created_at: datetime
    last_used_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="the key itself; shown this once and never again", examples=["tk_9f2a1c…"])


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


class WriteKeyOut(BaseModel):
    write_key: str = Field(description="the new tracking write key; the previous one stops working now", examples=["wk_…"])


class MemberOut(BaseModel):
    user_id: int
    email: str = Field(examples=["mei@example.com"])
    name: str
    role: str


class MemberList(BaseModel):
    items: list[MemberOut]


class InvitationIn(Body):
    email: Text(320, 3) = Field(examples=["ken@example.com"])
    role: Role = Field(default="marketer")


class InvitationOut(BaseModel):
    id: int
    email: str
    role: str
    expires_at: datetime
    token: str = Field(description="the invitation token for the accept link; shown this once", examples=["inv_…"])
    accept_url: str = Field(description="the page where the invited person sets a password and joins", examples=["https://tutti.example.com/invitations/inv_…"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_kind: str = Field(examples=["api_key"])
    actor_id: int | None
    actor_label: str
    action: str = Field(examples=["contact.erase"])
    target_kind: str | None
    target_id: str | None
    detail: dict


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null on the last page")


def _key(record) -> dict:
    return {"id": record.id, "name": record.name, "prefix": record.prefix, "role": record.role,
            "created_at": record.created_at, "last_used_at": record.last_used_at}


# --- routes ----------------------------------------------------------------------------------------


@router.get("/workspace", response_model=WorkspaceOut)
def current_workspace(ctx: ApiContext = allowed()) -> dict:
    """The workspace this key belongs to, and the key's role. Any role."""
    w = ctx.workspace
    return {"id": w.id, "name": w.name, "slug": w.slug, "timezone": w.timezone, "locale": w.locale,
            "currency": w.currency, "default_region": w.default_region, "role": ctx.actor.role}


@router.get("/api-keys", response_model=ApiKeyList)
def list_api_keys(ctx: ApiContext = allowed("keys.manage"), db: Session = get_db) -> dict:
    """Active API keys (never the keys themselves). Permission: keys.manage (owner, admin)."""
    return {"items": [_key(k) for k in workspaces.list_api_keys(db, workspace_id=ctx.workspace_id)]}


@router.post("/api-keys", response_model=NewApiKeyOut, status_code=201)
def create_api_key(body: ApiKeyIn, ctx: ApiContext = allowed("keys.manage"), db: Session = get_db) -> dict:
    """Create an API key. The answer holds the key itself, shown once. Permission: keys.manage; a key can
    only create keys whose role is not above its own."""
    check_grant(ctx, body.role)
    new = workspaces.create_api_key(db, workspace_id=ctx.workspace_id, name=body.name, role=body.role, actor=ctx.actor)
    return {**_key(new.record), "key": new.key}


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response)
def revoke_api_key(key_id: IdPath, ctx: ApiContext = allowed("keys.manage"), db: Session = get_db) -> Response:
    """Revoke an API key; it answers 401 from now on. Permission: keys.manage."""
    workspaces.revoke_api_key(db, workspace_id=ctx.workspace_id, key_id=key_id, actor=ctx.actor)
    return Response(status_code=204)


@router.post("/write-key/rotate", response_model=WriteKeyOut)
def rotate_write_key(ctx: ApiContext = allowed("keys.manage"), db: Session = get_db) -> dict:
    """Replace the tracking write key. Permission: keys.manage."""
    return {"write_key": workspaces.rotate_write_key(db, workspace_id=ctx.workspace_id, actor=ctx.actor)}


@router.get("/members", response_model=MemberList)
def list_members(ctx: ApiContext = allowed("users.manage"), db: Session = get_db) -> dict:
    """People who can sign in to this workspace, with their roles. Permission: users.manage."""
    return {"items": [{"user_id": u.id, "email": u.email, "name": u.name, "role": role}
                      for u, role in workspaces.list_members(db, workspace_id=ctx.workspace_id)]}


@router.post("/invitations", response_model=InvitationOut, status_code=201)
def create_invitation(body: InvitationIn, request: Request, ctx: ApiContext = allowed("users.manage"), db: Session = get_db) -> dict:
    """Invite someone by e-mail with a role; the token for the accept link is in the answer, once.
    Permission: users.manage."""
    check_grant(ctx, body.role)
    invitation, token = workspaces.invite(db, workspace_id=ctx.workspace_id, email=body.email, role=body.role, actor=ctx.actor)
    return {"id": invitation.id, "email": invitation.email, "role": invitation.role, "expires_at": invitation.expires_at, "token": token,
            "accept_url": f"{public_url(request)}/invitations/{token}"}


@router.get("/audit-log", response_model=AuditPage)
def audit_log(
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ctx: ApiContext = allowed("audit.read"),
    db: Session = get_db,
) -> dict:
    """Who changed what, newest first. Permission: audit.read (owner, admin)."""
    before = decode_cursor(cursor)
    entries = audit.list_entries(db, workspace_id=ctx.workspace_id, limit=limit + 1, before_id=before)
    page = entries[:limit]
    items = [{"id": e.id, "at": e.at, "actor_kind": e.actor_kind, "actor_id": e.actor_id, "actor_label": e.actor_label,
              "action": e.action, "target_kind": e.target_kind, "target_id": e.target_id, "detail": e.detail or {}} for e in page]
    return {"items": items, "next_cursor": encode_cursor(page[-1].id) if len(entries) > limit else None}
