"""Validating a request's messages into Messages. Every hard problem refuses the whole request, listed by
message index and field; a soft problem inside a valid message (a trait that is not a valid e-mail, phone,
LINE id or profile field) is dropped and logged. Pure: no database."""

from __future__ import annotations

import logging
from datetime import datetime

import orjson

from tutti.audience import attributes as attrs
from tutti.audience import events
from tutti.audience.identities import LINE_UID_RE, normalise_email, normalise_phone
from tutti.audience.models import IDENTITY_KINDS
from tutti.audience.tracking.ecommerce import _commerce
from tutti.audience.tracking.message import Message, _dict, _message_id, _plain_id, _Problems, occurred_at
from tutti.audience.tracking.wire import MAX_EVENT_BYTES, TYPES, TrackingError, TrackingTooLarge
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput

log = logging.getLogger("tutti.tracking")

# traits that become identities or built-in profile fields rather than custom attributes
_IDENTITY_TRAITS = {"email": "email", "phone": "phone", "line_user_id": "line_uid", "lineUserId": "line_uid"}
_PROFILE_TRAITS = {"name", "firstName", "lastName", "first_name", "last_name", "gender", "birthday", "address", "city",
                   "timezone", "locale", "id", "userId", "anonymousId"}


def _soft_identities(traits: dict, region: str, index: int) -> list[tuple[str, str]]:
    """Identities carried in traits. A bad value is dropped and logged, never refusing the message."""
    found = []
    for trait, kind in _IDENTITY_TRAITS.items():
        value = traits.get(trait)
        if value is None or value == "":
            continue
        try:
            if kind == "email":
                found.append((kind, normalise_email(str(value))))
            elif kind == "phone":
                found.append((kind, normalise_phone(str(value), region)))
            else:
                text = str(value).strip()
                if not LINE_UID_RE.match(text):
                    raise InvalidInput(f"'{text}' is not a LINE user id", field="line_uid")
                found.append((kind, text))
        except InvalidInput as error:
            log.warning("tracking: dropped trait %s of message %d: %s", trait, index, error.message,
                        extra={"trait": trait, "index": index})
    return found


def _profile(traits: dict, context: dict, index: int) -> dict:
    wanted: dict = {}
    name = traits.get("name")
    if not name:
        first = traits.get("firstName") or traits.get("first_name") or ""
        last = traits.get("lastName") or traits.get("last_name") or ""
        # East Asian order when either part is CJK ("王小明"), Western order otherwise
        cjk = any("\u3000" <= ch <= "\u9fff" for ch in f"{first}{last}")
        name = (f"{last}{first}" if cjk else f"{first} {last}").strip() or None
    if name:
        wanted["name"] = name
    for key in ("gender", "birthday", "timezone"):
        if traits.get(key) not in (None, ""):
            wanted[key] = traits[key]
    address = traits.get("address")
    city = traits.get("city") or (address.get("city") if isinstance(address, dict) else None)
    if city:
        wanted["city"] = city
    locale = traits.get("locale") or context.get("locale")
    if locale:
        wanted["locale"] = locale
    if "timezone" not in wanted and context.get("timezone"):
        wanted["timezone"] = context["timezone"]
    clean = {}
    for key, value in wanted.items():
        try:
            clean.update(attrs.validate_profile({key: value}))
        except InvalidInput as error:
            log.warning("tracking: dropped trait %s of message %d: %s", key, index, error.message, extra={"trait": key, "index": index})
    return {k: v for k, v in clean.items() if v is not None}


