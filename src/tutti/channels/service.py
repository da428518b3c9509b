"""Connected channels of a workspace: connect, list, update, delete, test, and the adapter for sending.

Each kind declares its settings below: `config` fields are stored in clear and shown by the API;
`secrets` are stored encrypted (tutti.channels.secrets) and never returned in clear.
"""

from __future__ import annotations

import importlib
import re
import secrets as pysecrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.channels import secrets as crypt
from tutti.channels.base import ChannelAdapter
from tutti.channels.models import CHANNEL_KINDS, Channel
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound, TuttiError

LINE_API = "https://api.line.me"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "str"  # str, int, float, url, email, choice, dict, bool
    required: bool = False
    default: object = None
    choices: tuple = ()


SPECS: dict[str, dict[str, tuple[Field, ...]]] = {
    "line": {
        "config": (
            Field("channel_id", "str"),  # LINE's numeric channel id, shown in the LINE Developers console
            Field("api_base_url", "url", default=LINE_API),  # point at the LINE emulator for demos and tests
            Field("push_rate", "float", default=2000.0),  # requests per second (LINE: 2,000 for push)
            Field("multicast_rate", "float", default=200.0),  # LINE: 200 for multicast
        ),
        "secrets": (Field("channel_secret", required=True), Field("access_token", required=True)),
    },
    "email": {
        "config": (
            Field("host", required=True),
            Field("port", "int", default=587),
            Field("security", "choice", default="starttls", choices=("starttls", "ssl", "none")),
            Field("username", "str"),
            Field("from_address", "email", required=True),
            Field("from_name", "str"),
            Field("reply_to", "email"),
            Field("rate", "float", default=20.0),  # messages per second
            Field("timeout", "float", default=30.0),
        ),
        "secrets": (Field("password"),),
    },
    "sms": {
        "config": (
            Field("url", "url", required=True),
            Field("auth_header", default="Authorization"),
            # JSON body with {to}, {text}, {key} placeholders in string values
            Field("body_template", "dict", default={"to": "{to}", "text": "{text}", "idempotency_key": "{key}"}),
            Field("id_field", default="id"),  # where the provider's message id is in its JSON answer
            Field("sender", "str"),
            Field("rate", "float", default=10.0),
        ),
        "secrets": (Field("auth_value"),),  # e.g. "Bearer sk_…"
    },
    "webhook": {
        "config": (Field("url", "url", required=True), Field("rate", "float", default=50.0), Field("timeout", "float", default=10.0)),
        "secrets": (Field("signing_secret"),),  # generated when not given
    },
}

