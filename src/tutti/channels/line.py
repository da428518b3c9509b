"""LINE adapter, through the official line-bot-sdk v3 (`linebot.v3.messaging`).

`send` turns a list of `Outgoing` into as few LINE requests as LINE allows:

- recipients whose payloads are identical go out as **multicasts** of at most 500 user ids;
- the rest (and groups of one) go out as **push** messages.

Every request carries an `X-Line-Retry-Key`, so a retried request is a no-op at LINE (409 with
`x-line-accepted-request-id`, which counts as sent):

- push: the delivery key itself (a UUID; any other string is turned into one with uuid5);
- multicast: uuid5 of the smallest delivery key of the group. **The caller must form groups so that a
  retried group is the same group**: persist which deliveries went into which request (reach's
  `delivery.batch_key`) before sending, and on a retry send exactly that batch again, in one `send()` call,
  with the same payload. A batch whose request was accepted is then answered 409 and marked sent; a batch
  LINE never accepted is sent for the first time.

Outcomes: 2xx and 409-accepted → sent (provider_id = LINE's request id); 429 and 5xx, and network errors →
retry (retry_after from a Retry-After header when LINE gives one); any other 4xx → failed with LINE's own
message (and its details) as the reason. Every request first takes a token from the channel's rate limiter
(`tutti.platform.ratelimit`), shared by every worker.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import orjson
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from tutti.channels.base import ChannelInfo, Outcome, Outgoing
from tutti.platform import ratelimit
from tutti.platform.errors import InvalidInput

log = logging.getLogger("tutti.channels.line")

MAX_RECIPIENTS = 500
MAX_MESSAGES = 5
RETRY_NAMESPACE = uuid.UUID("5d2b7f4e-9a51-4c55-8b36-2f1f4c1e7a01")  # Tutti's namespace for derived retry keys
TIMEOUT = (5, 30)  # connect, read seconds


_USER_ID = re.compile(r"U[0-9a-f]{32}")
_USER_IDS = re.compile(r"(?:U[0-9a-f]{32}\n)+")  # a newline-joined list of them, checked in one match


def _is_user_id(value: str) -> bool:
    return _USER_ID.fullmatch(value) is not None


def retry_key_for(key: str) -> str:
    """The X-Line-Retry-Key of one delivery: the key itself when it is a UUID (LINE demands one)."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(RETRY_NAMESPACE, key))


def group_retry_key(keys: list[str]) -> str:
    """The X-Line-Retry-Key of a multicast: derived from its smallest delivery key, so the same group
    (in any order) gets the same key."""
    return str(uuid.uuid5(RETRY_NAMESPACE, "multicast:" + min(keys)))


@dataclass
class Answer:
    status: str
    provider_id: str | None = None
    reason: str | None = None
    code: str | None = None
    retry_after: float | None = None


def _header(headers, name: str) -> str | None:
    if not headers:
        return None
    try:
        return headers.get(name)
    except AttributeError:
        return dict(headers).get(name)


def _reason(body: str | bytes | None, fallback: str) -> str:
    """LINE's own words: its `message`, then each detail as `property: message`."""
    if not body:
        return fallback
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (body.decode(errors="replace") if isinstance(body, bytes) else str(body))[:500]
    message = str(data.get("message") or fallback)
    details = data.get("details") or []
    if details:
        message += ": " + "; ".join(f"{d.get('property', '')}: {d.get('message', '')}".strip(": ") for d in details[:10])
    return message[:500]


