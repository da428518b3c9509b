"""The widget's sessions: who the visitor is, their conversation on the web channel, and its history.

A visitor is an anonymous id kept in the browser's localStorage (an `anonymous_id` identity), or — when
the shop vouches for its signed-in customer — their user id as an `external_id` identity, proved by
`user_hash = HMAC-SHA256(widget secret, user id)` computed on the shop's server (the scheme of
Intercom's identity verification). A session start answers with a visitor token (signed by the server's
secret, so no table) that the other public endpoints take instead of the ids.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from tutti.audience import contacts
from tutti.converse.conversations.models import Conversation, Message
from tutti.converse.widget.models import WidgetConfig
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Forbidden, InvalidInput, NotFound, Unauthorized

CHANNEL = "web"
TOKEN_MAX_AGE = 7 * 24 * 3600  # the widget starts a session on every page load; a week covers a long tab
HIDDEN_KINDS = ("note", "event")  # internal notes and system events are for the team, never the visitor
HISTORY_LIMIT = 100
_ANON = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_ORIGIN = re.compile(r"^https?://[^/\s]+$")

DEFAULT_TITLE = {"zh-TW": "線上客服", "en": "Chat with us"}
DEFAULT_GREETING = {"zh-TW": "您好!有什麼可以幫您的嗎?", "en": "Hi! How can we help?"}


@dataclass
class Visitor:
    workspace_id: int
    contact_id: int


def _new_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


def config_for(db: Session, *, workspace_id: int) -> WidgetConfig:
    """The workspace's widget settings, created with a fresh key and secret on first use."""
    config = db.scalar(select(WidgetConfig).where(WidgetConfig.workspace_id == workspace_id))
    if config is None:
        config = WidgetConfig(workspace_id=workspace_id, public_key=_new_key(), secret=secrets.token_hex(32),
                              allowed_origins=[], title=dict(DEFAULT_TITLE), greeting=dict(DEFAULT_GREETING))
        db.add(config)
        db.flush()
    return config


def config_by_key(db: Session, public_key: str) -> WidgetConfig:
    config = db.scalar(select(WidgetConfig).where(WidgetConfig.public_key == public_key))
    if config is None or not config.enabled:
        raise NotFound("no chat widget with this key (check data-workspace in the script tag)")
    return config


def update_config(
    db: Session,
    *,
    workspace_id: int,
    allowed_origins: list[str] | None = None,
    color: str | None = None,
    title: dict | None = None,
    greeting: dict | None = None,
    require_identity: bool | None = None,
    enabled: bool | None = None,
) -> WidgetConfig:
    config = config_for(db, workspace_id=workspace_id)
    if allowed_origins is not None:
        origins = [o.strip().rstrip("/") for o in allowed_origins if o.strip()]
        bad = [o for o in origins if not _ORIGIN.match(o)]
        if bad:
            raise InvalidInput(f"'{bad[0]}' is not an origin like https://shop.example", field="allowed_origins")
        config.allowed_origins = origins
    if color is not None:
        if not _COLOR.match(color):
            raise InvalidInput("colour must look like #4f46e5", field="color")
        config.color = color
    for name, value in (("title", title), ("greeting", greeting)):
        if value is not None:
            if not isinstance(value, dict) or set(value) - {"zh-TW", "en"}:
                raise InvalidInput(f"{name} takes the languages zh-TW and en", field=name)
            setattr(config, name, {k: str(v)[:300] for k, v in value.items()})
    if require_identity is not None:
        config.require_identity = require_identity
    if enabled is not None:
        config.enabled = enabled
    db.flush()
    return config


def rotate_secret(db: Session, *, workspace_id: int) -> WidgetConfig:
    config = config_for(db, workspace_id=workspace_id)
    config.secret = secrets.token_hex(32)
    db.flush()
    return config


def origin_allowed(allowed_origins: list[str], origin: str | None) -> bool:
    """No list means any site may embed the widget; a request without Origin is not from a browser page."""
    if not origin or not allowed_origins:
        return True
    return origin.rstrip("/") in allowed_origins


