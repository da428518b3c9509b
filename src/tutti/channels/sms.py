"""SMS through a generic HTTP provider: one JSON POST per message.

The channel's `body_template` is a JSON object whose string values may hold `{to}`, `{text}`, `{key}`
(the delivery key, for providers that de-duplicate) and `{sender}`; the default is
`{"to": "{to}", "text": "{text}", "idempotency_key": "{key}"}`. The delivery key is also sent as the
`Idempotency-Key` header. The secret `auth_value` goes into the `auth_header` (default Authorization,
e.g. "Bearer sk_…"). The provider's message id is read from the JSON answer at `id_field` (dotted path).

2xx → sent; 408/429/5xx and network errors → retry (Retry-After honoured); other 4xx → failed with the
provider's message.
"""

from __future__ import annotations

import httpx

from tutti.channels import http_common
from tutti.channels.base import ChannelInfo, Outcome, Outgoing
from tutti.platform import ratelimit
from tutti.platform.errors import InvalidInput

DEFAULT_TEMPLATE = {"to": "{to}", "text": "{text}", "idempotency_key": "{key}"}


def segments(text: str) -> int:
    """How many SMS parts a text takes: 160 GSM characters (153 per part when split), or 70 UCS-2
    characters (67 per part) as soon as one character is outside ASCII (a Chinese text)."""
    if all(ord(c) < 128 for c in text):
        return 1 if len(text) <= 160 else -(-len(text) // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


def _fill(template, values: dict):
    if isinstance(template, str):
        if template in {f"{{{k}}}" for k in values}:  # a whole value: keep its type
            return values[template[1:-1]]
        for name, value in values.items():
            template = template.replace(f"{{{name}}}", str(value if value is not None else ""))
        return template
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def _dig(data, path: str):
    for part in path.split(".") if path else []:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


class SmsAdapter:
    def __init__(self, *, channel_id: int | None, config: dict, secrets: dict, workspace_id: int | None = None):
        self.channel_id = channel_id
        self.url = config["url"]
        self.auth_header = config.get("auth_header") or "Authorization"
        self.auth_value = secrets.get("auth_value")
        self.template = config.get("body_template") or DEFAULT_TEMPLATE
        self.id_field = config.get("id_field") or "id"
        self.sender = config.get("sender")
        self.rate = float(config.get("rate") or 10.0)
        self.bucket = f"sms:{self.url}"
        self.info = ChannelInfo(kind="sms", max_batch=1)
        self._client = http_common.client(30.0)

    def _headers(self, key: str | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_value:
            headers[self.auth_header] = self.auth_value
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def body(self, message: Outgoing) -> dict:
        text = (message.payload or {}).get("text") or ""
        return _fill(self.template, {"to": message.to, "text": text, "key": message.key, "sender": self.sender})

    def _send_one(self, message: Outgoing) -> Outcome:
        if not (message.payload or {}).get("text"):
            return Outcome(key=message.key, status="failed", reason="the SMS has no text", code="invalid")
        ratelimit.acquire(self.bucket, rate=self.rate, burst=max(1, int(self.rate)))
        try:
            response = self._client.post(self.url, json=self.body(message), headers=self._headers(message.key))
        except httpx.HTTPError as error:
            return http_common.network_outcome(message.key, self.url, error)
        provider_id = None
        if 200 <= response.status_code < 300:
            try:
                found = _dig(response.json(), self.id_field)
                provider_id = None if found is None else str(found)[:200]
            except ValueError:
                provider_id = None
        return http_common.outcome_of(message.key, response, provider_id)

    def send(self, messages: list[Outgoing]) -> list[Outcome]:
        return [self._send_one(message) for message in messages]

    def test_connection(self) -> dict:
        """Providers have no common "who am I" call: any answer but 401/403 to a GET of the URL means it
        is reachable and the credentials are not refused outright."""
        try:
            response = self._client.get(self.url, headers=self._headers())
        except httpx.HTTPError as error:
            raise InvalidInput(f"cannot reach {self.url}: {error.__class__.__name__}", field="config.url") from None
        if response.status_code in (401, 403):
            raise InvalidInput(f"the provider refused the credentials: {http_common.reason_of(response)}", field="credentials.auth_value")
        return {"message": f"{self.url} answered {response.status_code}"}

    def close(self) -> None:
        self._client.close()


def from_channel(*, channel_id: int | None, workspace_id: int | None = None, config: dict, secrets: dict) -> SmsAdapter:
    return SmsAdapter(channel_id=channel_id, workspace_id=workspace_id, config=config, secrets=secrets)