def parse_message(raw, *, index: int, type_: str | None, batch_context: dict, sent_at, received_at: datetime, region: str) -> Message:
    """One Segment message, validated. Raises _Problems listing every hard problem in it."""
    if not isinstance(raw, dict):
        raise _Problems([("", "each message must be a JSON object")])
    kind = type_ or raw.get("type")
    if kind not in TYPES:
        raise _Problems([("type", f"'{kind}' is not one of {', '.join(TYPES)}" if kind else f"is missing; use one of {', '.join(TYPES)}")])
    problems: list[tuple[str, str]] = []

    def check(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _Problems as p:
            problems.extend(p.problems)
            return None

    user_id = check(_plain_id, raw.get("userId"), "userId")
    anonymous_id = check(_plain_id, raw.get("anonymousId"), "anonymousId")
    message_id = check(_message_id, raw)
    moment = check(occurred_at, raw, sent_at=sent_at, received_at=received_at)
    context = check(_dict, raw, "context")
    if context is not None and batch_context:
        context = {**batch_context, **context}
    identities: list[tuple[str, str]] = []
    if user_id:
        identities.append(("external_id", user_id))
    if anonymous_id:
        identities.append(("anonymous_id", anonymous_id))
    if kind == "alias":
        previous = check(_plain_id, raw.get("previousId"), "previousId")
        if not user_id:
            problems.append(("userId", "an alias needs the userId the person is known by now"))
        if not previous and "previousId" not in {f for f, _ in problems}:
            problems.append(("previousId", "an alias needs the previousId the person was known by"))
    elif not identities and not any(f in ("userId", "anonymousId") for f, _ in problems):
        problems.append(("userId", "give userId or anonymousId"))

    name = kind
    properties: dict = {}
    traits: dict = {}
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            problems.append(("event", "a track call needs the event name"))
        elif len(event.strip()) > events.MAX_NAME_LENGTH:
            problems.append(("event", f"is longer than {events.MAX_NAME_LENGTH} characters"))
        else:
            name = event.strip()
        properties = check(_dict, raw, "properties") or {}
    elif kind in ("page", "screen"):
        properties = dict(check(_dict, raw, "properties") or {})
        page_name = raw.get("name") or properties.get("name")
        if page_name is not None and not isinstance(page_name, str):
            problems.append(("name", "must be a string"))
        elif page_name:
            name = page_name.strip()[: events.MAX_NAME_LENGTH] or kind
            properties.setdefault("name", page_name)
        if raw.get("category"):
            properties.setdefault("category", raw["category"])
        page = (context or {}).get("page")
        if isinstance(page, dict):  # analytics.js puts url/path/title in context.page as well
            for key in ("url", "path", "title", "referrer", "search"):
                if key in page and key not in properties:
                    properties[key] = page[key]
    elif kind == "identify":
        traits = check(_dict, raw, "traits") or {}
        if not traits and isinstance((context or {}).get("traits"), dict):
            traits = context["traits"]
        properties = traits
    elif kind == "group":
        group_id = check(_plain_id, raw.get("groupId"), "groupId")
        if not group_id and "groupId" not in {f for f, _ in problems}:
            problems.append(("groupId", "a group call needs the groupId"))
        properties = {"groupId": group_id, "traits": check(_dict, raw, "traits") or {}}
    elif kind == "alias":
        properties = {"previousId": raw.get("previousId")}
    if problems:
        raise _Problems(problems)

    message = Message(index=index, type=kind, message_id=message_id, identities=(), occurred_at=moment, name=name,
                      properties=properties, context=context or None, received_at=received_at)
    if kind == "alias":
        message.previous_id = str(raw["previousId"]).strip()
    if kind == "identify":
        identities.extend(_soft_identities(traits, region, index))
        message.profile = _profile(traits, context or {}, index)
        message.traits = {k: v for k, v in traits.items() if k not in _IDENTITY_TRAITS and k not in _PROFILE_TRAITS}
    if kind == "track":
        check(_commerce, message, properties)
        if problems:
            raise _Problems(problems)
    # one value per exclusive kind, strongest kind first (as identities.normalise_all orders them)
    message.identities = tuple(sorted(dict.fromkeys(identities), key=lambda pair: IDENTITY_KINDS.index(pair[0])))
    return message


def parse_request(payload: dict, *, endpoint: str, region: str, received_at: datetime | None = None) -> list[Message]:
    """Every message of a request, validated; TrackingError listing every bad one (by index) otherwise."""
    received_at = received_at or utcnow()
    single = endpoint in TYPES
    if single:
        raw_messages, batch_context, sent_at = [payload], {}, payload.get("sentAt")
    else:
        raw_messages = payload.get("batch")
        if not isinstance(raw_messages, list):
            raise TrackingError("a batch request needs 'batch': a list of messages", field="batch")
        batch_context = payload.get("context") if isinstance(payload.get("context"), dict) else {}
        sent_at = payload.get("sentAt")
    messages: list[Message] = []
    problems: list[dict] = []
    for index, raw in enumerate(raw_messages):
        prefix = "" if single else f"batch[{index}]"
        if not single:
            size = len(orjson.dumps(raw))
            if size > MAX_EVENT_BYTES:
                problems.append({"index": index, "field": prefix, "code": "too_large",
                                 "message": f"{prefix}: the message is {size // 1024} KB, larger than Segment's 32 KB limit per event"})
                continue
        try:
            messages.append(parse_message(raw, index=index, type_=endpoint if single else None, batch_context=batch_context,
                                          sent_at=sent_at, received_at=received_at, region=region))
        except _Problems as error:
            for field_name, text in error.problems:
                where = ".".join(p for p in (prefix, field_name) if p) or "body"
                problems.append({"index": index, "field": where, "message": f"{where}: {text}"})
    if problems:
        too_large = [p for p in problems if p.get("code") == "too_large"]
        bad = sorted({p["index"] for p in problems})
        if single:
            summary = problems[0]["message"] if len(problems) == 1 else "; ".join(p["message"] for p in problems)
        else:
            summary = (f"{len(bad)} of {len(raw_messages)} messages are invalid (indexes {', '.join(map(str, bad[:50]))}); "
                       f"nothing was stored. First: {problems[0]['message']}")
        error_class = TrackingTooLarge if too_large and len(too_large) == len(problems) else TrackingError
        raise error_class(summary, field=problems[0]["field"], details=problems)
    return messages