def identity_hash(secret: str, user_id: str) -> str:
    """What the shop's server computes and prints as data-user-hash."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()


def _verified_user(config: WidgetConfig, user_id: str | None, user_hash: str | None) -> str | None:
    if not user_id:
        return None
    user_id = str(user_id).strip()
    if not user_hash:
        raise Forbidden("data-user-id needs data-user-hash (HMAC-SHA256 of the user id with the widget secret)")
    if not hmac.compare_digest(identity_hash(config.secret, user_id), user_hash.strip().lower()):
        raise Forbidden("data-user-hash does not match data-user-id")
    return user_id


def start_session(
    db: Session,
    *,
    config: WidgetConfig,
    anonymous_id: str | None,
    user_id: str | None = None,
    user_hash: str | None = None,
    name: str | None = None,
    email: str | None = None,
) -> Visitor:
    """The contact behind this browser: the verified customer, else the anonymous visitor."""
    verified = _verified_user(config, user_id, user_hash)
    if anonymous_id is not None and not _ANON.match(anonymous_id):
        raise InvalidInput("anonymous_id must be 16–64 letters, digits, - or _", field="anonymous_id")
    if verified is None and config.require_identity:
        raise Forbidden("this widget only talks to signed-in customers")
    identities: list[tuple[str, object]] = []
    if verified is not None:
        identities.append(("external_id", verified))
        if email:  # only a verified shop can attach an e-mail, or anyone could claim someone's profile
            identities.append(("email", email))
    if anonymous_id:
        # the anonymous history joins the customer once they sign in on the same browser
        identities.append(("anonymous_id", anonymous_id))
    if not identities:
        raise InvalidInput("anonymous_id is required", field="anonymous_id")
    profile = {"name": name[:200]} if (verified and name) else None
    contact, _ = contacts.upsert(db, workspace_id=config.workspace_id, identities=identities, profile=profile,
                                 source="widget", actor=Actor.system("widget"))
    return Visitor(workspace_id=config.workspace_id, contact_id=contact.id)


# --- visitor tokens -------------------------------------------------------------------------------


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="tutti.widget.visitor")


def visitor_token(secret_key: str, visitor: Visitor) -> str:
    return _serializer(secret_key).dumps([visitor.workspace_id, visitor.contact_id])


def read_token(secret_key: str, token: str | None, *, workspace_id: int) -> Visitor:
    if not token:
        raise Unauthorized("start a widget session first (POST …/session)")
    try:
        ws, contact_id = _serializer(secret_key).loads(token, max_age=TOKEN_MAX_AGE)
    except SignatureExpired:
        raise Unauthorized("the widget session expired; start a new one") from None
    except (BadSignature, ValueError, TypeError):
        raise Unauthorized("invalid widget session token") from None
    if ws != workspace_id:
        raise Unauthorized("this session belongs to another widget")
    return Visitor(workspace_id=ws, contact_id=int(contact_id))


# --- conversation and history ---------------------------------------------------------------------


def _contact_ids(db: Session, visitor: Visitor) -> int:
    # a visitor's contact may have been merged since the token was issued: follow it
    return contacts.live_contact(db, workspace_id=visitor.workspace_id, contact_id=visitor.contact_id).id


def current_conversation(db: Session, visitor: Visitor) -> Conversation | None:
    contact_id = _contact_ids(db, visitor)
    return db.scalar(
        select(Conversation).where(Conversation.workspace_id == visitor.workspace_id, Conversation.contact_id == contact_id,
                                   Conversation.channel == CHANNEL).order_by(Conversation.id.desc()).limit(1)
    )


def message_out(message: Message, names: dict[int, str] | None = None) -> dict:
    out = {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "author": message.author,
        "kind": message.kind,
        "text": message.text,
        "payload": message.payload or {},
        "created_at": message.created_at.isoformat() if message.created_at else None,
    }
    if message.author == "agent" and names is not None:
        out["agent"] = names.get(message.user_id or 0)
    return out


def public_message(message: dict) -> dict:
    """A message as the conversation service publishes it, in the widget's shape."""
    created = message.get("created_at")
    return {"id": message["id"], "conversation_id": message["conversation_id"], "author": message["author"],
            "kind": message.get("kind") or "text", "text": message.get("text"), "payload": message.get("payload") or {},
            "created_at": created.isoformat() if hasattr(created, "isoformat") else created}


def history(db: Session, *, visitor: Visitor, conversation_id: int | None = None, after_id: int = 0,
            limit: int = HISTORY_LIMIT, recent_seconds: float | None = None) -> list[dict]:
    """The visitor's messages on the web channel after `after_id` (and, with `recent_seconds`, any of
    the last seconds whatever their id), oldest first, internal notes left out."""
    from tutti.platform.models import User

    contact_id = _contact_ids(db, visitor)
    query = (
        select(Message).join(Conversation, Conversation.id == Message.conversation_id)
        .where(Conversation.workspace_id == visitor.workspace_id, Conversation.contact_id == contact_id,
               Conversation.channel == CHANNEL, Message.kind.not_in(HIDDEN_KINDS), Message.author != "system")
    )
    if conversation_id is not None:
        query = query.where(Message.conversation_id == conversation_id)
    if after_id:
        newer = Message.id > after_id
        if recent_seconds:
            newer = or_(newer, Message.created_at >= utcnow() - timedelta(seconds=recent_seconds))
        query = query.where(newer).order_by(Message.id).limit(limit)
        rows = list(db.scalars(query))
    else:  # the newest page, shown oldest first
        rows = list(db.scalars(query.order_by(Message.id.desc()).limit(limit)))[::-1]
    user_ids = {m.user_id for m in rows if m.author == "agent" and m.user_id}
    names = {}
    if user_ids:
        names = {uid: (name or "").split(" ")[0] or None
                 for uid, name in db.execute(select(User.id, User.name).where(User.id.in_(user_ids)))}
    return [message_out(m, names) for m in rows]


def owns_conversation(db: Session, visitor: Visitor, conversation_id: int) -> bool:
    contact_id = _contact_ids(db, visitor)
    return db.scalar(
        select(Conversation.id).where(Conversation.id == conversation_id, Conversation.workspace_id == visitor.workspace_id,
                                      Conversation.contact_id == contact_id, Conversation.channel == CHANNEL)
    ) is not None


def send(db: Session, *, visitor: Visitor, text: str, client_id: str | None = None) -> Message:
    """The visitor's message; the agent answers (or hands off) inside receive_customer_message."""
    from tutti.converse.conversations import service as conversations

    text = (text or "").strip()
    if not text:
        raise InvalidInput("the message is empty", field="text")
    if len(text) > 4000:
        raise InvalidInput("a message is at most 4,000 characters", field="text")
    if client_id is not None and not re.match(r"^[A-Za-z0-9_-]{6,64}$", client_id):
        raise InvalidInput("client_id must be 6–64 letters, digits, - or _", field="client_id")
    contact_id = _contact_ids(db, visitor)
    return conversations.receive_customer_message(
        db, workspace_id=visitor.workspace_id, contact_id=contact_id, channel=CHANNEL, text=text,
        external_id=f"{contact_id}:{client_id}" if client_id else None,
    )


def public_look(config: WidgetConfig) -> dict:
    return {"color": config.color, "title": config.title or DEFAULT_TITLE, "greeting": config.greeting or DEFAULT_GREETING}
