"""A LINE Messaging API emulator: the endpoints Tutti uses, in LINE's wire format, with LINE's limits.

It lets tests, benchmarks and the demo send real LINE requests (through the official `line-bot-sdk`)
without the internet, and shows what "the customer's phone" received. What it enforces, as LINE does:

- `Authorization: Bearer <channel access token>` (401 with LINE's JSON error otherwise);
- at most 500 recipients per multicast and 5 messages per request; message objects checked (type, text
  up to 5,000 characters, alt texts, template/flex shapes, quick replies …) → 400 with
  `{"message": ..., "details": [{"message", "property"}]}`;
- rate limits per endpoint (defaults are LINE's: push 2,000 req/s, multicast 200 req/s) → 429;
- `X-Line-Retry-Key`: a key whose request was accepted answers 409 with `x-line-accepted-request-id`
  and stores nothing again; every accepted request gets `x-line-request-id`;
- reply tokens valid for one reply within a minute.

It keeps what it received in memory and, optionally, appended to a JSONL file (reloaded on start, so a
separate process can inspect it and a restart keeps accepted retry keys). Emulator-only endpoints live
under `/_emulator/`: messages, counts, stats, reset, configuration and fault injection, sending a customer's
webhook to Tutti (signed like LINE), and the phone page `/_emulator/phone/{userId}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

DEFAULT_ACCESS_TOKEN = "emulator-channel-access-token"
DEFAULT_CHANNEL_SECRET = "emulator-channel-secret"
DEFAULT_BOT_USER_ID = "U" + "0" * 31 + "b"
# LINE's published rate limits, requests per second
DEFAULT_RATES = {"push": 2000.0, "multicast": 200.0, "reply": 2000.0, "other": 2000.0}

MAX_RECIPIENTS = 500
MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_ALT_TEXT = 400
MAX_QUICK_REPLY_ITEMS = 13
MAX_FLEX_BYTES = 30 * 1024

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
TO_ID = re.compile(r"^[UCR][0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
AUTH_MISSING = "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"
RATE_LIMITED = "The API rate limit has been exceeded. Try again later."
RETRY_KEY_ACCEPTED = "The retry key is already accepted"
RETRY_KEY_INVALID = "The value for the 'X-Line-Retry-Key' header is invalid"


def sign(body: bytes, channel_secret: str) -> str:
    """LINE's x-line-signature: base64 of HMAC-SHA256 of the raw body with the channel secret."""
    return base64.b64encode(hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()).decode()


def _line_id(prefix: str = "U") -> str:
    return prefix + secrets.token_hex(16)


def _message_id() -> str:
    return str(secrets.randbelow(9 * 10**17) + 10**17)  # LINE's ids are 18-digit numbers


def _ulid_like() -> str:
    # webhookEventId is a ULID (26 characters, Crockford base32); the shape is what matters here
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    stamp = int(time.time() * 1000)
    head = "".join(alphabet[(stamp >> (5 * i)) & 31] for i in reversed(range(10)))
    return head + "".join(secrets.choice(alphabet) for _ in range(16))


# --- message validation (LINE's rules for the message types Tutti sends) ---------------------------------


class Problems:
    def __init__(self) -> None:
        self.details: list[dict] = []

    def add(self, message: str, prop: str) -> None:
        self.details.append({"message": message, "property": prop})


def _text_len(value: object) -> int:
    return len(value) if isinstance(value, str) else -1


def _require_str(problems: Problems, obj: dict, key: str, where: str, *, max_len: int | None = None) -> None:
    value = obj.get(key)
    if value is None or value == "":
        problems.add("May not be empty", f"{where}.{key}")
    elif not isinstance(value, str):
        problems.add("Must be a string", f"{where}.{key}")
    elif max_len is not None and len(value) > max_len:
        problems.add(f"Length must be between 0 and {max_len}", f"{where}.{key}")


def _check_url(problems: Problems, obj: dict, key: str, where: str, *, require_https: bool, max_len: int = 2000) -> None:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        problems.add("May not be empty", f"{where}.{key}")
        return
    if len(value) > max_len:
        problems.add(f"Length must be between 0 and {max_len}", f"{where}.{key}")
    allowed = ("https://",) if require_https else ("https://", "http://")
    if not value.startswith(allowed):
        problems.add("Must be a valid HTTPS URL", f"{where}.{key}")


