"""The Segment-compatible tracking API: turning Segment messages into contacts, events, orders and products.

Wire format and limits follow Segment's HTTP Tracking API (https://segment.com/docs/connections/sources/
catalog/libraries/server/http-api/), so Segment's own libraries work against Tutti unchanged:

- `identify`, `track`, `page`, `screen`, `group`, `alias` take one message; `batch` (and `import`, its
  alias) take `{"batch": [...], "context": {...}, "sentAt": ...}`.
- The write key is the HTTP Basic user name (no password), or `writeKey` in the JSON body.
- A message is at most 32 KB and a request at most 500 KB; a gzip body (Content-Encoding: gzip) is
  unpacked first and the limits apply to the JSON.

What a batch with bad messages does: **the whole request is refused** with 400 listing every bad message
by index and field, and nothing is stored. The client fixes the messages and sends the batch again; since
messages are de-duplicated by `messageId` (unique per workspace), resending never stores anything twice.
Soft problems inside a valid message never refuse it: a trait that is not a valid e-mail, phone or LINE id,
or a custom trait whose value does not fit its declared type, is dropped and logged, and the event still
lands on the contact found by the other ids.

A 200 `{"success": true}` means the request is durably stored (as Segment and RudderStack do): the
request path validates it fully (every 400 above), writes it as ONE row of the inbox (`inbound_batch`:
the request's JSON, its workspace, endpoint, message count and received_at), commits, and only then wakes
the worker with a queue message. The worker (`process_inbound`) takes the oldest pending batches of a
workspace, several at once (up to PROCESS_MAX_MESSAGES messages), parses them again with their original
received_at, stores all their messages with one `store` and deletes the batch rows in that same
transaction: a crash at any point loses nothing and stores nothing twice (and messageId de-duplication
makes a replay harmless anyway). Batches are stored oldest first, one worker per workspace at a time
(an advisory lock on PostgreSQL, then FOR UPDATE SKIP LOCKED; SQLite's write transaction is exclusive
anyway), so workers share the load across workspaces and a workspace's messages keep their order. The
one-minute tick stores what a lost queue message or a dead worker left. A batch that keeps failing for a
reason that is not the database's is set aside after MAX_ATTEMPTS runs (`failed_at`, `error`; logged and
counted in /metrics) so it never blocks the ones after it. The backlog is the `tutti_inbound_pending`
gauge. With an immediate queue (tests) the worker runs inline after the commit, so the events are stored
before the 200.

Storing is set-based, a fixed handful of statements whatever the number of messages: one query for
every identity; one insert of new people and one of new identities (`contacts.resolve` only for the rare
sets that join two contacts); one INSERT … ON CONFLICT DO NOTHING RETURNING for the events (COPY into a
temporary table first on PostgreSQL when there are many), whose unique (workspace_id, messageId) key is
the de-duplication, so orders, profile changes and last-seen times are applied only for messages that are
new; then a few statements for profiles, orders, products, and last-seen times. PostgreSQL deadlocks
with other writers are retried whole.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import bindparam, delete, func, insert, select, true, update
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import commerce, contacts, events
from tutti.audience.identities import LINE_UID_RE, MAX_ID_LENGTH, normalise_email, normalise_phone
from tutti.audience.models import IDENTITY_KINDS, Contact, Identity, InboundBatch
from tutti.platform import metrics
from tutti.platform.audit import Actor
from tutti.platform.db import Database, get_database, utcnow
from tutti.platform.errors import InvalidInput, NotFound, TuttiError
from tutti.platform.models import Workspace

log = logging.getLogger("tutti.tracking")

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_ID = 128
TYPES = ("identify", "track", "page", "screen", "group", "alias")
SOURCE = "tracking"

# traits that become identities or built-in profile fields rather than custom attributes
_IDENTITY_TRAITS = {"email": "email", "phone": "phone", "line_user_id": "line_uid", "lineUserId": "line_uid"}
_PROFILE_TRAITS = {"name", "firstName", "lastName", "first_name", "last_name", "gender", "birthday", "address", "city",
                   "timezone", "locale", "id", "userId", "anonymousId"}
ORDER_COMPLETED = "Order Completed"
ORDER_STATUS_EVENTS = {"Order Refunded": "refunded", "Order Cancelled": "cancelled"}
PRODUCT_EVENTS = {"Product Viewed", "Product Added", "Product Clicked", "Product Removed", "Checkout Started", "Cart Viewed"}
_PRODUCT_KEYS = {"product_id", "sku", "name", "category", "brand", "price", "currency", "url", "image_url", "quantity"}


class TrackingError(TuttiError):
    """A request the tracking API refuses: 400, naming the field (and the message's index in a batch).

    Segment's libraries read `code` and `message` at the top level of an error answer, so they are
    repeated there next to Tutti's usual `error` object."""

    status = 400
    code = "invalid"

    def as_dict(self) -> dict:
        body = super().as_dict()
        return {**body, "code": self.code, "message": self.message}


class TrackingTooLarge(TrackingError):
    code = "too_large"


class TrackingUnauthorized(TrackingError):
    status = 401
    code = "unauthorized"


# --- reading a request -------------------------------------------------------------------------------


def unpack_body(body: bytes, *, content_encoding: str | None, single: bool) -> tuple[bytes, dict]:
    """The JSON bytes of a request (unpacked from gzip) and the object they hold, within Segment's size limits."""
    limit = MAX_EVENT_BYTES if single else MAX_BATCH_BYTES
    what = "a single event (32 KB)" if single else "a batch request (500 KB)"
    if (content_encoding or "").strip().lower() == "gzip":
        try:
            unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = unpacker.decompress(body, limit + 1)
            if len(body) > limit:
                raise TrackingTooLarge(f"the request is larger than Segment's limit for {what}", field="body")
        except zlib.error:
            raise TrackingError("the body is not valid gzip (Content-Encoding: gzip was sent)", field="body") from None
    if len(body) > limit:
        raise TrackingTooLarge(f"the request is {len(body) // 1024} KB, larger than Segment's limit for {what}", field="body")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise TrackingError(f"the body is not valid JSON: {error}", field="body") from None
    if not isinstance(payload, dict):
        raise TrackingError("the body must be a JSON object", field="body")
    return body, payload


def decode_body(body: bytes, *, content_encoding: str | None, single: bool) -> dict:
    """The JSON object of a request, within Segment's size limits."""
    return unpack_body(body, content_encoding=content_encoding, single=single)[1]


def write_key_of(authorization: str | None, payload: dict) -> str:
    """Segment's convention: the write key is the HTTP Basic user name; `writeKey` in the body also works."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            key = base64.b64decode(encoded.strip(), validate=True).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            raise TrackingUnauthorized("the Authorization header is not valid HTTP Basic", field="authorization") from None
        if key:
            return key
    key = payload.get("writeKey")
    if isinstance(key, str) and key:
        return key
    raise TrackingUnauthorized("send the workspace's write key as the HTTP Basic user name (or writeKey in the body)", field="authorization")


# --- validating messages (pure: no database) ---------------------------------------------------------


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


def _segment_product(raw: dict, currency: str | None) -> dict | None:
    """A Segment product object as a catalogue row (keyed by product_id, else sku), or None without an id."""
    key = raw.get("product_id") or raw.get("sku") or raw.get("id")
    if key is None or key == "" or isinstance(key, (dict, list)):
        return None
    extra = {k: v for k, v in raw.items() if k not in _PRODUCT_KEYS and not isinstance(v, (dict, list))}
    if raw.get("sku") and raw.get("product_id") and str(raw["sku"]) != str(raw["product_id"]):
        extra["sku"] = str(raw["sku"])
    return {"sku": str(key), "name": raw.get("name"), "category": raw.get("category"), "brand": raw.get("brand"),
            "price": raw.get("price"), "currency": raw.get("currency") or currency, "url": raw.get("url"),
            "image_url": raw.get("image_url"), "properties": extra}


def _amount(value, field_name: str) -> float | None:
    try:
        return commerce._money(value, field_name)
    except InvalidInput as error:
        raise _Problems([(f"properties.{field_name}", error.message)]) from None


def _commerce(m: Message, props: dict) -> None:
    """Segment's e-commerce spec v2: orders and the product catalogue."""
    name = m.name
    currency = props.get("currency") if isinstance(props.get("currency"), str) else None
    raw_products = props.get("products")
    if raw_products is not None and not isinstance(raw_products, list):
        raise _Problems([("properties.products", "must be a list")])
    if name == ORDER_COMPLETED:
        order_id = _plain_id(props.get("order_id"), "properties.order_id")
        if order_id is None:
            log.warning("tracking: message %d is an Order Completed without order_id; stored as an event only", m.index)
            return
        lines, products = [], []
        for i, raw in enumerate(raw_products or []):
            if not isinstance(raw, dict):
                raise _Problems([(f"properties.products[{i}]", "must be a JSON object")])
            product = _segment_product(raw, currency)
            price = _amount(raw.get("price"), f"products[{i}].price")
            quantity = raw.get("quantity", 1)
            if isinstance(quantity, bool) or not isinstance(quantity, (int, float, str)):
                raise _Problems([(f"properties.products[{i}].quantity", "must be a whole number")])
            try:
                quantity = int(float(quantity))
            except ValueError:
                raise _Problems([(f"properties.products[{i}].quantity", f"'{quantity}' is not a whole number")]) from None
            if product:
                products.append(product)
            lines.append(commerce.NewOrderLine(sku=product["sku"] if product else None, name=raw.get("name"),
                                               category=raw.get("category"), quantity=quantity, unit_price=price or 0.0))
        subtotal = _amount(props.get("subtotal"), "subtotal")
        discount = _amount(props.get("discount"), "discount") or 0.0
        shipping = _amount(props.get("shipping"), "shipping") or 0.0
        tax = _amount(props.get("tax"), "tax") or 0.0
        total = _amount(props.get("total"), "total")
        if total is None:
            total = _amount(props.get("revenue"), "revenue")
        if total is None:
            base = subtotal if subtotal is not None else sum(line.quantity * line.unit_price for line in lines)
            total = round(base - discount + shipping + tax, 2)
        try:
            code = commerce._currency(currency, "TWD")
        except InvalidInput as error:
            raise _Problems([("properties.currency", error.message)]) from None
        known = {"order_id", "total", "revenue", "subtotal", "discount", "shipping", "tax", "currency", "products"}
        m.order = commerce.NewOrder(
            contact_id=0, external_id=order_id, placed_at=m.occurred_at, total=total, subtotal=subtotal, discount=discount,
            shipping=shipping, tax=tax, currency=code, channel=str(props.get("channel") or "web")[:32],
            properties={k: v for k, v in props.items() if k not in known}, lines=lines)
        m.products = products
    elif name in ORDER_STATUS_EVENTS:
        order_id = _plain_id(props.get("order_id"), "properties.order_id")
        if order_id is None:
            raise _Problems([("properties.order_id", f"{name} needs the order_id of the order")])
        status = ORDER_STATUS_EVENTS[name]
        skus = None
        if status == "refunded" and raw_products:
            skus = [str(p.get("product_id") or p.get("sku")) for p in raw_products if isinstance(p, dict) and (p.get("product_id") or p.get("sku"))]
            status = "partially_refunded" if skus else status
        amount = _amount(props.get("total"), "total") if status != "cancelled" else None
        m.status_change = (order_id, status, skus, amount)
    elif name in PRODUCT_EVENTS:
        candidates = [p for p in raw_products or [] if isinstance(p, dict)] or [props]
        m.products = [p for p in (_segment_product(raw, currency) for raw in candidates) if p]
        clean = []
        for product in m.products:  # a bad price in a view event is not worth refusing the event for
            try:
                commerce.product_row(0, product, m.occurred_at)
                clean.append(product)
            except InvalidInput as error:
                log.warning("tracking: catalogue not updated from message %d: %s", m.index, error.message)
        m.products = clean


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


# --- storing ---------------------------------------------------------------------------------------


def _lookup(db: Session, workspace_id: int, pairs) -> dict[tuple[str, str], int]:
    """The contact holding each (kind, value), in one query, written for the driver directly: it runs for
    every processed transaction with thousands of values. SQLite: one index range per kind (UNION ALL).
    PostgreSQL: a join with the unnested pairs, a sound plan whether or not the table has statistics."""
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, value in pairs:
        by_kind[kind].add(value)
    if not by_kind:
        return {}
    if db.get_bind().dialect.name == "postgresql":
        # a join, not value = ANY(array): over a seq scan (a young table's plan) ANY costs rows × values
        kinds, values = [], []
        for kind, group in by_kind.items():
            kinds.extend([kind] * len(group))
            values.extend(group)
        rows = db.connection().exec_driver_sql(
            "SELECT i.kind, i.value, i.contact_id FROM unnest(%s::text[], %s::text[]) AS v(kind, value) "
            "JOIN identity i ON i.workspace_id = %s AND i.kind = v.kind AND i.value = v.value", (kinds, values, workspace_id))
        return {(kind, value): contact_id for kind, value, contact_id in rows}
    parts, params = [], []
    for kind, values in by_kind.items():
        parts.append(f"SELECT kind, value, contact_id FROM identity WHERE workspace_id = ? AND kind = ? AND value IN ({', '.join('?' * len(values))})")
        params.extend((workspace_id, kind, *values))
    rows = db.connection().exec_driver_sql(" UNION ALL ".join(parts), tuple(params))
    return {(kind, value): contact_id for kind, value, contact_id in rows}


def _components(sets: list[tuple]) -> list[list[tuple]]:
    """Groups of identity sets that share an identity (they are the same person)."""
    parent = list(range(len(sets)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    holder: dict = {}
    for i, identity_set in enumerate(sets):
        for pair in identity_set:
            if pair in holder:
                parent[find(i)] = find(holder[pair])
            else:
                holder[pair] = i
    groups: dict[int, list[tuple]] = defaultdict(list)
    for i, identity_set in enumerate(sets):
        groups[find(i)].append(identity_set)
    return list(groups.values())


def _consistent(pairs) -> bool:
    seen: dict[str, str] = {}
    for kind, value in pairs:
        if kind in contacts.EXCLUSIVE_KINDS and seen.setdefault(kind, value) != value:
            return False
    return True


def resolve_sets(db: Session, *, workspace_id: int, sets: list[tuple]) -> tuple[dict[tuple, int], dict[int, int]]:
    """The contact of every identity set, with as few statements as possible; also {merged: winner}.

    Sets whose identities all belong to one contact need nothing more. Sets sharing identities are
    grouped (they are one person). A group nobody holds yet becomes a new contact, and a group held by
    exactly one contact gets its new identities attached; all of these in one insert of contacts and one
    of identities. Only groups that would join two contacts, or break the one-external-id/one-LINE-id
    rule, go through `contacts.resolve`, one set at a time, in message order."""
    distinct = list(dict.fromkeys(s for s in sets if s))
    owner = _lookup(db, workspace_id, {pair for s in distinct for pair in s})
    found: dict[tuple, int] = {}
    pending: list[tuple] = []
    for identity_set in distinct:
        holders = {owner.get(pair) for pair in identity_set}
        if None not in holders and len(holders) == 1:
            found[identity_set] = holders.pop()
        else:
            pending.append(identity_set)
    sequential: list[tuple] = []
    plans: list[tuple[int | None, list[tuple], list[tuple]]] = []  # (holder or None for a new person, group, new pairs)
    for group in _components(pending):
        union = list(dict.fromkeys(pair for s in group for pair in s))
        holders = {owner[pair] for pair in union if pair in owner}
        if len(holders) > 1 or not _consistent(union):
            sequential.extend(group)
        else:
            plans.append((holders.pop() if holders else None, group, [pair for pair in union if pair not in owner]))
    # attaching an external_id or LINE id to someone who has a different one is a different person
    exclusive_new = {holder for holder, _, new in plans if holder is not None and any(k in contacts.EXCLUSIVE_KINDS for k, _ in new)}
    if exclusive_new:
        held: dict[int, list] = defaultdict(list)
        for contact_id, kind, value in db.execute(select(Identity.contact_id, Identity.kind, Identity.value).where(
                Identity.contact_id.in_(exclusive_new), Identity.kind.in_(contacts.EXCLUSIVE_KINDS))):
            held[contact_id].append((kind, value))
        kept = []
        for plan in plans:
            holder, group, new = plan
            if holder in held and not _consistent(held[holder] + new):
                sequential.extend(group)
            else:
                kept.append(plan)
        plans = kept
    failed = _write_plans(db, workspace_id, plans, found)
    sequential.extend(s for group in failed for s in group)
    merged: dict[int, int] = {}
    order = {s: i for i, s in enumerate(distinct)}
    for identity_set in sorted(sequential, key=order.__getitem__):
        resolution = contacts.resolve(db, workspace_id=workspace_id, identities=list(identity_set), source=SOURCE,
                                      actor=Actor.system(SOURCE))
        found[identity_set] = resolution.contact_id
        for loser in resolution.merged:
            merged[loser] = resolution.contact_id
    return found, merged


def _write_plans(db: Session, workspace_id: int, plans: list, found: dict) -> list[list[tuple]]:
    """Create the new people and attach the new identities; returns the groups a concurrent request got
    to first (their half-done work is undone here) for `contacts.resolve` to settle."""
    if not plans:
        return []
    now = utcnow()
    table = Contact.__table__
    fresh = [i for i, (holder, _, _) in enumerate(plans) if holder is None]
    contact_of = [holder for holder, _, _ in plans]
    if fresh:
        rows = [{"workspace_id": workspace_id, "attributes": {}, "created_at": now, "updated_at": now} for _ in fresh]
        ids = db.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
        for i, contact_id in zip(fresh, ids):
            contact_of[i] = contact_id
    identity_rows = sorted(
        ({"workspace_id": workspace_id, "contact_id": contact_of[i], "kind": kind, "value": value, "source": SOURCE, "created_at": now}
         for i, (_, _, new) in enumerate(plans) for kind, value in new),
        key=lambda row: (row["kind"], row["value"]),  # one lock order for every request: no deadlocks between them
    )
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(Identity.__table__).on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value"])
    columns = Identity.__table__.c
    inserted = {(k, v) for k, v in db.execute(statement.returning(columns.kind, columns.value), identity_rows)} if identity_rows else set()
    lost: list[int] = []
    if len(inserted) != len(identity_rows):  # another request attached some of them first
        lost = [i for i, (_, _, new) in enumerate(plans) if any(pair not in inserted for pair in new)]
        orphans = [contact_of[i] for i in lost if plans[i][0] is None]
        if orphans:
            db.execute(delete(Identity).where(Identity.contact_id.in_(orphans)).execution_options(synchronize_session=False))
            db.execute(delete(Contact).where(Contact.id.in_(orphans)).execution_options(synchronize_session=False))
    lost_set = set(lost)
    for i, (_, group, _) in enumerate(plans):
        if i not in lost_set:
            for identity_set in group:
                found[identity_set] = contact_of[i]
    return [plans[i][1] for i in lost]


def _final(contact_id: int, merged: dict[int, int]) -> int:
    while contact_id in merged:
        contact_id = merged[contact_id]
    return contact_id


def _apply_profiles(db: Session, workspace_id: int, messages: list[Message]) -> None:
    """Profile fields and custom attributes from identify calls, a few statements per batch."""
    profiles: dict[int, dict] = defaultdict(dict)
    custom: dict[int, dict] = defaultdict(dict)
    for m in messages:
        if m.type == "identify":
            profiles[m.contact_id].update(m.profile)
            if m.traits:
                custom[m.contact_id].update(m.traits)
    if not profiles:
        return
    clean_custom: dict[int, dict] = {}
    if custom:
        known = attrs.definitions(db, workspace_id=workspace_id)
        for contact_id, values in custom.items():
            clean_custom[contact_id] = _typed_traits(db, workspace_id, known, values)
        current = dict(db.execute(select(Contact.id, Contact.attributes).where(Contact.id.in_(list(clean_custom)))).all())
        for contact_id, values in clean_custom.items():
            merged = dict(current.get(contact_id) or {})
            for key, value in values.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            clean_custom[contact_id] = merged
    now = utcnow()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for contact_id, profile in profiles.items():
        row = {"_id": contact_id, **profile, "updated_at": now}
        if contact_id in clean_custom:
            row["attributes"] = clean_custom[contact_id]
        groups[tuple(sorted(k for k in row if k != "_id"))].append(row)
    table = Contact.__table__
    for columns, rows in groups.items():
        statement = update(table).where(table.c.id == bindparam("_id")).values(  # ids from this workspace (see _touch)
            {column: bindparam(column) for column in columns})
        db.connection().execute(statement, rows)


def _typed_traits(db: Session, workspace_id: int, known: dict, values: dict) -> dict:
    clean = {}
    for key, value in values.items():
        try:
            if key not in known:
                if value is None:
                    continue
                attrs.check_key(key)
                try:
                    with db.begin_nested():
                        known[key] = attrs.declare(db, workspace_id=workspace_id, key=key, type_=attrs.infer_type(value))
                except IntegrityError:  # declared by a concurrent request a moment ago
                    known.update(attrs.definitions(db, workspace_id=workspace_id))
            clean[key] = attrs.coerce(value, known[key].type, key=key)
        except (InvalidInput, TuttiError) as error:
            log.warning("tracking: dropped trait %s: %s", key, error.message, extra={"trait": key})
    return clean


def _apply_commerce(db: Session, workspace_id: int, messages: list[Message]) -> None:
    products: dict[str, dict] = {}
    for m in messages:
        for product in m.products:
            products[product["sku"]] = {**products.get(product["sku"], {}), **{k: v for k, v in product.items() if v not in (None, {})}}
    if products:
        commerce.upsert_products(db, workspace_id=workspace_id, products=list(products.values()))
    orders = []
    for m in messages:
        if m.order is not None:
            m.order.contact_id = m.contact_id
            orders.append(m.order)
    if orders:
        commerce.record_orders(db, workspace_id=workspace_id, orders=orders)
    for m in messages:
        if m.status_change is not None:
            order_id, status, skus, amount = m.status_change
            try:
                commerce.set_order_status(db, workspace_id=workspace_id, external_id=order_id, status=status,
                                          refunded_total=amount, line_skus=skus)
            except NotFound:
                log.warning("tracking: %s for unknown order %s (message %d); stored as an event only", m.name, order_id, m.index)


def store(db: Session, *, workspace_id: int, messages: list[Message]) -> dict[str, int]:
    """Store valid messages; those whose messageId was stored before are skipped, with their side effects
    (orders, profile changes). Returns the new events by kind."""
    unique: dict[str, Message] = {}
    for m in messages:
        unique.setdefault(m.message_id, m)  # the same message twice in one request: the first counts
    fresh = list(unique.values())
    if not fresh:
        return {}
    found, merged = resolve_sets(db, workspace_id=workspace_id, sets=[m.identities for m in fresh])
    for m in fresh:
        m.contact_id = found[m.identities]
    for m in fresh:
        if m.type == "alias":  # idempotent: aliasing two people already joined changes nothing
            resolution = _alias(db, workspace_id, m)
            m.contact_id = resolution.contact_id
            for loser in resolution.merged:
                merged[loser] = resolution.contact_id
    if merged:
        for m in fresh:
            m.contact_id = _final(m.contact_id, merged)
    inserted = _insert_events(db, workspace_id, fresh)
    new = [m for m in fresh if m.message_id in inserted]
    _apply_profiles(db, workspace_id, new)
    _apply_commerce(db, workspace_id, new)
    if new:
        _touch(db, workspace_id, new)
    counts: dict[str, int] = defaultdict(int)
    for m in new:
        counts[m.type] += 1
    return dict(counts)


_EVENT_COLUMNS = ("workspace_id", "contact_id", "kind", "name", "occurred_at", "received_at", "properties", "context", "source",
                  "message_id")
_ROWS_PER_STATEMENT = 500  # 5,000 parameters: within SQLite's and PostgreSQL's limits


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's UTCDateTime stores on SQLite (naive UTC, always with microseconds)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond:06d}"


def _insert_events(db: Session, workspace_id: int, messages: list[Message]) -> set[str]:
    """Insert the events, skipping message ids stored before; returns the message ids that are new.

    The unique (workspace_id, message_id) key is the de-duplication: it holds against a concurrent retry
    of the same batch too, and RETURNING tells which messages are new without querying the event table
    first. The rows are those `events.record` writes, but built here as driver parameters (JSON by
    orjson, times pre-formatted) in multi-row statements: the hot path of ingestion, where SQLAlchemy's
    per-value type processing cost more than the database's own work."""
    sqlite_engine = db.get_bind().dialect.name == "sqlite"
    now = utcnow()
    dumps = orjson.dumps
    if sqlite_engine:
        received: dict = {None: _sqlite_time(now)}  # a few distinct times (one per request): format each once
        for m in messages:
            if m.received_at not in received:
                received[m.received_at] = _sqlite_time(m.received_at)
        rows = [(workspace_id, m.contact_id, m.type, m.name, _sqlite_time(m.occurred_at), received[m.received_at],
                 dumps(m.properties).decode(), None if m.context is None else dumps(m.context).decode(), SOURCE, m.message_id)
                for m in messages]
        one = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    else:
        rows = [(workspace_id, m.contact_id, m.type, m.name, m.occurred_at, m.received_at or now, dumps(m.properties).decode(),
                 None if m.context is None else dumps(m.context).decode(), SOURCE, m.message_id) for m in messages]
        one = "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"
    inserted: set[str] = set()
    connection = db.connection()
    if not sqlite_engine and len(rows) >= _COPY_FROM_ROWS:
        return _copy_events(connection, rows)
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        sql = (f"INSERT INTO event ({', '.join(_EVENT_COLUMNS)}) VALUES {', '.join([one] * len(chunk))} "
               "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id")
        inserted.update(row[0] for row in connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row)))
    return inserted


_COPY_FROM_ROWS = 100
_EVENT_STAGING = ("CREATE TEMP TABLE IF NOT EXISTS tutti_event_in (workspace_id bigint, contact_id bigint, kind text, name text, "
                  "occurred_at timestamptz, received_at timestamptz, properties jsonb, context jsonb, source text, message_id text)")


def _copy_events(connection, rows: list[tuple]) -> set[str]:
    """PostgreSQL, many rows (the worker stores thousands at once): COPY into a session's temporary table,
    then one INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING; about twice the rate of multi-row INSERTs."""
    raw = connection.connection.driver_connection
    columns = ", ".join(_EVENT_COLUMNS)
    with raw.cursor() as cursor:
        cursor.execute(_EVENT_STAGING)
        with cursor.copy(f"COPY tutti_event_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO event ({columns}) SELECT {columns} FROM tutti_event_in "
                       "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id")
        inserted = {row[0] for row in cursor.fetchall()}
        cursor.execute("TRUNCATE tutti_event_in")  # not DELETE: a temporary table is never vacuumed
    return inserted


def _alias(db: Session, workspace_id: int, m: Message) -> contacts.Resolution:
    """Segment's alias: previousId (an earlier userId or an anonymousId) is the person now known as userId."""
    previous = m.previous_id
    owner = _lookup(db, workspace_id, [("external_id", previous), ("anonymous_id", previous)])
    kind = "external_id" if ("external_id", previous) in owner else "anonymous_id"
    return contacts.alias(db, workspace_id=workspace_id, previous=[(kind, previous)], current=list(m.identities),
                          actor=Actor.system(SOURCE))


def _touch(db: Session, workspace_id: int, messages: list[Message]) -> None:
    """Advance each contact's last_seen_at to its latest event here (never backwards): one UPDATE … FROM,
    as `contacts.touch` takes one time for all and events in a batch span minutes or, in imports, years."""
    latest: dict[int, datetime] = {}
    for m in messages:
        if m.contact_id not in latest or m.occurred_at > latest[m.contact_id]:
            latest[m.contact_id] = m.occurred_at
    # by primary key alone: the ids come from this workspace's identities, and a workspace_id test
    # tempts PostgreSQL into scanning the workspace's index while a new table has no statistics
    if db.get_bind().dialect.name == "postgresql":  # one statement for thousands of contacts
        ids, times = zip(*sorted(latest.items()))
        db.connection().exec_driver_sql(
            "UPDATE contact SET last_seen_at = v.at FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) "
            "WHERE contact.id = v.id AND (contact.last_seen_at IS NULL OR contact.last_seen_at < v.at)", (list(ids), list(times)))
        return
    # SQLite: UPDATE … FROM a VALUES list, a statement per 2,000 contacts (times as UTCDateTime stores them,
    # so the text comparison is the time comparison)
    pairs = sorted(latest.items())
    connection = db.connection()
    for start in range(0, len(pairs), 2000):
        chunk = pairs[start:start + 2000]
        connection.exec_driver_sql(
            "UPDATE contact SET last_seen_at = v.column2 FROM (VALUES " + ", ".join(["(?, ?)"] * len(chunk)) + ") AS v "
            "WHERE contact.id = v.column1 AND (contact.last_seen_at IS NULL OR contact.last_seen_at < v.column2)",
            tuple(value for contact_id, at in chunk for value in (contact_id, _sqlite_time(at))))


# --- the whole request -----------------------------------------------------------------------------

_RETRYABLE = ("40P01", "40001")  # deadlock detected, serialization failure


def _retryable(error: Exception) -> bool:
    if isinstance(error, IntegrityError):  # a concurrent request created the same identity first
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in _RETRYABLE or "database is locked" in str(error)


_WRITE_KEY_SECONDS = 5.0
_write_keys: dict[tuple[str, str], tuple[float, int, str]] = {}


def _workspace_of(database: Database, write_key: str) -> tuple[int, str]:
    """The workspace id and phone region of a write key. Remembered for a few seconds: a busy shop sends
    many requests a second, and a rotated key stops working within those seconds."""
    cache_key = (database.url, write_key)
    hit = _write_keys.get(cache_key)
    now = time.monotonic()
    if hit and hit[0] > now:
        return hit[1], hit[2]
    with database.read_session() as db:
        row = db.execute(select(Workspace.id, Workspace.default_region).where(Workspace.write_key == write_key)).first()
    if row is None:
        raise TrackingUnauthorized("this write key is not valid", field="authorization")
    if len(_write_keys) > 10_000:
        _write_keys.clear()
    _write_keys[cache_key] = (now + _WRITE_KEY_SECONDS, row[0], row[1])
    return row[0], row[1]


# --- the inbox: a request is accepted durably, then stored by the worker -----------------------------

MAX_ATTEMPTS = 3  # failed processing attempts before a batch is set aside (kept, marked failed_at)
PROCESS_MAX_MESSAGES = 5_000  # messages stored per processing transaction (several batches at once)
BUSY_DEFER_SECONDS = 30.0  # the longest an embedded worker lets batches wait while its API is busy
_QUIET_SECONDS = 0.2  # no request accepted for this long: the API is not busy
_last_accept = 0.0  # time.monotonic() of this process's last accepted request
_ERROR_CHARS = 2_000


def validate(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
             database: Database | None = None, received_at: datetime | None = None) -> tuple[int, bytes, list[Message]]:
    """Everything the API checks before answering: the workspace, the JSON bytes and the valid messages.
    Raises TrackingError (400/401) naming what is wrong; nothing is stored."""
    database = database or get_database()
    if endpoint not in TYPES and endpoint not in ("batch", "import"):
        raise TrackingError(f"unknown endpoint '/v1/{endpoint}'", field="type")
    raw, payload = unpack_body(body, content_encoding=content_encoding, single=endpoint in TYPES)
    write_key = write_key_of(authorization, payload)
    workspace_id, region = _workspace_of(database, write_key)
    messages = parse_request(payload, endpoint=endpoint, region=region, received_at=received_at)
    return workspace_id, raw, messages


def accept(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
           database: Database | None = None) -> tuple[int, int]:
    """Validate a request fully, then store it durably as one row of the inbox; returns (batch id, messages).

    The caller answers 200 once this returns (the row is committed) and wakes the worker; the worker
    stores the messages (`process_inbound`). A refused request stores nothing.

    The parsed messages are not kept for the worker, even one in this process: parsing again costs less
    than what holding thousands of Message objects did to the API (the garbage collector walking them
    during a burst took the SQLite API from 25k to 14k events/s in bench/ingest.py)."""
    database = database or get_database()
    received_at = utcnow()
    workspace_id, raw, messages = validate(endpoint=endpoint, body=body, authorization=authorization,
                                           content_encoding=content_encoding, database=database, received_at=received_at)
    if not messages:  # an empty batch: valid, nothing to keep
        return 0, 0
    with database.session() as db:
        batch_id = db.execute(insert(InboundBatch.__table__).returning(InboundBatch.__table__.c.id), {
            "workspace_id": workspace_id, "received_at": received_at, "endpoint": endpoint,
            "message_count": len(messages), "payload": raw, "attempts": 0}).scalar_one()
    global _last_accept
    _last_accept = time.monotonic()
    metrics.EVENTS_ACCEPTED.inc(len(messages))
    return batch_id, len(messages)


def ingest(*, endpoint: str, body: bytes, authorization: str | None, content_encoding: str | None = None,
           database: Database | None = None) -> int:
    """The tracking API's request path: accept into the inbox (committed), then wake the worker; returns
    the number of messages accepted. The queue message is only a wake-up call: a lost one delays the batch
    until the next tick, and a failing queue never turns an accepted request into an error."""
    batch_id, accepted = accept(endpoint=endpoint, body=body, authorization=authorization, content_encoding=content_encoding,
                                database=database)
    if batch_id:
        from tutti.audience import jobs  # the jobs module imports this one

        try:
            jobs.process_inbound_task()  # after the commit: an inline run (tests) must not wait on our own lock
        except Exception:
            log.exception("tracking: could not wake the worker; batch %d waits for the next tick", batch_id)
    return accepted


@dataclass
class _Claimed:
    id: int
    workspace_id: int
    received_at: datetime
    endpoint: str
    message_count: int
    messages: list[Message] = field(default_factory=list)


class _BatchFailed(Exception):
    def __init__(self, batch_id: int, error: BaseException):
        super().__init__(f"batch {batch_id}: {error}")
        self.batch_id = batch_id
        self.error = error


class _GroupFailed(Exception):
    """Storing several batches together failed (rolled back), not for the database's sake."""

    def __init__(self, batch_ids: list[int], error: BaseException):
        super().__init__(f"batches {batch_ids}: {error}")
        self.batch_ids = batch_ids
        self.error = error


_average_messages = 100.0  # per batch, learned: how many rows to claim for one transaction's budget


def _claim_limit(max_messages: int) -> int:
    return max(2, min(500, int(max_messages / max(_average_messages, 1.0)) + 2))


_WORKSPACE_LOCK_CLASS = 0x74757474  # "tutt": the high half of the advisory lock key of a workspace's inbox


def _claim(db: Session, *, skip: set[int], only: int | None, max_messages: int) -> list[_Claimed]:
    """The oldest pending batches of one workspace, up to max_messages together (at least one), locked
    for this transaction.

    PostgreSQL: the oldest workspace with pending batches whose advisory lock this transaction gets, then
    its batches FOR UPDATE SKIP LOCKED. Several workers share the load across workspaces while each
    workspace's batches are stored by one worker at a time, in order: two workers storing the same
    shop's customers at once mostly wait on each other's row locks (and deadlock), which measured at
    half the rate of one. SQLite: the write transaction (BEGIN IMMEDIATE) already has the database to
    itself; the batches are those of the oldest one's workspace."""
    table = InboundBatch.__table__
    c = table.c
    pending = [c.failed_at.is_(None)]
    if only is not None:
        pending.append(c.id == only)
    elif skip:
        pending.append(c.id.not_in(skip))
    postgres = db.get_bind().dialect.name == "postgresql"
    candidates = list(dict.fromkeys(db.scalars(select(c.workspace_id).where(*pending).order_by(c.id).limit(100 if postgres else 1))))
    workspace_id = None
    for candidate in candidates:
        if not postgres or db.scalar(sql_text("SELECT pg_try_advisory_xact_lock(CAST(:key AS bigint))"),
                                     {"key": (_WORKSPACE_LOCK_CLASS << 32) | (candidate & 0xFFFFFFFF)}):
            workspace_id = candidate
            break
    if workspace_id is None:
        return []
    query = (select(c.id, c.workspace_id, c.received_at, c.endpoint, c.message_count).where(*pending, c.workspace_id == workspace_id)
             .order_by(c.id).limit(_claim_limit(max_messages)))
    if postgres:
        query = query.with_for_update(skip_locked=True)
    taken: list[_Claimed] = []
    total = 0
    for row in db.execute(query):
        if taken and total + row.message_count > max_messages:
            break
        taken.append(_Claimed(row.id, row.workspace_id, row.received_at, row.endpoint, row.message_count))
        total += row.message_count
    return taken


def _parse_claimed(db: Session, claimed: list[_Claimed]) -> None:
    """Read each claimed batch's payload and parse it again, as at the request (same received_at); a batch
    that no longer parses raises _BatchFailed naming it."""
    table = InboundBatch.__table__
    payloads = dict(db.execute(select(table.c.id, table.c.payload).where(table.c.id.in_([b.id for b in claimed]))).all())
    regions = dict(db.execute(select(Workspace.id, Workspace.default_region).where(
        Workspace.id.in_({b.workspace_id for b in claimed}))).all())
    for batch in claimed:
        try:
            _, payload = unpack_body(bytes(payloads[batch.id]), content_encoding=None, single=batch.endpoint in TYPES)
            batch.messages = parse_request(payload, endpoint=batch.endpoint, region=regions[batch.workspace_id],
                                           received_at=batch.received_at)
        except Exception as error:
            raise _BatchFailed(batch.id, error) from error


def _transient(error: BaseException) -> bool:
    """The database, not the batch, is the problem (connection lost, locked, timed out): retry later, as is."""
    return isinstance(error, (OperationalError, InterfaceError)) or bool(getattr(error, "connection_invalidated", False))


def _store_claimed(database: Database, *, skip: set[int], only: int | None, max_messages: int) -> tuple[list[_Claimed], dict[str, int]] | None:
    """One transaction: claim batches, store their messages, delete them. None when nothing is pending.
    Retried whole after a deadlock or a concurrent insert of the same identity.

    On SQLite the batches are read and parsed before the write transaction (which locks the whole
    database, the API's inserts included) and, inside it, only those still pending are stored: another
    process may have stored some meanwhile. On PostgreSQL claiming locks only the rows."""
    global _average_messages
    sqlite_engine = database.dialect == "sqlite"
    table = InboundBatch.__table__
    for attempt in range(5):
        try:
            claimed: list[_Claimed] = []
            if sqlite_engine:
                with database.read_session() as db:
                    claimed = _claim(db, skip=skip, only=only, max_messages=max_messages)
                    if not claimed:
                        return None
                    _parse_claimed(db, claimed)
            with database.session() as db:
                if sqlite_engine:
                    pending = set(db.scalars(select(table.c.id).where(table.c.id.in_([b.id for b in claimed]), table.c.failed_at.is_(None))))
                    claimed = [b for b in claimed if b.id in pending]
                    if not claimed:  # stored by another process meanwhile
                        return [], {}
                else:
                    claimed = _claim(db, skip=skip, only=only, max_messages=max_messages)
                    if not claimed:
                        return None
                    _parse_claimed(db, claimed)
                _average_messages = 0.8 * _average_messages + 0.2 * (sum(b.message_count for b in claimed) / len(claimed))
                by_workspace: dict[int, list[Message]] = defaultdict(list)
                for batch in claimed:  # oldest first, so a later identify's traits win
                    by_workspace[batch.workspace_id].extend(batch.messages)
                counts: dict[str, int] = defaultdict(int)
                for workspace_id, messages in by_workspace.items():
                    for kind, n in store(db, workspace_id=workspace_id, messages=messages).items():
                        counts[kind] += n
                db.execute(delete(table).where(table.c.id.in_([b.id for b in claimed])))
            return claimed, counts
        except _BatchFailed:
            raise
        except Exception as error:
            if isinstance(error, (OperationalError, IntegrityError)) and attempt < 4 and _retryable(error):
                log.info("tracking: retrying inbox batches after %s", getattr(getattr(error, "orig", None), "sqlstate", "lock"))
                continue
            if _transient(error):
                raise
            raise _GroupFailed([b.id for b in claimed], error) from error
    raise AssertionError("unreachable")


def _record_failure(database: Database, batch_id: int, error: BaseException) -> bool:
    """Count a failed attempt on a batch; after MAX_ATTEMPTS it is set aside (failed_at). True if set aside."""
    table = InboundBatch.__table__
    text = f"{type(error).__name__}: {error}"[:_ERROR_CHARS]
    with database.session() as db:
        query = select(table.c.attempts, table.c.workspace_id).where(table.c.id == batch_id, table.c.failed_at.is_(None))
        if db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = db.execute(query).first()
        if row is None:  # another worker has it, or it is gone
            return False
        attempts = row.attempts + 1
        given_up = attempts >= MAX_ATTEMPTS
        db.execute(update(table).where(table.c.id == batch_id).values(
            attempts=attempts, error=text, failed_at=utcnow() if given_up else None))
    if given_up:
        metrics.INBOUND_FAILED.inc()
        log.error("tracking: inbox batch %d set aside after %d failed attempts: %s", batch_id, attempts, text,
                  extra={"batch_id": batch_id, "workspace_id": row.workspace_id, "attempts": attempts})
    else:
        log.warning("tracking: inbox batch %d failed (attempt %d of %d): %s", batch_id, attempts, MAX_ATTEMPTS, text,
                    extra={"batch_id": batch_id, "workspace_id": row.workspace_id, "attempts": attempts})
    return given_up


def _defer_to_requests(database: Database) -> None:
    """While this process's API is accepting requests, wait (the worker and the API share the process and,
    on SQLite, the write lock) — but never let the oldest pending batch wait more than BUSY_DEFER_SECONDS."""
    while time.monotonic() - _last_accept < _QUIET_SECONDS:
        table = InboundBatch.__table__
        with database.read_session() as db:
            oldest = db.scalar(select(table.c.received_at).where(table.c.failed_at.is_(None)).order_by(table.c.id).limit(1))
        if oldest is None or (utcnow() - oldest).total_seconds() >= BUSY_DEFER_SECONDS:
            return
        time.sleep(0.05)


def process_inbound(*, database: Database | None = None, max_messages: int = PROCESS_MAX_MESSAGES,
                    defer_to_requests: bool = False) -> dict[str, int]:
    """Store the inbox's pending batches, oldest first, until none is left; returns what was done.

    Each transaction takes several batches (up to max_messages), runs `store` on all their messages and
    deletes the batch rows, so a crash anywhere loses nothing and stores nothing twice (and a replay is
    harmless anyway: messages are de-duplicated by messageId). When a transaction fails for a reason that
    is not the database's (a bug, a payload that no longer parses), its batches are stored one by one; the
    one that fails gets an attempt counted and is skipped for the rest of this run, and after MAX_ATTEMPTS
    runs it is set aside, kept with its error. A database problem (connection lost, locked) is raised as
    is: nothing was changed, and the next run or the one-minute tick starts again.

    defer_to_requests (the embedded worker, in the API's own process): during a burst of requests the
    API goes first and the batches wait, at most BUSY_DEFER_SECONDS, then both share the process."""
    database = database or get_database()
    skip: set[int] = set()
    done = {"batches": 0, "messages": 0, "stored": 0, "failed": 0, "set_aside": 0}

    def tally(result) -> None:
        claimed, counts = result
        done["batches"] += len(claimed)
        done["messages"] += sum(b.message_count for b in claimed)
        done["stored"] += sum(counts.values())
        for kind, n in counts.items():
            metrics.EVENTS_INGESTED.labels(kind).inc(n)

    def fail(batch_id: int, error: BaseException) -> None:
        skip.add(batch_id)
        done["failed"] += 1
        if _record_failure(database, batch_id, error):
            done["set_aside"] += 1

    while True:
        if defer_to_requests:
            _defer_to_requests(database)
        try:
            result = _store_claimed(database, skip=skip, only=None, max_messages=max_messages)
        except _BatchFailed as failed:
            fail(failed.batch_id, failed.error)
            continue
        except _GroupFailed as group:
            error = group.error
            # one of these batches is bad, or several: store them one by one to find out which
            ids = group.batch_ids
            if not ids:  # failed before it knew its batches: the oldest ones
                table = InboundBatch.__table__
                with database.read_session() as db:
                    ids = list(db.scalars(select(table.c.id).where(table.c.failed_at.is_(None), table.c.id.not_in(skip) if skip else true())
                                          .order_by(table.c.id).limit(_claim_limit(max_messages))))
            progress = done["batches"] + done["failed"]
            for batch_id in ids:
                try:
                    single = _store_claimed(database, skip=skip, only=batch_id, max_messages=max_messages)
                except _BatchFailed as failed:
                    fail(failed.batch_id, failed.error)
                    continue
                except _GroupFailed as alone:
                    log.debug("tracking: batch %d failed alone", batch_id, exc_info=alone.error)
                    fail(batch_id, alone.error)
                    continue
                if single is not None:
                    tally(single)
            if done["batches"] + done["failed"] == progress:  # all taken by other workers meanwhile: leave it to them
                log.warning("tracking: inbox batches failed together but none alone: %s", error)
                return done
            continue
        if result is None:
            return done
        tally(result)


def backlog(database: Database | None = None) -> tuple[int, int]:
    """Pending inbox batches and the messages they hold (set-aside batches excluded)."""
    database = database or get_database()
    table = InboundBatch.__table__
    with database.read_session() as db:
        batches, messages = db.execute(select(func.count(), func.coalesce(func.sum(table.c.message_count), 0))
                                       .where(table.c.failed_at.is_(None))).one()
    return int(batches), int(messages)


def set_aside(database: Database | None = None, *, workspace_id: int) -> list[dict]:
    """The workspace's batches given up on, newest first, for inspection."""
    database = database or get_database()
    table = InboundBatch.__table__
    with database.read_session() as db:
        rows = db.execute(select(table.c.id, table.c.received_at, table.c.endpoint, table.c.message_count, table.c.attempts,
                                 table.c.error, table.c.failed_at)
                          .where(table.c.workspace_id == workspace_id, table.c.failed_at.is_not(None)).order_by(table.c.id.desc()))
        return [dict(row._mapping) for row in rows]
