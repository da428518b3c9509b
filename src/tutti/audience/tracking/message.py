"""One valid Segment message as the tracking API keeps it until it is stored (`Message`), and the readers of
the fields every message has (ids, messageId, times, objects), which report each hard problem (`_Problems`)
so that a request is refused with all of them at once. Pure: no database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from tutti.audience import commerce
from tutti.audience.identities import MAX_ID_LENGTH

MAX_MESSAGE_ID = 128
SOURCE = "tracking"


@dataclass
class Message:
    """One valid message, ready to store."""

    index: int
    type: str
    message_id: str
    identities: tuple[tuple[str, str], ...]
    occurred_at: datetime
    name: str
    properties: dict
    context: dict | None
    profile: dict = field(default_factory=dict)
    traits: dict = field(default_factory=dict)  # custom attributes, not yet type-checked
    previous_id: str | None = None  # alias
    order: commerce.NewOrder | None = None
    status_change: tuple[str, str, list[str] | None, float | None] | None = None  # order id, status, skus, amount
    products: list[dict] = field(default_factory=list)
    contact_id: int | None = None
    received_at: datetime | None = None  # when the API accepted the request (None: now)


class _Problems(Exception):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems  # (field, message)


def _parse_time(value, field_name: str) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Problems([(field_name, f"'{value}' is not an ISO 8601 time")]) from None
    else:
        raise _Problems([(field_name, "must be an ISO 8601 time string")])
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def occurred_at(message: dict, *, sent_at, received_at: datetime) -> datetime:
    """Segment's rule: `timestamp` when given; else `originalTimestamp` corrected for the device's clock
    skew (receivedAt - (sentAt - originalTimestamp)); else when it was received."""
    if message.get("timestamp") is not None:
        return _parse_time(message["timestamp"], "timestamp")
    original = message.get("originalTimestamp")
    if original is not None:
        original_at = _parse_time(original, "originalTimestamp")
        sent = message.get("sentAt", sent_at)
        if sent is not None:
            return received_at - (_parse_time(sent, "sentAt") - original_at)
        return original_at
    return received_at


def _dict(message: dict, key: str) -> dict:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Problems([(key, "must be a JSON object")])
    return value


def _plain_id(value, key: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list, bool)):
        raise _Problems([(key, "must be a string or number")])
    text = str(value).strip()
    if not text:
        return None
    if len(text) > MAX_ID_LENGTH:
        raise _Problems([(key, f"is longer than {MAX_ID_LENGTH} characters")])
    return text


def _message_id(message: dict) -> str:
    value = message.get("messageId")
    if value is None or value == "":
        # no id from the client: derive one from the content, so resending the same message is a no-op
        return "h-" + hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]
    text = str(value)
    if len(text) > MAX_MESSAGE_ID:
        raise _Problems([("messageId", f"is longer than {MAX_MESSAGE_ID} characters")])
    return text