def _check_action(problems: Problems, action: object, where: str, *, require_https: bool, label_required: bool = True) -> None:
    if not isinstance(action, dict):
        problems.add("Must be an object", where)
        return
    kind = action.get("type")
    if kind not in ("postback", "message", "uri", "datetimepicker", "camera", "cameraRoll", "location", "richmenuswitch", "clipboard"):
        problems.add("Invalid action type", f"{where}.type")
        return
    label = action.get("label")
    if label_required and not label:
        problems.add("May not be empty", f"{where}.label")
    elif label is not None and _text_len(label) > 20:
        problems.add("Length must be between 0 and 20", f"{where}.label")
    if kind == "uri":
        uri = action.get("uri")
        if not isinstance(uri, str) or not uri:
            problems.add("May not be empty", f"{where}.uri")
        elif len(uri) > 1000:
            problems.add("Length must be between 0 and 1000", f"{where}.uri")
        elif not uri.startswith(("https://", "http://", "line://", "tel:")):
            problems.add("Invalid URI scheme", f"{where}.uri")
    elif kind == "postback":
        _require_str(problems, action, "data", where, max_len=300)
    elif kind == "message":
        _require_str(problems, action, "text", where, max_len=300)


def _check_template(problems: Problems, template: object, where: str, *, require_https: bool) -> None:
    if not isinstance(template, dict):
        problems.add("May not be empty", where)
        return
    kind = template.get("type")

    def actions(obj: dict, at: str, low: int, high: int) -> None:
        items = obj.get("actions")
        if not isinstance(items, list) or not (low <= len(items) <= high):
            problems.add(f"Size must be between {low} and {high}", f"{at}.actions")
            return
        for i, action in enumerate(items):
            _check_action(problems, action, f"{at}.actions[{i}]", require_https=require_https)

    if kind == "buttons":
        limit = 60 if template.get("title") or template.get("thumbnailImageUrl") else 160
        _require_str(problems, template, "text", where, max_len=limit)
        if template.get("title") is not None and _text_len(template["title"]) > 40:
            problems.add("Length must be between 0 and 40", f"{where}.title")
        if template.get("thumbnailImageUrl"):
            _check_url(problems, template, "thumbnailImageUrl", where, require_https=require_https)
        actions(template, where, 1, 4)
    elif kind == "confirm":
        _require_str(problems, template, "text", where, max_len=240)
        actions(template, where, 2, 2)
    elif kind in ("carousel", "image_carousel"):
        columns = template.get("columns")
        if not isinstance(columns, list) or not (1 <= len(columns) <= 10):
            problems.add("Size must be between 1 and 10", f"{where}.columns")
            return
        for i, column in enumerate(columns):
            at = f"{where}.columns[{i}]"
            if not isinstance(column, dict):
                problems.add("Must be an object", at)
                continue
            if kind == "carousel":
                limit = 60 if column.get("title") or column.get("thumbnailImageUrl") else 120
                _require_str(problems, column, "text", at, max_len=limit)
                actions(column, at, 1, 3)
            else:
                _check_url(problems, column, "imageUrl", at, require_https=require_https)
                _check_action(problems, column.get("action"), f"{at}.action", require_https=require_https, label_required=False)
    else:
        problems.add("Invalid template type", f"{where}.type")


def _check_message(problems: Problems, message: object, where: str, *, require_https: bool) -> None:
    if not isinstance(message, dict):
        problems.add("Must be an object", where)
        return
    kind = message.get("type")
    if kind == "text":
        text = message.get("text")
        if text is None or text == "":
            problems.add("May not be empty", f"{where}.text")
        elif not isinstance(text, str):
            problems.add("Must be a string", f"{where}.text")
        elif len(text) > MAX_TEXT:
            problems.add(f"Length must be between 0 and {MAX_TEXT}", f"{where}.text")
    elif kind == "sticker":
        _require_str(problems, message, "packageId", where)
        _require_str(problems, message, "stickerId", where)
    elif kind in ("image", "video"):
        _check_url(problems, message, "originalContentUrl", where, require_https=require_https)
        _check_url(problems, message, "previewImageUrl", where, require_https=require_https)
    elif kind == "audio":
        _check_url(problems, message, "originalContentUrl", where, require_https=require_https)
        if not isinstance(message.get("duration"), int):
            problems.add("May not be empty", f"{where}.duration")
    elif kind == "location":
        _require_str(problems, message, "title", where, max_len=100)
        _require_str(problems, message, "address", where, max_len=100)
        for key in ("latitude", "longitude"):
            if not isinstance(message.get(key), int | float):
                problems.add("May not be empty", f"{where}.{key}")
    elif kind == "template":
        _require_str(problems, message, "altText", where, max_len=MAX_ALT_TEXT)
        _check_template(problems, message.get("template"), f"{where}.template", require_https=require_https)
    elif kind == "flex":
        _require_str(problems, message, "altText", where, max_len=MAX_ALT_TEXT)
        contents = message.get("contents")
        if not isinstance(contents, dict) or contents.get("type") not in ("bubble", "carousel"):
            problems.add("Invalid flex container type", f"{where}.contents.type")
        else:
            if contents["type"] == "carousel":
                bubbles = contents.get("contents")
                if not isinstance(bubbles, list) or not (1 <= len(bubbles) <= 12):
                    problems.add("Size must be between 1 and 12", f"{where}.contents.contents")
            if len(orjson.dumps(contents)) > MAX_FLEX_BYTES:
                problems.add("Flex Message size exceeds the limit (30KB)", f"{where}.contents")
    elif kind == "imagemap":
        _check_url(problems, message, "baseUrl", where, require_https=require_https)
        _require_str(problems, message, "altText", where, max_len=MAX_ALT_TEXT)
        if not isinstance(message.get("actions"), list) or not (1 <= len(message["actions"]) <= 50):
            problems.add("Size must be between 1 and 50", f"{where}.actions")
    else:
        problems.add("Invalid message type", f"{where}.type")
        return
    quick = message.get("quickReply")
    if quick is not None:
        items = quick.get("items") if isinstance(quick, dict) else None
        if not isinstance(items, list) or not (1 <= len(items) <= MAX_QUICK_REPLY_ITEMS):
            problems.add(f"Size must be between 1 and {MAX_QUICK_REPLY_ITEMS}", f"{where}.quickReply.items")
        else:
            for i, item in enumerate(items):
                action = item.get("action") if isinstance(item, dict) else None
                _check_action(problems, action, f"{where}.quickReply.items[{i}].action", require_https=require_https)


