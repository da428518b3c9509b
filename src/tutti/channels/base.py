"""The one interface every channel adapter implements (LINE, e-mail, SMS, outbound webhook).

Callers (broadcasts, journeys, the inbox) hand an adapter a list of `Outgoing` messages that already have
their delivery row: `key` is that row's idempotency key, and the adapter passes it to the provider where
the provider supports one (LINE's X-Line-Retry-Key), so a retry after a crash is a no-op at the provider.
The adapter answers one `Outcome` per message, in order; it never raises for a per-recipient problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

OutcomeStatus = Literal["sent", "failed", "retry"]


@dataclass(frozen=True)
class Outgoing:
    key: str  # the delivery's idempotency key (a UUID string); the same on every retry
    to: str  # the address on this channel: LINE user id, e-mail address, E.164 phone, webhook URL
    payload: dict  # channel-specific, as rendered by reach.templates (LINE: {"messages": [...]}, e-mail: subject/html/text/headers, SMS: {"text": ...})


@dataclass(frozen=True)
class Outcome:
    key: str
    status: OutcomeStatus  # sent: the provider accepted it; failed: permanent, never retry; retry: transient
    provider_id: str | None = None  # the provider's request/message id, kept on the delivery
    reason: str | None = None  # the provider's own words for a failure, kept per recipient
    code: str | None = None  # the provider's status/error code (e.g. "429", "400", "550")
    retry_after: float | None = None  # seconds the provider asked us to wait


@dataclass(frozen=True)
class ChannelInfo:
    kind: str  # line, email, sms, webhook
    max_batch: int = 1  # how many recipients one provider request may carry (LINE multicast: 500)
    extra: dict = field(default_factory=dict)


class ChannelAdapter(Protocol):
    """One provider account. Built from a `channel` row's decrypted credentials."""

    info: ChannelInfo

    def send(self, messages: list[Outgoing]) -> list[Outcome]:
        """Send, one outcome per message in the same order; messages with identical payloads may be
        grouped into one provider request (LINE multicast), and then share its outcome."""
        ...

    # Adapters whose provider takes many recipients per request (max_batch > 1: LINE) also have
    #     send_shared(keys, to, payload) -> Outcome | None
    # one request carrying one payload to every address in `to`, answered by ONE outcome for all of them
    # (a broadcast builds no object per recipient), or None when these recipients cannot share a request.

    def test_connection(self) -> None:
        """Raise `tutti.platform.errors.InvalidInput` naming what is wrong when the credentials do not work."""
        ...

    def close(self) -> None:
        """Release pooled connections (SMTP, HTTP)."""
        ...