# Where each kind's adapter lives; imported on first use so a service never pulls every SDK in.
ADAPTERS = {
    "line": "tutti.channels.line",
    "email": "tutti.channels.email",
    "sms": "tutti.channels.sms",
    "webhook": "tutti.channels.webhook",
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _check_kind(kind: str) -> str:
    if kind not in CHANNEL_KINDS:
        raise InvalidInput(f"unknown channel kind '{kind}'; use one of {', '.join(CHANNEL_KINDS)}", field="kind")
    return kind


def _clean(field: Field, value: object, where: str) -> object:
    path = f"{where}.{field.name}"
    if value is None or value == "":
        return None
    try:
        if field.kind in ("str", "email", "url", "choice"):
            if not isinstance(value, str):
                raise InvalidInput(f"{path} must be text", field=path)
            value = value.strip()
            if field.kind == "email" and not _EMAIL.match(value):
                raise InvalidInput(f"{path} '{value}' is not an e-mail address", field=path)
            if field.kind == "url":
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise InvalidInput(f"{path} must be an http(s):// URL (got '{value}')", field=path)
                value = value.rstrip("/")
            if field.kind == "choice" and value not in field.choices:
                raise InvalidInput(f"{path} must be one of {', '.join(field.choices)} (got '{value}')", field=path)
            return value
        if field.kind == "int":
            number = int(value)
            if number <= 0:
                raise ValueError
            return number
        if field.kind == "float":
            number = float(value)
            if number <= 0:
                raise ValueError
            return number
        if field.kind == "dict":
            if not isinstance(value, dict):
                raise InvalidInput(f"{path} must be a JSON object", field=path)
            return value
    except (TypeError, ValueError):
        raise InvalidInput(f"{path} must be a positive number (got {value!r})", field=path) from None
    return value


def _validated(kind: str, values: dict | None, section: str, *, previous: dict | None = None) -> dict:
    """Known fields only, typed, with defaults; `previous` holds stored values a partial update keeps."""
    values = dict(values or {})
    label = "credentials" if section == "secrets" else section  # as the API and the forms spell it
    fields = SPECS[kind][section]
    names = {f.name for f in fields}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InvalidInput(f"{label}.{unknown[0]} is not a setting of a {kind} channel; known: {', '.join(sorted(names))}",
                           field=f"{label}.{unknown[0]}")
    out: dict = {}
    for field in fields:
        if field.name in values:
            value = _clean(field, values[field.name], label)
            # an empty secret in an update means "keep the stored one" (forms never show secrets back)
            if value is None and section == "secrets" and previous and previous.get(field.name):
                value = previous[field.name]
        elif previous is not None and field.name in previous:
            value = previous[field.name]
        else:
            value = field.default
        if value is None and field.required:
            raise InvalidInput(f"{label}.{field.name} is required for a {kind} channel", field=f"{label}.{field.name}")
        if value is not None:
            out[field.name] = value
    return out


def connect(db: Session, *, workspace_id: int, kind: str, name: str, config: dict | None = None,
            credentials: dict | None = None, actor: Actor) -> Channel:
    """Store a new channel. Credentials are checked for shape here; `test_channel` checks them with the provider."""
    kind = _check_kind(kind)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name is required", field="name")
    clean_config = _validated(kind, config, "config")
    clean_secrets = _validated(kind, credentials, "secrets")
    if kind == "webhook" and not clean_secrets.get("signing_secret"):
        clean_secrets["signing_secret"] = "whsec_" + pysecrets.token_urlsafe(32)
    channel = Channel(workspace_id=workspace_id, kind=kind, name=name[:200], config=clean_config,
                      credentials=crypt.encrypt(clean_secrets), status="active")
    db.add(channel)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="channel.connect", target_kind="channel",
                 target_id=channel.id, detail={"kind": kind, "name": channel.name})
    return channel


def list_channels(db: Session, *, workspace_id: int, kind: str | None = None) -> list[Channel]:
    query = select(Channel).where(Channel.workspace_id == workspace_id)
    if kind:
        query = query.where(Channel.kind == _check_kind(kind))
    return list(db.scalars(query.order_by(Channel.id)))


def get_channel(db: Session, *, workspace_id: int, channel_id: int) -> Channel:
    channel = db.get(Channel, channel_id)
    if channel is None or channel.workspace_id != workspace_id:
        raise NotFound(f"channel {channel_id} not found", field="channel_id")
    return channel


def update_channel(db: Session, *, workspace_id: int, channel_id: int, actor: Actor, name: str | None = None,
                   config: dict | None = None, credentials: dict | None = None, status: str | None = None) -> Channel:
    """Change what is given; config and credentials are merged into the stored ones (an empty secret keeps it)."""
    channel = get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
    changed = []
    if name is not None:
        if not name.strip():
            raise InvalidInput("name must not be empty", field="name")
        channel.name = name.strip()[:200]
        changed.append("name")
    if config is not None:
        channel.config = _validated(channel.kind, config, "config", previous=channel.config)
        changed.append("config")
    if credentials is not None:
        stored = crypt.decrypt(channel.credentials)
        channel.credentials = crypt.encrypt(_validated(channel.kind, credentials, "secrets", previous=stored))
        changed.append("credentials")
    if status is not None:
        if status not in ("active", "disabled"):
            raise InvalidInput("status must be active or disabled", field="status")
        channel.status, channel.status_detail = status, None
        changed.append("status")
    if changed:
        channel.updated_at = utcnow()
        audit.record(db, workspace_id=workspace_id, actor=actor, action="channel.update", target_kind="channel",
                     target_id=channel.id, detail={"changed": changed})
    db.flush()
    return channel