def validate_messages(messages: object, *, require_https: bool = True) -> list[dict]:
    """LINE's checks of a request's `messages`; returns the problems as LINE's `details`."""
    problems = Problems()
    if not isinstance(messages, list) or not (1 <= len(messages) <= MAX_MESSAGES):
        problems.add(f"Size must be between 1 and {MAX_MESSAGES}", "messages")
        return problems.details
    for i, message in enumerate(messages):
        _check_message(problems, message, f"messages[{i}]", require_https=require_https)
    return problems.details


# --- state ------------------------------------------------------------------------------------------------


@dataclass
class Config:
    access_tokens: tuple[str, ...] = (DEFAULT_ACCESS_TOKEN,)
    channel_secret: str = DEFAULT_CHANNEL_SECRET
    bot_user_id: str = DEFAULT_BOT_USER_ID
    basic_id: str = "@tutti-emu"
    display_name: str = "Tutti Emulator OA"
    rates: dict = field(default_factory=lambda: dict(DEFAULT_RATES))
    reply_ttl: float = 60.0
    require_https: bool = True
    webhook_url: str | None = None  # where the phone page sends the customer's messages
    quota: int | None = None  # monthly message quota; None = unlimited ("none" type)


class Emulator:
    """Everything the emulator holds; thread-safe (uvicorn may run handlers on threads)."""

    def __init__(self, config: Config | None = None, *, store: str | Path | None = None):
        self.config = config or Config()
        self._defaults = Config(**{**self.config.__dict__, "rates": dict(self.config.rates)})
        self.store = Path(store) if store else None
        self.lock = threading.RLock()
        self._reset_state()
        if self.store and self.store.exists():
            self._load()

    def _reset_state(self) -> None:
        self.requests: list[dict] = []  # accepted requests and customer events, in order
        self.by_user: dict[str, list[int]] = {}
        self.retry_keys: dict[str, str] = {}  # retry key -> accepted request id
        self.reply_tokens: dict[str, dict] = {}
        self.profiles: dict[str, dict] = {}
        self.blocked: set[str] = set()  # users who blocked the account: push fails, multicast skips them
        self.faults: list[dict] = []
        self.buckets: dict[str, tuple[float, float]] = {}
        self.stats = {"accepted": 0, "rejected_401": 0, "rejected_400": 0, "rejected_409": 0, "rejected_429": 0,
                      "faults": 0, "recipients": 0, "messages": 0, "webhooks_sent": 0}

    def reset(self, *, config: bool = True) -> None:
        with self.lock:
            self._reset_state()
            if config:
                self.config = Config(**{**self._defaults.__dict__, "rates": dict(self._defaults.rates)})
            if self.store and self.store.exists():
                self.store.unlink()

    # persistence: one JSON line per accepted request or customer event
    def _load(self) -> None:
        with self.store.open("rb") as handle:
            for line in handle:
                if line.strip():
                    self._index(orjson.loads(line), persist=False)

    def _index(self, record: dict, *, persist: bool = True) -> None:
        position = len(self.requests)
        self.requests.append(record)
        for user in record["to"]:
            self.by_user.setdefault(user, []).append(position)
        if record.get("retry_key"):
            self.retry_keys[record["retry_key"]] = record["request_id"]
        if record["endpoint"] != "webhook":
            self.stats["accepted"] += 1
            self.stats["recipients"] += len(record["to"])
            self.stats["messages"] += len(record["to"]) * len(record["messages"])
        if persist and self.store:
            with self.store.open("ab") as handle:
                handle.write(orjson.dumps(record) + b"\n")

    def take_token(self, endpoint: str) -> bool:
        rate = float(self.config.rates.get(endpoint, self.config.rates.get("other", 2000.0)))
        burst = max(1.0, rate)  # one second's worth: LINE counts requests per second
        now = time.monotonic()
        level, at = self.buckets.get(endpoint, (burst, now))
        level = min(burst, level + (now - at) * rate)
        if level < 1:
            self.buckets[endpoint] = (level, now)
            return False
        self.buckets[endpoint] = (level - 1, now)
        return True

    def take_fault(self, endpoint: str) -> dict | None:
        for fault in self.faults:
            if fault["endpoint"] in (endpoint, "*") and fault["count"] > 0:
                fault["count"] -= 1
                self.stats["faults"] += 1
                return fault
        return None

    def messages_for(self, user: str | None, *, limit: int = 100, endpoint: str | None = None) -> list[dict]:
        with self.lock:
            positions = self.by_user.get(user, []) if user else range(len(self.requests))
            out = []
            for position in positions:
                record = self.requests[position]
                if endpoint and record["endpoint"] != endpoint:
                    continue
                recipients = [user] if user else record["to"]
                for recipient in recipients:
                    for index, message in enumerate(record["messages"]):
                        out.append({
                            "to": recipient, "from": "user" if record["endpoint"] == "webhook" else "bot",
                            "endpoint": record["endpoint"], "request_id": record["request_id"],
                            "retry_key": record.get("retry_key"), "message": message, "index": index,
                            "received_at": record["at"],
                        })
            return out[-limit:] if limit else out