def _sdk_reason(error: Exception) -> str:
    """The SDK's own model check (pydantic) in one line: `invalid LINE message: messages: ensure …`."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors()]
        return ("invalid LINE message: " + "; ".join(parts))[:500]
    return ("invalid LINE message: " + " ".join(str(error).split()))[:500]


def _from_exception(error: ApiException) -> Answer:
    status = int(error.status or 0)
    code = str(status)
    if status == 409:
        accepted = _header(error.headers, "x-line-accepted-request-id")
        if accepted:
            return Answer("sent", provider_id=accepted, code="409")
        return Answer("failed", reason=_reason(error.body, "conflict"), code=code)
    retry_after = _header(error.headers, "retry-after")
    try:
        wait = float(retry_after) if retry_after else None
    except ValueError:
        wait = None
    if status == 429 or status >= 500 or status == 0:
        return Answer("retry", reason=_reason(error.body, error.reason or "LINE is unavailable"), code=code, retry_after=wait)
    return Answer("failed", reason=_reason(error.body, error.reason or "rejected by LINE"), code=code)


class _Multicast(MulticastRequest):
    """A MulticastRequest whose JSON is built directly: the SDK's generic model dump walks the 500 ids one by
    one through pydantic, which cost several times the HTTP call. Same wire format."""

    def to_dict(self) -> dict:
        return {"to": list(self.to), "messages": [m.to_dict() for m in self.messages], "notificationDisabled": bool(self.notification_disabled)}


class LineAdapter:
    def __init__(self, *, channel_id: int | None, config: dict, secrets: dict, workspace_id: int | None = None):
        self.channel_id = channel_id
        self.workspace_id = workspace_id
        self.config = config
        self.base_url = (config.get("api_base_url") or "https://api.line.me").rstrip("/")
        self.channel_secret = secrets.get("channel_secret")
        self.push_rate = float(config.get("push_rate") or 2000.0)
        self.multicast_rate = float(config.get("multicast_rate") or 200.0)
        # buckets are per LINE channel (its limits are), not per Tutti row: two rows of one OA share them
        account = config.get("channel_id") or f"row{channel_id}"
        self.bucket = f"line:{account}"
        self.info = ChannelInfo(kind="line", max_batch=MAX_RECIPIENTS, extra={"max_messages": MAX_MESSAGES})
        configuration = Configuration(host=self.base_url, access_token=secrets.get("access_token") or "")
        self._client = ApiClient(configuration)
        self.api = MessagingApi(self._client)

    # --- sending -----------------------------------------------------------------------------------

    def _acquire(self, endpoint: str) -> None:
        rate = self.multicast_rate if endpoint == "multicast" else self.push_rate
        # a small burst keeps requests spread out across the second, so LINE's per-second count never trips
        ratelimit.acquire(f"{self.bucket}:{endpoint}", rate=rate, burst=max(1, int(rate / 10)))

    def _call(self, endpoint: str, request, retry_key: str | None) -> Answer:
        self._acquire(endpoint)
        try:
            if endpoint == "multicast":
                answer = self.api.multicast_with_http_info(request, x_line_retry_key=retry_key, _request_timeout=TIMEOUT)
            else:
                answer = self.api.push_message_with_http_info(request, x_line_retry_key=retry_key, _request_timeout=TIMEOUT)
        except ApiException as error:
            return _from_exception(error)
        except (Urllib3Error, OSError) as error:
            return Answer("retry", reason=f"cannot reach LINE at {self.base_url}: {error.__class__.__name__}", code="network")
        return Answer("sent", provider_id=_header(answer.headers, "x-line-request-id"), code=str(answer.status_code))

    def _push(self, message: Outgoing) -> Answer:
        try:
            request = PushMessageRequest.from_dict({"to": message.to, "messages": _messages(message.payload)})
        except (ValueError, TypeError) as error:  # the SDK's own model check (pydantic) before anything is sent
            return Answer("failed", reason=_sdk_reason(error), code="invalid")
        return self._call("push", request, retry_key_for(message.key))

    def _multicast(self, retry_key: str, to: list[str], payload: dict) -> Answer:
        try:
            # the messages go through the SDK's models (its checks); the 500 user ids were checked by the
            # caller, so the request is assembled without validating each id again (that cost more than the
            # HTTP call itself)
            messages = PushMessageRequest.from_dict({"to": to[0], "messages": _messages(payload)}).messages
        except (ValueError, TypeError) as error:
            return Answer("failed", reason=_sdk_reason(error), code="invalid")
        request = _Multicast.construct(to=list(to), messages=messages, notification_disabled=False,
                                       custom_aggregation_units=None)
        return self._call("multicast", request, retry_key)

    def send_shared(self, keys: list[str], to: list[str], payload: dict) -> Outcome | None:
        """One multicast of `payload` to `to` (LINE user ids, at most 500), answered once for the whole
        request; None when they cannot share one (an address that is not a user id, too many): use `send`."""
        if not 1 < len(to) <= MAX_RECIPIENTS or not _USER_IDS.fullmatch("\n".join(to) + "\n"):
            return None
        retry_key = group_retry_key(keys)
        answer = self._multicast(retry_key, to, payload)
        return Outcome(retry_key, answer.status, answer.provider_id, answer.reason, answer.code, answer.retry_after)

    def send(self, messages: list[Outgoing]) -> list[Outcome]:
        answers: list[Answer | None] = [None] * len(messages)  # by position: a broadcast hands 500 at a time
        groups: dict[bytes, list[int]] = {}
        singles: list[int] = []
        dumped: dict[int, bytes] = {}  # callers usually hand one payload object to a whole group: dump it once
        for index, message in enumerate(messages):
            if not _is_user_id(message.to):  # multicast takes user ids only; push says what is wrong
                singles.append(index)
                continue
            text = dumped.get(id(message.payload))
            if text is None:
                text = dumped[id(message.payload)] = orjson.dumps(message.payload, option=orjson.OPT_SORT_KEYS)
            groups.setdefault(text, []).append(index)
        for group in groups.values():
            for start in range(0, len(group), MAX_RECIPIENTS):
                chunk = group[start : start + MAX_RECIPIENTS]
                if len(chunk) == 1:
                    singles.extend(chunk)
                    continue
                answer = self._multicast(group_retry_key([messages[i].key for i in chunk]), [messages[i].to for i in chunk],
                                         messages[chunk[0]].payload)
                for index in chunk:
                    answers[index] = answer
        for index in singles:
            answers[index] = self._push(messages[index])
        return [Outcome(m.key, a.status, a.provider_id, a.reason, a.code, a.retry_after) for m, a in zip(messages, answers, strict=True)]

    def reply(self, reply_token: str, messages: list[dict]) -> Outcome:
        """Answer with a reply token (free, valid once for about a minute). failed = use push instead."""
        try:
            request = ReplyMessageRequest.from_dict({"replyToken": reply_token, "messages": messages})
        except (ValueError, TypeError) as error:
            return Outcome(key=reply_token, status="failed", reason=_sdk_reason(error), code="invalid")
        self._acquire("reply")
        try:
            answer = self.api.reply_message_with_http_info(request, _request_timeout=TIMEOUT)
        except ApiException as error:
            a = _from_exception(error)
            return Outcome(key=reply_token, status=a.status, reason=a.reason, code=a.code, retry_after=a.retry_after)
        except (Urllib3Error, OSError) as error:
            return Outcome(key=reply_token, status="retry", reason=f"cannot reach LINE: {error.__class__.__name__}", code="network")
        return Outcome(key=reply_token, status="sent", provider_id=_header(answer.headers, "x-line-request-id"), code=str(answer.status_code))

    # --- account -----------------------------------------------------------------------------------

    def profile(self, user_id: str) -> dict | None:
        """The customer's display name, picture and language; None when LINE does not know them (not a friend)."""
        try:
            found = self.api.get_profile(user_id, _request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {"display_name": found.display_name, "picture_url": found.picture_url, "language": found.language,
                "status_message": found.status_message}

    def test_connection(self) -> dict:
        try:
            info = self.api.get_bot_info(_request_timeout=TIMEOUT)
        except ApiException as error:
            if error.status in (401, 403):
                raise InvalidInput(f"LINE rejected the channel access token: {_reason(error.body, 'unauthorized')}",
                                   field="credentials.access_token") from None
            raise InvalidInput(f"LINE answered {error.status}: {_reason(error.body, error.reason or '')}", field="config.api_base_url") from None
        except (Urllib3Error, OSError) as error:
            raise InvalidInput(f"cannot reach LINE at {self.base_url}: {error.__class__.__name__}", field="config.api_base_url") from None
        return {"bot_user_id": info.user_id, "basic_id": info.basic_id, "display_name": info.display_name,
                "message": f"connected to {info.display_name} ({info.basic_id})"}

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing must not hide the real outcome
            log.debug("closing the LINE client failed", exc_info=True)


def _messages(payload: dict) -> list:
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ValueError("the payload has no messages (expected {\"messages\": [...]})")
    return messages


def from_channel(*, channel_id: int | None, workspace_id: int | None = None, config: dict, secrets: dict) -> LineAdapter:
    return LineAdapter(channel_id=channel_id, workspace_id=workspace_id, config=config, secrets=secrets)


def reply(adapter: LineAdapter, reply_token: str, messages: list[dict]) -> Outcome:
    """Reply with LINE's free reply token; an outcome `failed` (token used or expired) means push instead."""
    return adapter.reply(reply_token, messages)
