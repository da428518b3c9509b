"""Handlers of inbound LINE events, registered by the parts that act on them.

The LINE webhook (tutti.channels.webhooks) calls every handler here for each new message or postback
event, inside the transaction that records the event as handled (so each event is handled exactly once:
if a handler raises, nothing of that event is kept and LINE's redelivery brings it again).

    def handler(db, *, workspace_id: int, channel_id: int, contact_id: int, event: dict) -> None: ...

`event` is LINE's webhook event object as LINE sent it (message with id/type/text/quoteToken, replyToken,
source, webhookEventId, deliveryContext …). Converse appends its handler from tutti/converse/line_intake.py.
"""

from __future__ import annotations

from collections.abc import Callable

LineEventHandler = Callable[..., None]

LINE_EVENT_HANDLERS: list[LineEventHandler] = []


def register(handler: LineEventHandler) -> LineEventHandler:
    """Add a handler once (importing a module twice must not make it answer twice); usable as a decorator."""
    if handler not in LINE_EVENT_HANDLERS:
        LINE_EVENT_HANDLERS.append(handler)
    return handler