def _json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, details: list | None = None, headers: dict | None = None) -> Response:
    body = {"message": message}
    if details:
        body["details"] = details
    return _json(body, status, headers)


def create_app(config: Config | None = None, *, store: str | Path | None = None, emulator: Emulator | None = None) -> FastAPI:
    """The emulator as an ASGI app; `app.state.emulator` holds its state."""
    emu = emulator or Emulator(config, store=store)
    app = FastAPI(title="LINE Messaging API emulator (Tutti)", docs_url="/_emulator/docs", openapi_url="/_emulator/openapi.json")
    app.state.emulator = emu

    def authorised(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            emu.stats["rejected_401"] += 1
            return _error(401, AUTH_MISSING)
        if header[len("Bearer "):].strip() not in emu.config.access_tokens:
            emu.stats["rejected_401"] += 1
            return _error(401, AUTH_FAILED)
        return None

    async def body_of(request: Request) -> tuple[dict | None, Response | None]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None, _error(400, "The request body has 1 error(s)", [{"message": "Invalid JSON", "property": "body"}])
        if not isinstance(body, dict):
            return None, _error(400, "The request body has 1 error(s)", [{"message": "Must be an object", "property": "body"}])
        return body, None

    def gate(request: Request, endpoint: str) -> Response | None:
        """Auth, rate limit, injected faults: what LINE checks before reading the body."""
        problem = authorised(request)
        if problem:
            return problem
        with emu.lock:
            if not emu.take_token(endpoint):
                emu.stats["rejected_429"] += 1
                return _error(429, RATE_LIMITED)
        return None

    async def send(request: Request, endpoint: str) -> Response:
        problem = gate(request, endpoint)
        if problem:
            return problem
        retry_key = request.headers.get("x-line-retry-key")
        if retry_key is not None and not UUID_RE.match(retry_key):
            emu.stats["rejected_400"] += 1
            return _error(400, RETRY_KEY_INVALID)
        body, problem = await body_of(request)
        if problem:
            emu.stats["rejected_400"] += 1
            return problem
        details = []
        if endpoint == "push":
            to = body.get("to")
            if not isinstance(to, str) or not TO_ID.match(to):
                emu.stats["rejected_400"] += 1
                return _error(400, "The property, 'to', in the request body is invalid (line: -, column: -)")
            recipients = [to]
        else:
            to = body.get("to")
            if not isinstance(to, list) or not (1 <= len(to) <= MAX_RECIPIENTS):
                details.append({"message": f"Size must be between 1 and {MAX_RECIPIENTS}", "property": "to"})
                recipients = []
            else:
                recipients = to
                for i, user in enumerate(to):
                    if not isinstance(user, str) or not USER_ID.match(user):
                        details.append({"message": "invalid user ID", "property": f"to[{i}]"})
                        break
        details += validate_messages(body.get("messages"), require_https=emu.config.require_https)
        if details:
            emu.stats["rejected_400"] += 1
            return _error(400, f"The request body has {len(details)} error(s)", details)
        with emu.lock:
            if retry_key is not None and retry_key in emu.retry_keys:
                emu.stats["rejected_409"] += 1
                accepted = emu.retry_keys[retry_key]
                return _error(409, RETRY_KEY_ACCEPTED, headers={"x-line-accepted-request-id": accepted, "x-line-request-id": str(uuid.uuid4())})
            fault = emu.take_fault(endpoint)
            if fault and not fault.get("after_accept"):
                return _error(fault["status"], fault.get("message") or "An error occurred in the server.")
            if endpoint == "push" and recipients[0] in emu.blocked:
                emu.stats["rejected_400"] += 1
                return _error(400, "Failed to send messages")
            if emu.config.quota is not None and emu.stats["recipients"] + len(recipients) > emu.config.quota:
                return _error(429, "You have reached your monthly limit.")
            request_id = str(uuid.uuid4())
            delivered = [user for user in recipients if user not in emu.blocked]
            emu._index({"request_id": request_id, "endpoint": endpoint, "to": delivered, "messages": body["messages"],
                        "retry_key": retry_key, "at": time.time()})
        headers = {"x-line-request-id": request_id}
        if fault:  # accepted, but the answer is lost: the caller sees an error and must retry with its key
            return _error(fault["status"], fault.get("message") or "An error occurred in the server.", headers=headers)
        if endpoint == "multicast":
            return _json({}, 200, headers)
        sent = [{"id": _message_id(), "quoteToken": secrets.token_urlsafe(24)} for _ in body["messages"]]
        return _json({"sentMessages": sent}, 200, headers)

    @app.post("/v2/bot/message/push")
    async def push(request: Request):
        return await send(request, "push")

    @app.post("/v2/bot/message/multicast")
    async def multicast(request: Request):
        return await send(request, "multicast")

    @app.post("/v2/bot/message/reply")
    async def reply(request: Request):
        problem = gate(request, "reply")
        if problem:
            return problem
        body, problem = await body_of(request)
        if problem:
            return problem
        details = validate_messages(body.get("messages"), require_https=emu.config.require_https)
        if details:
            emu.stats["rejected_400"] += 1
            return _error(400, f"The request body has {len(details)} error(s)", details)
        with emu.lock:
            token = emu.reply_tokens.get(body.get("replyToken") or "")
            if token is None or token["used"] or time.time() - token["issued"] > emu.config.reply_ttl:
                emu.stats["rejected_400"] += 1
                return _error(400, "Invalid reply token")
            token["used"] = True
            request_id = str(uuid.uuid4())
            emu._index({"request_id": request_id, "endpoint": "reply", "to": [token["user_id"]], "messages": body["messages"],
                        "retry_key": None, "at": time.time()})
        sent = [{"id": _message_id(), "quoteToken": secrets.token_urlsafe(24)} for _ in body["messages"]]
        return _json({"sentMessages": sent}, 200, {"x-line-request-id": request_id})

    @app.get("/v2/bot/info")
    def bot_info(request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        c = emu.config
        return _json({"userId": c.bot_user_id, "basicId": c.basic_id, "displayName": c.display_name,
                      "pictureUrl": "https://profile.line-scdn.net/emulator", "chatMode": "bot", "markAsReadMode": "auto"},
                     headers={"x-line-request-id": str(uuid.uuid4())})

    @app.get("/v2/bot/profile/{user_id}")
    def profile(user_id: str, request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        with emu.lock:
            found = emu.profiles.get(user_id)
        if found is None or user_id in emu.blocked:
            return _error(404, "Not found")
        return _json(found, headers={"x-line-request-id": str(uuid.uuid4())})

    @app.get("/v2/bot/message/quota")
    def quota(request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        if emu.config.quota is None:
            return _json({"type": "none"})
        return _json({"type": "limited", "value": emu.config.quota})

    @app.get("/v2/bot/message/quota/consumption")
    def consumption(request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        return _json({"totalUsage": emu.stats["recipients"]})

    @app.put("/v2/bot/channel/webhook/endpoint")
    async def set_webhook(request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        body, problem = await body_of(request)
        if problem:
            return problem
        endpoint = body.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            return _error(400, "The request body has 1 error(s)", [{"message": "Must be a valid HTTPS URL", "property": "endpoint"}])
        emu.config.webhook_url = endpoint
        return _json({})

    @app.get("/v2/bot/channel/webhook/endpoint")
    def get_webhook(request: Request):
        problem = gate(request, "other")
        if problem:
            return problem
        return _json({"endpoint": emu.config.webhook_url or "", "active": bool(emu.config.webhook_url)})

    # --- emulator-only endpoints ---------------------------------------------------------------------------

    @app.get("/_emulator/messages")
    def list_messages(to: str | None = None, limit: int = 100, endpoint: str | None = None):
        messages = emu.messages_for(to, limit=limit, endpoint=endpoint)
        return _json({"messages": messages, "count": len(messages)})

    @app.get("/_emulator/counts")
    def counts():
        """Messages received per user from the bot (push, multicast, reply): what exactly-once checks read."""
        with emu.lock:
            out: dict[str, int] = {}
            for record in emu.requests:
                if record["endpoint"] == "webhook":
                    continue
                for user in record["to"]:
                    out[user] = out.get(user, 0) + len(record["messages"])
        return _json({"counts": out, "users": len(out), "messages": sum(out.values())})

    @app.get("/_emulator/stats")
    def stats():
        with emu.lock:
            return _json({**emu.stats, "requests": len(emu.requests), "rates": emu.config.rates})

    @app.post("/_emulator/reset")
    def reset():
        emu.reset()
        return _json({"ok": True})

    @app.post("/_emulator/config")
    async def configure(request: Request):
        """Change limits and behaviour at run time: {"rates": {"multicast": 10}, "blocked": ["U…"],
        "faults": [{"endpoint": "push", "status": 500, "count": 2, "after_accept": false}], "reply_ttl": 5,
        "require_https": false, "webhook_url": "...", "quota": 1000}."""
        body = orjson.loads(await request.body() or b"{}")
        with emu.lock:
            if "rates" in body:
                emu.config.rates.update({k: float(v) for k, v in body["rates"].items()})
                emu.buckets.clear()
            if "blocked" in body:
                emu.blocked = set(body["blocked"])
            if "faults" in body:
                emu.faults = [{"endpoint": f.get("endpoint", "*"), "status": int(f.get("status", 500)), "count": int(f.get("count", 1)),
                               "after_accept": bool(f.get("after_accept")), "message": f.get("message")} for f in body["faults"]]
            for key in ("reply_ttl", "require_https", "webhook_url", "quota", "channel_secret"):
                if key in body:
                    setattr(emu.config, key, body[key])
            if "access_tokens" in body:
                emu.config.access_tokens = tuple(body["access_tokens"])
        return _json({"ok": True})

    @app.post("/_emulator/send")
    async def send_webhook(request: Request):
        """Act as a customer: build LINE's webhook body for one event, sign it and POST it to Tutti."""
        body = orjson.loads(await request.body() or b"{}")
        try:
            result = await deliver_webhook(emu, body)
        except ValueError as error:
            return _error(400, str(error))
        return _json(result)

    @app.get("/_emulator/phone", response_class=HTMLResponse)
    def phones():
        with emu.lock:
            users = sorted(emu.by_user, key=lambda u: -len(emu.by_user[u]))[:200]
        items = "".join(f'<li><a href="/_emulator/phone/{html.escape(u)}">{html.escape(emu.profiles.get(u, {}).get("displayName", u))}</a>'
                        f' <small>{len(emu.by_user[u])}</small></li>' for u in users)
        return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>LINE emulator</title><h1>LINE emulator</h1><ul>{items or '<li>nothing yet</li>'}</ul>")

    @app.get("/_emulator/phone/{user_id}", response_class=HTMLResponse)
    def phone(user_id: str):
        return HTMLResponse(render_phone(emu, user_id))

    @app.post("/_emulator/phone/{user_id}/say")
    async def phone_say(user_id: str, request: Request):
        form = await request.form()
        body = {"user_id": user_id, "to_webhook_url": form.get("webhook_url") or emu.config.webhook_url}
        if form.get("postback"):
            body["postback"] = form["postback"]
        elif form.get("follow"):
            body["follow"] = True
        else:
            body["text"] = str(form.get("text") or "").strip()
            if not body["text"]:
                return RedirectResponse(f"/_emulator/phone/{user_id}", status_code=303)
        try:
            await deliver_webhook(emu, body)
        except ValueError as error:
            return HTMLResponse(f"<p>{html.escape(str(error))}</p><a href='/_emulator/phone/{html.escape(user_id)}'>back</a>", status_code=400)
        return RedirectResponse(f"/_emulator/phone/{user_id}", status_code=303)

    return app


async def deliver_webhook(emu: Emulator, body: dict) -> dict:
    """Build one LINE webhook event (text/sticker message, follow, unfollow or postback), sign and POST it."""
    import httpx

    url = body.get("to_webhook_url") or emu.config.webhook_url
    if not url:
        raise ValueError("to_webhook_url is required (or configure the emulator's webhook_url)")
    secret = body.get("channel_secret") or emu.config.channel_secret
    user_id = body.get("user_id") or _line_id()
    if not USER_ID.match(user_id):
        raise ValueError(f"user_id '{user_id}' is not a LINE user id (U + 32 hex digits)")
    now_ms = int(time.time() * 1000)
    with emu.lock:
        emu.profiles.setdefault(user_id, {"userId": user_id, "displayName": body.get("display_name") or f"LINE user {user_id[-4:]}",
                                          "pictureUrl": "https://profile.line-scdn.net/emulator-user", "language": body.get("language", "zh-TW")})
        if body.get("display_name"):
            emu.profiles[user_id]["displayName"] = body["display_name"]
    if body.get("raw_body") is not None:  # replay exactly these bytes (e.g. a redelivery)
        raw = body["raw_body"].encode() if isinstance(body["raw_body"], str) else orjson.dumps(body["raw_body"])
        event = orjson.loads(raw)["events"][0] if orjson.loads(raw).get("events") else {}
    else:
        event = {
            "webhookEventId": body.get("webhook_event_id") or _ulid_like(),
            "deliveryContext": {"isRedelivery": bool(body.get("redelivery"))},
            "timestamp": now_ms,
            "source": {"type": "user", "userId": user_id},
            "mode": "active",
        }
        shown: dict | None = None
        if body.get("unfollow"):
            event["type"] = "unfollow"
        elif body.get("follow"):
            event["type"] = "follow"
            event["follow"] = {"isUnblocked": bool(body.get("unblocked"))}
        elif body.get("postback") is not None:
            event["type"] = "postback"
            event["postback"] = {"data": str(body["postback"])}
            shown = {"type": "postback", "data": str(body["postback"])}
        elif body.get("sticker"):
            sticker = body["sticker"] if isinstance(body["sticker"], dict) else {"packageId": "446", "stickerId": "1988"}
            event["type"] = "message"
            event["message"] = {"type": "sticker", "id": _message_id(), "quoteToken": secrets.token_urlsafe(24),
                                "packageId": str(sticker.get("packageId")), "stickerId": str(sticker.get("stickerId")),
                                "stickerResourceType": "STATIC", "keywords": []}
        elif body.get("text") is not None:
            event["type"] = "message"
            event["message"] = {"type": "text", "id": _message_id(), "quoteToken": secrets.token_urlsafe(24), "text": str(body["text"])}
        else:
            raise ValueError("say what the customer does: text, sticker, follow, unfollow or postback")
        if event["type"] != "unfollow":
            token = secrets.token_hex(16)
            event["replyToken"] = token
            with emu.lock:
                emu.reply_tokens[token] = {"user_id": user_id, "issued": time.time(), "used": False}
        raw = orjson.dumps({"destination": emu.config.bot_user_id, "events": [event]})
        if event["type"] == "message" or shown:
            with emu.lock:
                emu._index({"request_id": str(uuid.uuid4()), "endpoint": "webhook", "to": [user_id],
                            "messages": [shown or event["message"]], "retry_key": None, "at": time.time()})
    signature = body.get("signature") or sign(raw, secret)
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(url, content=raw, headers={"content-type": "application/json; charset=utf-8",
                                                              "x-line-signature": signature, "user-agent": "LineBotWebhook/2.0"})
    emu.stats["webhooks_sent"] += 1
    return {"status": answer.status_code, "response": answer.text[:2000], "webhook_event_id": event.get("webhookEventId"),
            "reply_token": event.get("replyToken"), "user_id": user_id, "body": raw.decode(), "signature": signature}


# --- the phone page -------------------------------------------------------------------------------------

_URL = re.compile(r"(https?://[^\s<>\"']+)")


def _linkify(text: str) -> str:
    return _URL.sub(lambda m: f'<a href="{m.group(1)}" target="_blank" rel="noopener">{m.group(1)}</a>', html.escape(text)).replace("\n", "<br>")


def _texts(node: object, out: list) -> None:
    if isinstance(node, dict):
        if node.get("type") == "text" and isinstance(node.get("text"), str):
            out.append(node["text"])
        for value in node.values():
            _texts(value, out)
    elif isinstance(node, list):
        for value in node:
            _texts(value, out)


def _actions(node: object, out: list) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("uri", "postback", "message") and "label" in node:
            out.append(node)
        for value in node.values():
            _actions(value, out)
    elif isinstance(node, list):
        for value in node:
            _actions(value, out)


def _bubble(message: dict, user_id: str) -> str:
    kind = message.get("type")
    if kind == "text":
        inner = _linkify(message.get("text", ""))
    elif kind == "sticker":
        inner = f"<span class=sticker>🧸 sticker {html.escape(str(message.get('packageId')))}/{html.escape(str(message.get('stickerId')))}</span>"
    elif kind == "image":
        inner = f'<img src="{html.escape(message.get("previewImageUrl") or message.get("originalContentUrl") or "")}" alt="image">'
    elif kind == "postback":
        inner = f"<i>▶ {html.escape(message.get('data', ''))}</i>"
    elif kind in ("template", "flex", "imagemap"):
        texts: list[str] = []
        _texts(message.get("template") or message.get("contents") or {}, texts)
        template = message.get("template") or {}
        for key in ("title", "text"):
            if isinstance(template.get(key), str):
                texts.append(template[key])
        inner = f"<b>{html.escape(message.get('altText', ''))}</b>" + "".join(f"<div>{_linkify(t)}</div>" for t in texts[:12])
    else:
        inner = f"<i>{html.escape(str(kind))} message</i>"
    actions: list[dict] = []
    _actions(message.get("template") or message.get("contents") or {}, actions)
    _actions(message.get("quickReply") or {}, actions)
    buttons = []
    for action in actions[:13]:
        label = html.escape(str(action.get("label", "")))
        if action["type"] == "uri":
            buttons.append(f'<a class=btn href="{html.escape(action.get("uri", ""))}" target="_blank" rel="noopener">{label}</a>')
        else:
            field_name = "postback" if action["type"] == "postback" else "text"
            value = html.escape(str(action.get("data") if action["type"] == "postback" else action.get("text", "")))
            buttons.append(f'<form method=post action="/_emulator/phone/{html.escape(user_id)}/say"><button name="{field_name}" value="{value}">{label}</button></form>')
    return inner + ("<div class=actions>" + "".join(buttons) + "</div>" if buttons else "")


def render_phone(emu: Emulator, user_id: str) -> str:
    messages = emu.messages_for(user_id, limit=200)
    name = emu.profiles.get(user_id, {}).get("displayName", user_id)
    rows = []
    for item in messages:
        side = "me" if item["from"] == "user" else "bot"
        when = time.strftime("%H:%M", time.localtime(item["received_at"]))
        rows.append(f'<div class="row {side}"><div class=bubble>{_bubble(item["message"], user_id)}</div><small>{when}</small></div>')
    can_talk = bool(emu.config.webhook_url)
    composer = (f'<form class=composer method=post accept-charset="utf-8" action="/_emulator/phone/{html.escape(user_id)}/say">'
                f'<input name=text placeholder="Aa" autocomplete=off autofocus><button>➤</button></form>'
                if can_talk else "<p class=hint>Set the emulator's webhook URL to talk back (tutti line-emulator --webhook-url …).</p>")
    count = len(messages)
    return f"""<!doctype html><html lang=zh-Hant><head><meta charset=utf-8><meta name=viewport content="width=device-width">
<title>{html.escape(str(name))} · LINE</title><style>
body{{margin:0;background:#222;font-family:system-ui,"Noto Sans TC",sans-serif}}
.phone{{max-width:390px;margin:16px auto;background:#8cabd9;border-radius:28px;overflow:hidden;min-height:90vh;display:flex;flex-direction:column}}
header{{background:#273246;color:#fff;padding:14px 16px;font-weight:600}}
main{{flex:1;padding:12px;overflow-y:auto}}
.row{{display:flex;align-items:flex-end;gap:6px;margin:8px 0}}.row.me{{flex-direction:row-reverse}}
.bubble{{max-width:75%;padding:8px 12px;border-radius:18px;background:#fff;word-break:break-word;font-size:15px}}
.me .bubble{{background:#06c755;color:#fff}}.me .bubble a{{color:#fff}}
.bubble img{{max-width:100%;border-radius:10px}}small{{color:#334;font-size:11px}}
.actions{{display:flex;flex-direction:column;gap:4px;margin-top:8px}}
.actions a,.actions button{{display:block;text-align:center;padding:6px;border:1px solid #ccd;border-radius:8px;background:#fff;color:#06c;text-decoration:none;font-size:14px;width:100%;cursor:pointer}}
.composer{{display:flex;gap:6px;padding:10px;background:#fff}}.composer input{{flex:1;padding:8px 12px;border-radius:18px;border:1px solid #ccc;font-size:15px}}
.composer button{{border:0;background:#06c755;color:#fff;border-radius:50%;width:38px}}.hint{{padding:10px;background:#fff;margin:0;font-size:12px}}
</style></head><body><div class=phone data-count="{count}"><header>{html.escape(emu.config.display_name)} <small style="color:#9ab">· {html.escape(str(name))}</small></header>
<main id=chat>{"".join(rows) or "<p style='color:#fff;text-align:center'>No messages yet</p>"}</main>{composer}</div>
<script>
const chat=document.getElementById('chat');chat.scrollTop=chat.scrollHeight;
setInterval(async()=>{{const r=await fetch('/_emulator/messages?to={html.escape(user_id)}&limit=200');const j=await r.json();
if(j.count!=={count}&&!document.querySelector('.composer input')?.value)location.reload();}},2000);
</script></body></html>"""


def serve(*, host: str = "127.0.0.1", port: int = 8001, config: Config | None = None, store: str | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(config, store=store), host=host, port=port, log_level="warning")