def delete_channel(db: Session, *, workspace_id: int, channel_id: int, actor: Actor) -> None:
    channel = get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
    audit.record(db, workspace_id=workspace_id, actor=actor, action="channel.delete", target_kind="channel",
                 target_id=channel.id, detail={"kind": channel.kind, "name": channel.name})
    db.delete(channel)
    db.flush()


def default_channel(db: Session, *, workspace_id: int, kind: str) -> Channel | None:
    """The channel a campaign uses for this kind when none is chosen: the oldest active one."""
    query = (select(Channel).where(Channel.workspace_id == workspace_id, Channel.kind == _check_kind(kind),
                                   Channel.status != "disabled").order_by(Channel.status != "active", Channel.id).limit(1))
    return db.scalars(query).first()


def secrets_of(channel: Channel) -> dict:
    return crypt.decrypt(channel.credentials)


def build_adapter(channel: Channel) -> ChannelAdapter:
    """An adapter for a channel row already loaded (callers outside a transaction keep the row)."""
    module = importlib.import_module(ADAPTERS[channel.kind])
    return module.from_channel(channel_id=channel.id, workspace_id=channel.workspace_id,
                               config=dict(channel.config or {}), secrets=secrets_of(channel))


def adapter_for(db: Session, *, workspace_id: int, channel_id: int) -> ChannelAdapter:
    """The adapter that sends through this channel. Close it (`adapter.close()`) when done."""
    return build_adapter(get_channel(db, workspace_id=workspace_id, channel_id=channel_id))


def test_channel(db: Session, *, workspace_id: int, channel_id: int, actor: Actor | None = None) -> dict:
    """Ask the provider whether the credentials work; records the result on the channel (status, detail,
    and for LINE the bot's user id and basic id). Returns {"ok": bool, "message": str, ...}."""
    channel = get_channel(db, workspace_id=workspace_id, channel_id=channel_id)
    adapter = None
    try:
        adapter = build_adapter(channel)
        facts = adapter.test_connection() or {}
    except TuttiError as error:
        channel.status, channel.status_detail = "error", error.message[:500]
        result = {"ok": False, "message": error.message}
    else:
        channel.status, channel.status_detail = "active", None
        channel.bot_user_id = facts.get("bot_user_id", channel.bot_user_id)
        channel.basic_id = facts.get("basic_id", channel.basic_id)
        result = {"ok": True, "message": facts.get("message", "connected"), **{k: v for k, v in facts.items() if k != "message"}}
    finally:
        if adapter is not None:
            adapter.close()
    channel.last_tested_at = utcnow()
    db.flush()
    return result


def describe(channel: Channel) -> dict:
    """What the API and the UI show: settings in clear, secrets masked."""
    try:
        stored = secrets_of(channel)
        readable = True
    except InvalidInput:
        stored, readable = {}, False
    masked = {f.name: crypt.mask(stored.get(f.name)) for f in SPECS[channel.kind]["secrets"]}
    body = {
        "id": channel.id, "kind": channel.kind, "name": channel.name, "status": channel.status,
        "status_detail": channel.status_detail if readable else "the credentials cannot be decrypted; connect the channel again",
        "config": dict(channel.config or {}), "credentials": masked,
        "created_at": channel.created_at, "updated_at": channel.updated_at, "last_tested_at": channel.last_tested_at,
    }
    if channel.kind == "line":
        body["bot_user_id"], body["basic_id"] = channel.bot_user_id, channel.basic_id
        body["webhook_path"] = f"/webhooks/line/{channel.id}"
    return body


def is_bounce(outcome) -> bool:
    """Whether an e-mail send's outcome is a permanent refusal of the address (then call mark_bounced)."""
    from tutti.channels.email import is_bounce as bounce

    return bounce(outcome)


def mark_bounced(db: Session, *, workspace_id: int, address: str, reason: str) -> int | None:
    """E-mail to this address bounced permanently: its contact's e-mail consent becomes `bounced`."""
    from tutti.channels.email import mark_bounced as mark

    return mark(db, workspace_id=workspace_id, address=address, reason=reason)
