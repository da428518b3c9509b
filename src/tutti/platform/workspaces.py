"""Workspaces, users, memberships, invitations, API keys, write keys and browser sessions."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tutti.platform import audit, security
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound, Unauthorized
from tutti.platform.models import ApiKey, BrowserSession, Invitation, Membership, User, Workspace
from tutti.platform.roles import check_role

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SESSION_LIFETIME = timedelta(days=14)
INVITATION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class NewKey:
    """A key as created: the plaintext exists only here, once."""

    record: ApiKey
    key: str


def _slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or "workspace"


def create_workspace(
    db: Session, *, name: str, timezone: str = "Asia/Taipei", locale: str = "zh-TW", currency: str = "TWD"
) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidInput("a workspace needs a name", field="name")
    base = _slugify(name)
    slug, n = base, 1
    while db.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    workspace = Workspace(
        name=name, slug=slug, timezone=timezone, locale=locale, currency=currency, write_key=security.new_token("wk_", 24)
    )
    db.add(workspace)
    db.flush()
    audit.record(db, workspace_id=workspace.id, actor=Actor.system(), action="workspace.create", target_kind="workspace", target_id=workspace.id)
    return workspace


def get_workspace(db: Session, workspace_id: int) -> Workspace:
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace with id {workspace_id}")
    return workspace


def workspace_for_write_key(db: Session, write_key: str) -> Workspace | None:
    return db.scalar(select(Workspace).where(Workspace.write_key == write_key))


def rotate_write_key(db: Session, *, workspace_id: int, actor: Actor) -> str:
    workspace = get_workspace(db, workspace_id)
    workspace.write_key = security.new_token("wk_", 24)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="write_key.rotate", target_kind="workspace", target_id=workspace_id)
    return workspace.write_key


# --- users and memberships -------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"'{email}' is not an e-mail address", field="email")
    return email


def check_password(password: str) -> str:
    if len(password) < security.MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must have at least {security.MIN_PASSWORD_LENGTH} characters", field="password")
    return password


def create_user(db: Session, *, email: str, password: str | None, name: str = "") -> User:
    email = normalise_email(email)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with the e-mail {email} exists already", field="email")
    user = User(email=email, name=name.strip(), password_hash=security.hash_password(check_password(password)) if password else None)
    db.add(user)
    db.flush()
    return user


def add_member(db: Session, *, workspace_id: int, user_id: int, role: str, actor: Actor) -> Membership:
    check_role(role)
    membership = db.get(Membership, (workspace_id, user_id))
    if membership is None:
        membership = Membership(workspace_id=workspace_id, user_id=user_id, role=role)
        db.add(membership)
    else:
        membership.role = role
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="member.set_role", target_kind="user", target_id=user_id, detail={"role": role})
    return membership


def remove_member(db: Session, *, workspace_id: int, user_id: int, actor: Actor) -> None:
    membership = db.get(Membership, (workspace_id, user_id))
    if membership is None:
        raise NotFound(f"user {user_id} is not a member of this workspace")
    if membership.role == "owner":
        owners = db.scalar(select(func.count()).where(Membership.workspace_id == workspace_id, Membership.role == "owner"))
        if owners <= 1:
            raise Conflict("the last owner cannot be removed")
    db.delete(membership)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="member.remove", target_kind="user", target_id=user_id)


def list_members(db: Session, *, workspace_id: int) -> list[tuple[User, str]]:
    rows = db.execute(
        select(User, Membership.role).join(Membership, Membership.user_id == User.id).where(Membership.workspace_id == workspace_id).order_by(User.email)
    )
    return [(user, role) for user, role in rows]


def workspaces_of(db: Session, *, user_id: int) -> list[tuple[Workspace, str]]:
    rows = db.execute(
        select(Workspace, Membership.role).join(Membership, Membership.workspace_id == Workspace.id).where(Membership.user_id == user_id).order_by(Workspace.id)
    )
    return [(workspace, role) for workspace, role in rows]


def role_of(db: Session, *, workspace_id: int, user_id: int) -> str | None:
    return db.scalar(select(Membership.role).where(Membership.workspace_id == workspace_id, Membership.user_id == user_id))


# --- invitations -----------------------------------------------------------------------------------


def invite(db: Session, *, workspace_id: int, email: str, role: str, actor: Actor) -> tuple[Invitation, str]:
    """Create an invitation; returns it with the token for the link (shown once)."""
    email = normalise_email(email)
    check_role(role)
    token = security.new_token("inv_")
    invitation = Invitation(
        workspace_id=workspace_id,
        email=email,
        role=role,
        token_hash=security.digest(token),
        invited_by=actor.id if actor.kind == "user" else None,
        expires_at=utcnow() + INVITATION_LIFETIME,
    )
    db.add(invitation)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="invitation.create", target_kind="invitation", target_id=invitation.id, detail={"email": email, "role": role})
    return invitation, token


def find_invitation(db: Session, token: str) -> Invitation:
    invitation = db.scalar(select(Invitation).where(Invitation.token_hash == security.digest(token)))
    if invitation is None or invitation.accepted_at is not None or invitation.expires_at < utcnow():
        raise NotFound("this invitation does not exist, was used already or has expired")
    return invitation


def accept_invitation(db: Session, *, token: str, password: str, name: str = "") -> User:
    invitation = find_invitation(db, token)
    user = db.scalar(select(User).where(User.email == invitation.email))
    if user is None:
        user = create_user(db, email=invitation.email, password=password, name=name)
    elif not security.verify_password(user.password_hash, password):
        raise Unauthorized("this e-mail has an account already; enter its password to accept")
    invitation.accepted_at = utcnow()
    add_member(db, workspace_id=invitation.workspace_id, user_id=user.id, role=invitation.role, actor=Actor(kind="user", id=user.id, label=user.email))
    return user


# --- API keys --------------------------------------------------------------------------------------


def create_api_key(db: Session, *, workspace_id: int, name: str, role: str, actor: Actor) -> NewKey:
    check_role(role)
    if not name.strip():
        raise InvalidInput("an API key needs a name", field="name")
    key = security.new_token("tk_")
    record = ApiKey(
        workspace_id=workspace_id,
        name=name.strip(),
        prefix=key[:10],
        key_hash=security.digest(key),
        role=role,
        created_by=actor.id if actor.kind == "user" else None,
    )
    db.add(record)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="api_key.create", target_kind="api_key", target_id=record.id, detail={"name": record.name, "role": role})
    return NewKey(record=record, key=key)


def list_api_keys(db: Session, *, workspace_id: int) -> list[ApiKey]:
    return list(db.scalars(select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None)).order_by(ApiKey.id)))


def revoke_api_key(db: Session, *, workspace_id: int, key_id: int, actor: Actor) -> None:
    changed = db.execute(
        update(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    ).rowcount
    if not changed:
        raise NotFound(f"no active API key with id {key_id}")
    audit.record(db, workspace_id=workspace_id, actor=actor, action="api_key.revoke", target_kind="api_key", target_id=key_id)


def authenticate_api_key(db: Session, key: str) -> ApiKey | None:
    record = db.scalar(select(ApiKey).where(ApiKey.key_hash == security.digest(key), ApiKey.revoked_at.is_(None)))
    return record


# --- browser sessions ------------------------------------------------------------------------------


def authenticate_user(db: Session, *, email: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.email == email.strip().lower(), User.disabled_at.is_(None)))
    if user is None:
        security.verify_password(None, password)  # same work either way, so timing does not reveal accounts
        return None
    return user if security.verify_password(user.password_hash, password) else None


def start_session(db: Session, *, user_id: int, workspace_id: int | None) -> tuple[str, BrowserSession]:
    token = security.new_token()
    browser_session = BrowserSession(
        id_hash=security.digest(token),
        user_id=user_id,
        workspace_id=workspace_id,
        csrf_token=security.new_token(nbytes=24),
        expires_at=utcnow() + SESSION_LIFETIME,
    )
    db.add(browser_session)
    db.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id, BrowserSession.expires_at < utcnow()))
    return token, browser_session


def find_session(db: Session, token: str) -> BrowserSession | None:
    browser_session = db.get(BrowserSession, security.digest(token))
    if browser_session is None or browser_session.expires_at < utcnow():
        return None
    return browser_session


def end_session(db: Session, token: str) -> None:
    db.execute(delete(BrowserSession).where(BrowserSession.id_hash == security.digest(token)))
