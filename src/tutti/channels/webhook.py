"""Outbound webhooks: each message is an HTTP POST of `payload["body"]` as JSON to the channel's URL.

Signature (the receiver checks it with `verify`, or by hand):

    X-Tutti-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the signing secret>
    X-Tutti-Delivery: <the delivery key>   (the same on every retry: de-duplicate on it)

The timestamp is inside the signed text, so a captured request cannot be replayed later than the
receiver's tolerance (5 minutes by default). The signing secret (`whsec_…`) is generated when the channel
is connected and shown once in the UI/API answer of the connect call.

2xx → sent; 408/429/5xx and network errors → retry (Retry-After honoured); other 4xx → failed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson

from tutti.channels import http_common
from tutti.channels.base import ChannelInfo, Outcome, Outgoing
from tutti.platform import ratelimit
from tutti.platform.errors import InvalidInput

SIGNATURE_HEADER = "X-Tutti-Signature"
DELIVERY_HEADER = "X-Tutti-Delivery"


def signature(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, *, tolerance: float = 300, now: float | None = None) -> bool:
    """Whether `header` (X-Tutti-Signature) signs this raw body with this secret, within `tolerance` seconds."""
    if not header:
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


class WebhookAdapter:
    def __init__(self, *, channel_id: int | None, config: dict, secrets: dict, workspace_id: int | None = None):
        self.channel_id = channel_id
        self.url = config["url"]
        self.secret = secrets.get("signing_secret") or ""
        self.rate = float(config.get("rate") or 50.0)
        self.bucket = f"webhook:{self.url}"
        self.info = ChannelInfo(kind="webhook", max_batch=1)
        self._client = http_common.client(float(config.get("timeout") or 10.0))

    def _post(self, key: str, body: dict, url: str | None = None) -> httpx.Response:
        raw = orjson.dumps(body)
        headers = {"Content-Type": "application/json", "User-Agent": "Tutti-Webhook/1",
                   SIGNATURE_HEADER: signature(self.secret, raw), DELIVERY_HEADER: key}
        return self._client.post(url or self.url, content=raw, headers=headers)

    def _send_one(self, message: Outgoing) -> Outcome:
        body = (message.payload or {}).get("body")
        if not isinstance(body, dict | list):
            return Outcome(key=message.key, status="failed", reason="the webhook payload has no JSON body", code="invalid")
        # `to` may name another URL (a per-recipient endpoint); an address that is not a URL means ours
        url = message.to if message.to.startswith(("https://", "http://")) else self.url
        ratelimit.acquire(self.bucket, rate=self.rate, burst=max(1, int(self.rate)))
        try:
            response = self._post(message.key, body, url)
        except httpx.HTTPError as error:
            return http_common.network_outcome(message.key, url, error)
        return http_common.outcome_of(message.key, response, response.headers.get("x-request-id"))

    def send(self, messages: list[Outgoing]) -> list[Outcome]:
        return [self._send_one(message) for message in messages]

    def test_connection(self) -> dict:
        try:
            response = self._post(f"test-{int(time.time())}", {"type": "tutti.ping", "at": int(time.time())})
        except httpx.HTTPError as error:
            raise InvalidInput(f"cannot reach {self.url}: {error.__class__.__name__}", field="config.url") from None
        if not 200 <= response.status_code < 300:
            raise InvalidInput(f"the endpoint answered {http_common.reason_of(response)}", field="config.url")
        return {"message": f"{self.url} answered {response.status_code}"}

    def close(self) -> None:
        self._client.close()


def from_channel(*, channel_id: int | None, workspace_id: int | None = None, config: dict, secrets: dict) -> WebhookAdapter:
    return WebhookAdapter(channel_id=channel_id, workspace_id=workspace_id, config=config, secrets=secrets)
