"""What the HTTP adapters (SMS provider, outbound webhook) share: one pooled client and the mapping from
an HTTP answer to an Outcome (2xx sent; 408, 429 and 5xx retry; other 4xx failed; network error retry)."""

from __future__ import annotations

import httpx

from tutti.channels.base import Outcome


def client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10), follow_redirects=False)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def reason_of(response: httpx.Response) -> str:
    """The provider's own words: a JSON `message`/`error`/`detail`, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for name in ("message", "error_message", "error", "detail", "reason"):
            value = data.get(name)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return f"{response.status_code} {value}"[:500]
    text = response.text.strip()
    return f"{response.status_code} {text or response.reason_phrase}"[:500]


def outcome_of(key: str, response: httpx.Response, provider_id: str | None = None) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(key=key, status="sent", provider_id=provider_id, code=str(status))
    if status in (408, 425, 429) or status >= 500:
        return Outcome(key=key, status="retry", reason=reason_of(response), code=str(status), retry_after=retry_after(response))
    return Outcome(key=key, status="failed", reason=reason_of(response), code=str(status))


def network_outcome(key: str, url: str, error: Exception) -> Outcome:
    return Outcome(key=key, status="retry", reason=f"cannot reach {url}: {error.__class__.__name__}: {error}"[:500], code="network")
