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

The package, a module per job:

- `wire`: call types, size limits, the errors answered, the request body and the write key.
- `message`: the Message a valid message becomes, and the readers of its common fields.
- `parse`: validating a request's messages (`parse_request`); `ecommerce`: the e-commerce spec v2 part.
- `identity_sets`: the contact of every identity set of a batch (`resolve_sets`).
- `storing`: storing messages (`store`); `event_rows`: the event rows, de-duplicated by messageId.
- `intake`: the request path (`accept`, `ingest`).
- `inbox`: the worker (`process_inbound`), the backlog and the batches set aside.
"""

from tutti.audience.tracking.ecommerce import ORDER_COMPLETED, ORDER_STATUS_EVENTS, PRODUCT_EVENTS
from tutti.audience.tracking.identity_sets import resolve_sets
from tutti.audience.tracking.inbox import (
    BUSY_DEFER_SECONDS,
    MAX_ATTEMPTS,
    PROCESS_MAX_MESSAGES,
    backlog,
    process_inbound,
    set_aside,
)
from tutti.audience.tracking.intake import accept, ingest, validate
from tutti.audience.tracking.message import MAX_MESSAGE_ID, SOURCE, Message, occurred_at
from tutti.audience.tracking.parse import parse_message, parse_request
from tutti.audience.tracking.storing import store
from tutti.audience.tracking.wire import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    TYPES,
    TrackingError,
    TrackingTooLarge,
    TrackingUnauthorized,
    unpack_body,
    write_key_of,
)

__all__ = [
    "BUSY_DEFER_SECONDS", "MAX_ATTEMPTS", "MAX_BATCH_BYTES", "MAX_EVENT_BYTES", "MAX_MESSAGE_ID", "ORDER_COMPLETED",
    "ORDER_STATUS_EVENTS", "PROCESS_MAX_MESSAGES", "PRODUCT_EVENTS", "SOURCE", "TYPES", "Message", "TrackingError",
    "TrackingTooLarge", "TrackingUnauthorized", "accept", "backlog", "ingest", "occurred_at", "parse_message",
    "parse_request", "process_inbound", "resolve_sets", "set_aside", "store", "unpack_body", "validate", "write_key_of",
]
