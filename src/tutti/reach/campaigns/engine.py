"""The send engine: a resumable job whose state is the campaign row and its delivery rows.

One sender per campaign at a time (`locks.campaign_lock`). Each round it reads the next range of queued
deliveries in ONE statement (a SELECT over a range of ids), renders them, groups identical payloads (LINE
multicast, up to the channel's max batch) and writes each request's key and members as a `DeliveryBatch`
row — committed BEFORE the provider is called. A multicast group that is not full yet waits in memory for
the next round's rows (never offered, so its rows simply stay queued), so requests carry the most
recipients the provider takes; when no rows are left, or a group has waited a round, it goes as it is.
Then it sends (requests in parallel threads; the channel's rate limiter paces them) and writes the outcomes
in one transaction that also deletes the batch rows: sent, failed with the provider's reason, or back to
queued for a retry with back-off that keeps the request's key on its rows, so the retried request is the
same request (the provider may have accepted it).

What is with the provider is exactly the DeliveryBatch rows. A sender killed at any moment leaves them;
the next sender to get the lock sends each again as that same request (same members, so the same retry
key: LINE answers 409 for a known X-Line-Retry-Key, the adapter reports that as sent; a single's key is its
own delivery's). Everything else is still queued and is read again. Cancel leaves the members of batch rows
alone: they finish. Nothing is sent twice and nothing is lost. Two stages run behind the claim, each in a
stage thread on its own database connection: while one request set's outcomes are written, the next is
with the provider and the one after is read and rendered.

Why a read and batch rows rather than marking rows `sending`: the only write per delivery is then its
outcome (one HOT UPDATE), with no per-request round trips (see docs/campaigns.md, Throughput).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from tutti.channels.base import Outcome, Outgoing
from tutti.platform.collector import fewer_collections
from tutti.platform.config import get_settings
from tutti.platform.db import Database, get_database, utcnow
from tutti.platform.models import Workspace
from tutti.reach.campaigns import content as contents
from tutti.reach.campaigns.idlist import in_ids
from tutti.reach.campaigns.locks import campaign_lock
from tutti.reach.campaigns.models import Campaign, Delivery, DeliveryBatch, Variant

log = logging.getLogger("tutti.campaigns")

CLAIM_SIZE: int | None = None  # deliveries claimed per transaction; None: the campaign_batch_size setting
MAX_ATTEMPTS = 5  # provider calls per delivery before it is failed with the last reason
BACKOFF_SECONDS = 2.0  # first retry waits this long, then doubles
BACKOFF_CAP = 600.0
SEND_THREADS = 8  # provider requests in flight at once (the rate limiter still paces them)
STAGES = 2  # claims sent and recorded at once: one's outcomes are written while the next is with the provider
IDLE_WAIT = 20.0  # a sender waits this long in-process for a back-off to end; longer ones are the tick's


class Row(NamedTuple):
    """A delivery row as a claim reads it (_COLUMNS, in order). A tuple: a claim reads 20,000 of them, and
    built from the driver's own tuples it costs a fraction of an object of any other kind."""

    id: int
    key: str
    contact_id: int
    variant_id: int | None
    channel: str
    channel_id: int | None
    address: str
    attempts: int
    batch_key: str | None
    profile_values: str | None


@dataclass
class Request:
    """One provider request: a group sharing one payload (multicast) or one message."""

    batch_key: str
    channel_id: int
    rows: list[Row]
    grouped: bool
    payload: dict  # what each of `rows` receives


@dataclass
class Result:
    request: Request
    outcomes: list[Outcome]  # one per row; or one for the whole request when `shared`
    shared: bool = False


@dataclass
class Sender:
    database: Database
    campaign_id: int
    workspace_id: int
    adapters: dict = field(default_factory=dict)  # channel id -> adapter
    messages: dict = field(default_factory=dict)  # (variant id, kind) -> content.Message
    pool: ThreadPoolExecutor | None = None
    # whether queued rows that keep a batch key (retries) may exist: looking for them scans the campaign's
    # rows (no index holds the status), so it is done at the start and after a round that asked for a
    # retry, not every claim; and not before the earliest back-off seen ends
    retries_possible: bool = True
    retry_due_at: datetime | None = None
    # this pass over the campaign's delivery ids: (first, last), and the last id claimed up to; the next
    # claim takes the range after it, so it never walks again over the rows already sent
    id_range: tuple[int, int] | None = None
    after_id: int = 0
    # not-yet-full multicast groups, (channel id, payload JSON) -> (payload, rows), read and in no request
    # yet (still queued), and the round in which each group's first row was read (a group waits one round at most)
    pending: dict = field(default_factory=dict)
    pending_since: dict = field(default_factory=dict)
    round: int = 0

    def expect_retries(self) -> None:
        self.retries_possible, self.retry_due_at = True, None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        for adapter in self.adapters.values():
            try:
                adapter.close()
            except Exception:
                log.exception("closing an adapter failed")

    # --- resources ------------------------------------------------------------------------------

    def adapter(self, db: Session, channel_id: int):
        if channel_id not in self.adapters:
            from tutti.channels.service import adapter_for

            self.adapters[channel_id] = adapter_for(db, workspace_id=self.workspace_id, channel_id=channel_id)
        return self.adapters[channel_id]

    def message(self, db: Session, variant_id: int, kind: str) -> contents.Message:
        if (variant_id, kind) not in self.messages:
            campaign = db.get(Campaign, self.campaign_id)
            variant = db.get(Variant, variant_id)
            self.messages[(variant_id, kind)] = contents.prepare(db, campaign=campaign, variant=variant, kind=kind)
        return self.messages[(variant_id, kind)]

    # --- rendering and grouping -----------------------------------------------------------------

    def render(self, db: Session, rows: list[Row]) -> list[dict]:
        """The payload of each row, in order."""
        routes = list(map(_MESSAGE, rows))
        messages = {key: self.message(db, *key) for key in set(routes)}
        variables = frozenset().union(*(m.variables for m in messages.values()))
        stored = _stored_payloads(messages, routes, list(map(_PROFILE, rows)))
        if stored is not None:  # the common case: the values the message is made of were stored at the snapshot
            return stored
        contact_ids = list(map(_CONTACT, rows))
        if variables <= contents.PROFILE_VARIABLES:  # e.g. a name: rendered once per distinct profile values
            fields, values = contents.profile_values(db, workspace_id=self.workspace_id, contact_ids=contact_ids,
                                                     variables=variables)
            found = list(map(values.get, contact_ids))
            if len(messages) == 1:
                shared = next(iter(messages.values())).shared_payloads(fields, found)
                if shared is not None:
                    return shared
            return [messages[route].payload_of(fields, v, contact_id, row_id)
                    for route, v, contact_id, row_id in zip(routes, found, contact_ids, map(_ID, rows), strict=True)]
        contexts = contents.load_contexts(db, workspace_id=self.workspace_id, contact_ids=contact_ids, variables=variables)
        return [messages[(r.variant_id, r.channel)].payload(contexts.get(r.contact_id, {"contact_id": r.contact_id}), r.id)
                for r in rows]

    def group(self, db: Session, rows: list[Row], payloads: list[dict], *, flush: bool) -> list[Request]:
        """Identical payloads on a channel that takes many recipients per request share a request. A full
        group goes at once; a smaller one waits in `pending` for the next round's rows (one round: a
        payload that does not fill a request by then is not common enough to wait for), unless `flush`
        (no more rows to read)."""
        self.round += 1
        # rows by route and payload object first (the renderer hands one object to everyone it rendered
        # alike): the per-row loop only appends; the rest is per bucket
        buckets: dict[tuple, list[Row]] = {}
        first_payload: dict[int, dict] = {}
        for key, row, payload in zip(zip(map(_ROUTE, rows), map(id, payloads)), rows, payloads, strict=True):
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = []
                first_payload[key[1]] = payload
            bucket.append(row)
        requests: list[Request] = []
        singles: list[tuple[Row, dict]] = []
        for ((channel_id, variant_id, kind), payload_id), members in buckets.items():
            payload = first_payload[payload_id]
            if self.message(db, variant_id, kind).per_recipient or self.adapter(db, channel_id).info.max_batch <= 1:
                singles.extend((row, payload) for row in members)  # the bucket shares this payload object
                continue
            size = self.adapter(db, channel_id).info.max_batch
            group_key = (channel_id, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
            group = self.pending.get(group_key)
            if group is None:
                group = self.pending[group_key] = (payload, [])
                self.pending_since[group_key] = self.round
            group[1].extend(members)
            while len(group[1]) >= size:
                requests.append(Request(f"m:{uuid.uuid4()}", channel_id, group[1][:size], True, payload))
                del group[1][:size]
                self.pending_since[group_key] = self.round
            if not group[1]:
                del self.pending[group_key], self.pending_since[group_key]
        for group_key in [k for k, since in self.pending_since.items() if flush or since < self.round]:
            payload, members = self.pending.pop(group_key)
            del self.pending_since[group_key]
            if len(members) > 1:
                requests.append(Request(f"m:{uuid.uuid4()}", group_key[0], members, True, payload))
            else:
                singles.extend((row, payload) for row in members)
        if singles:
            key = f"s:{uuid.uuid4()}"
            requests.extend(Request(key, row.channel_id, [row], False, payload) for row, payload in singles)
        return requests

    # --- provider ---------------------------------------------------------------------------------

    def call(self, request: Request) -> Result:
        adapter = self.adapters[request.channel_id]
        rows = request.rows
        try:
            if request.grouped and hasattr(adapter, "send_shared"):  # one request, one answer: no per-row objects
                outcome = adapter.send_shared(list(map(_KEY, rows)), list(map(_ADDRESS, rows)), request.payload)
                if outcome is not None:
                    return Result(request, [outcome], shared=True)
            outgoing = [Outgoing(key=row.key, to=row.address, payload=request.payload) for row in rows]
            outcomes = adapter.send(outgoing)
            if len(outcomes) != len(outgoing):
                raise RuntimeError(f"the adapter answered {len(outcomes)} outcomes for {len(outgoing)} messages")
        except Exception as error:  # noqa: BLE001 - the provider may or may not have it: retry with the same key
            log.warning("provider request failed", extra={"campaign": self.campaign_id, "error": str(error)})
            outcomes = [Outcome(key=row.key, status="retry", reason=f"{error.__class__.__name__}: {error}"[:500], code="error")
                        for row in rows]
        return Result(request, outcomes)

    def send(self, requests: list[Request]) -> list[Result]:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix=f"campaign-{self.campaign_id}")
        return list(self.pool.map(self.call, requests))


def _stored_payloads(messages: dict, routes: list[tuple], stored: list[str | None]) -> list[dict] | None:
    """Each row's payload from its stored profile values (Message.stored_payloads), per message; None when
    a message cannot be rendered from them."""
    if len(messages) == 1:
        return next(iter(messages.values())).stored_payloads(stored)
    payloads = {}
    for route, message in messages.items():  # variants of an A/B test: a few messages, each over its own rows
        payloads[route] = message.stored_payloads([text for r, text in zip(routes, stored, strict=True) if r == route])
        if payloads[route] is None:
            return None
    taken = {route: iter(each) for route, each in payloads.items()}
    return [next(taken[route]) for route in routes]


# --- claiming -------------------------------------------------------------------------------------


def _rows(db: Session, query) -> list[Row]:
    """`query` selects _COLUMNS."""
    # the driver's tuples, through the connection: a Core statement on the ORM session would build its rows
    # through the ORM loader, and SQLAlchemy's own row objects cost ~1 µs a row more than these
    result = db.connection().execute(query)
    try:
        return list(map(Row._make, result.cursor.fetchall()))
    finally:
        result.close()


_TABLE = Delivery.__table__
_COLUMNS = (_TABLE.c.id, _TABLE.c.key, _TABLE.c.contact_id, _TABLE.c.variant_id, _TABLE.c.channel, _TABLE.c.channel_id,
            _TABLE.c.address, _TABLE.c.attempts, _TABLE.c.batch_key, _TABLE.c.profile_values)
# by position, for the loops over a claim's 20,000 rows (a row's named access costs several times more):
# the id, the contact, (variant, kind) of its message, (channel id, variant, kind) of its route, its key,
# its address, the profile values stored at the snapshot
_ID, _CONTACT, _MESSAGE, _ROUTE, _KEY, _ADDRESS, _PROFILE = (itemgetter(0), itemgetter(2), itemgetter(3, 4), itemgetter(5, 3, 4),
                                                             itemgetter(1), itemgetter(6), itemgetter(9))


def _regroup(rows: list[Row], payloads: list[dict]) -> list[Request]:
    """Rows that carry a request's key (a retry) go out again exactly as before: same members, same keys."""
    by_key: dict[str, list[tuple[Row, dict]]] = {}
    for row, payload in sorted(zip(rows, payloads, strict=True), key=lambda pair: pair[0].id):
        by_key.setdefault(row.batch_key, []).append((row, payload))
    return [request for batch_key, members in by_key.items() for request in _requests_of(batch_key, members)]


def _requests_of(batch_key: str, members: list[tuple[Row, dict]]) -> list[Request]:
    """One request key's rows (with their payloads) as the requests they went as: a multicast ("m:") is one
    request, sent with its first member's payload; single sends ("s:") are one request each."""
    if batch_key.startswith("m:"):
        return [Request(batch_key, members[0][0].channel_id, [row for row, _ in members], True, members[0][1])]
    return [Request(batch_key, row.channel_id, [row], False, payload) for row, payload in members]


def _hold_campaign(db: Session, campaign_id: int) -> str | None:
    """The campaign's status, read under the campaign row's weakest lock, held until the claim commits. Pause
    and cancel lock the row FOR UPDATE, so they wait for a claim in progress and a claim that follows them sees
    their status: a claim never writes a request for rows a cancel has just cancelled, and a cancel sees
    every request a claim wrote (the rows it leaves alone). `record` only updates the row's counters, which
    KEY SHARE lets it do. (SQLite: every write transaction holds the database's one write lock.)"""
    query = select(Campaign.status).where(Campaign.id == campaign_id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    return db.scalar(query)


def _retry_rows(sender: Sender, db: Session, limit: int, now: datetime) -> list[Row]:
    """Queued rows that keep a batch key (a retry) and whose back-off is over: whole batches, with the key
    they had."""
    if not sender.retries_possible or (sender.retry_due_at is not None and now < sender.retry_due_at):
        return []
    batches = db.execute(select(Delivery.batch_key, func.min(Delivery.not_before)).where(
        Delivery.campaign_id == sender.campaign_id, Delivery.status == "queued", Delivery.batch_key.is_not(None))
        .group_by(Delivery.batch_key)).all()
    if not batches:
        sender.retries_possible = False
        return []
    due = [key for key, not_before in batches if not_before is None or not_before <= now][:max(1, limit // 500)]
    if not due:
        sender.retry_due_at = min(not_before for _, not_before in batches)
        return []
    sender.retry_due_at = None
    return _rows(db, select(*_COLUMNS).where(_TABLE.c.campaign_id == sender.campaign_id, _TABLE.c.batch_key.in_(due),
                                             _TABLE.c.status == "queued"))


def _take_fresh(sender: Sender, db: Session, limit: int, *, new_pass: bool) -> tuple[list[Row], bool]:
    """The never-sent queued rows among the next `limit` delivery ids (a campaign's deliveries are numbered
    together when its audience is taken, so a range of ids is a range of its rows). Read, not marked: what
    is with the provider is the requests written as DeliveryBatch rows, and the pass never reads a range
    twice. A new pass (from the first id again, for rows that went back to queued) starts only when
    `new_pass` allows it — when no request is in flight, since those rows are still `queued`. Returns the
    rows and whether this pass over the ids is over."""
    if sender.id_range is None:
        if not new_pass:
            return [], True
        first, last = db.execute(select(func.min(_TABLE.c.id), func.max(_TABLE.c.id))
                                 .where(_TABLE.c.campaign_id == sender.campaign_id)).one()
        sender.id_range, sender.after_id = (first or 0, last or 0), (first or 1) - 1
    rows: list[Row] = []
    while not rows and sender.after_id < sender.id_range[1]:
        start, sender.after_id = sender.after_id, min(sender.after_id + limit, sender.id_range[1])
        rows = _rows(db, select(*_COLUMNS).where(_TABLE.c.campaign_id == sender.campaign_id, _TABLE.c.id > start,
                                                 _TABLE.c.id <= sender.after_id, _TABLE.c.status == "queued",
                                                 _TABLE.c.batch_key.is_(None)).order_by(_TABLE.c.id))
    over = sender.after_id >= sender.id_range[1]
    if over:  # the next claim starts a new pass, in case rows went back to queued behind this one
        sender.id_range = None
    return rows, over


def claim(sender: Sender, *, limit: int | None = None, reread: bool = True) -> list[Request]:
    """Read the next deliveries, group them into requests, write the requests (DeliveryBatch rows) and
    commit; returns the requests. `reread` (nothing of this sender in flight) allows reading rows that
    may already have been read: retries and a new pass."""
    limit = limit or CLAIM_SIZE or get_settings().campaign_batch_size  # read at call time
    with sender.database.session() as db:
        if _hold_campaign(db, sender.campaign_id) != "sending":
            return []  # paused or cancelled since the sender looked: the loop sees it and stops
        # retries first, whole requests with the key they had: the provider may hold the first attempt
        retries = _retry_rows(sender, db, limit, utcnow()) if reread else []
        if retries:
            requests = _regroup(retries, sender.render(db, retries))
        else:
            requests = []
            while not requests:  # a round whose rows all wait in pending groups reads the next one at once
                fresh, over = _take_fresh(sender, db, limit, new_pass=reread)
                requests.extend(sender.group(db, fresh, sender.render(db, fresh) if fresh else [], flush=over))
                if over:
                    break
        _write_batches(db, sender.campaign_id, requests)
        for request in requests:
            sender.adapter(db, request.channel_id)
        return requests


def _write_batches(db: Session, campaign_id: int, requests: list[Request]) -> None:
    """Each request's key and members, in the claim's transaction: a multicast's, and the singles that share
    a key (each goes as its own request, keyed by its own delivery's key)."""
    members: dict[str, tuple[int, list[int]]] = {}
    for request in requests:
        members.setdefault(request.batch_key, (request.channel_id, []))[1].extend(map(_ID, request.rows))
    if members:
        db.execute(insert(DeliveryBatch), [{"key": key, "campaign_id": campaign_id, "channel_id": channel_id, "delivery_ids": ids}
                                           for key, (channel_id, ids) in members.items()])


def leftovers(sender: Sender) -> list[Request]:
    """The requests a dead sender wrote and did not record, rebuilt with the same members and keys: it may
    have made them, so they go again as the same requests (the provider knows a retry key it has seen)."""
    with sender.database.session() as db:
        batches = db.execute(select(DeliveryBatch.key, DeliveryBatch.delivery_ids)
                             .where(DeliveryBatch.campaign_id == sender.campaign_id)).all()
        if not batches:
            return []
        ids = [i for _, members in batches for i in members]
        rows = {row.id: row for row in _rows(db, select(*_COLUMNS).where(in_ids(_TABLE.c.id, ids, db.get_bind().dialect.name),
                                                                         _TABLE.c.status == "queued"))}
        payloads = dict(zip(rows, sender.render(db, list(rows.values())), strict=True))
        requests, empty = [], []
        for key, members in batches:
            found = [(rows[i], payloads[i]) for i in members if i in rows]
            if found:
                requests.extend(_requests_of(key, found))
            else:
                empty.append(key)
        if empty:  # nothing of it is left to send (not expected: its outcome and its deletion commit together)
            db.execute(delete(DeliveryBatch).where(DeliveryBatch.key.in_(empty)))
        for request in requests:
            sender.adapter(db, request.channel_id)
    return requests


# --- outcomes -------------------------------------------------------------------------------------


def backoff(attempts: int, retry_after: float | None) -> float:
    wait = min(BACKOFF_CAP, BACKOFF_SECONDS * (2 ** max(0, attempts - 1)))
    return max(wait, retry_after or 0.0)


def record(sender: Sender, results: list[Result]) -> dict:
    """Write the outcomes of sent requests, and the campaign's counters, in one transaction."""
    from tutti.channels import service as channels

    now = utcnow()
    sent = failed = 0
    with sender.database.session() as db:
        dialect = db.get_bind().dialect.name
        singles: list[dict] = []
        bounced: list[tuple[str, str]] = []
        for result in results:
            request = result.request
            statuses = {o.status for o in result.outcomes}
            if request.grouped and len(statuses) == 1 and "retry" not in statuses:
                outcome = result.outcomes[0]
                db.execute(update(_TABLE).where(_members(request.rows, dialect), _TABLE.c.status == "queued")
                           .values(**_final(outcome, now), attempts=_TABLE.c.attempts + 1, batch_key=request.batch_key))
                sent += len(request.rows) if outcome.status == "sent" else 0
                failed += len(request.rows) if outcome.status == "failed" else 0
                continue
            outcomes = result.outcomes * len(request.rows) if result.shared else result.outcomes
            for row, outcome in zip(request.rows, outcomes, strict=True):
                attempts = row.attempts + 1
                if outcome.status == "retry" and attempts >= MAX_ATTEMPTS:
                    outcome = Outcome(key=outcome.key, status="failed", provider_id=outcome.provider_id,
                                      reason=f"gave up after {attempts} attempts: {outcome.reason or 'no answer'}",
                                      code=outcome.code)
                if outcome.status == "retry":
                    sender.expect_retries()
                    values = {"status": "queued", "not_before": now + timedelta(seconds=backoff(attempts, outcome.retry_after)),
                              "error_code": outcome.code, "error_reason": outcome.reason, "sent_at": None, "provider_id": None}
                else:
                    values = {**_final(outcome, now), "not_before": None}
                    sent += outcome.status == "sent"
                    failed += outcome.status == "failed"
                    if row.channel == "email" and channels.is_bounce(outcome):
                        bounced.append((row.address, outcome.reason or outcome.code or "bounced"))
                # the request's key stays on its rows: a retry goes out as this same request
                singles.append({"b_id": row.id, "attempts": attempts, "batch_key": request.batch_key, **values})
        if singles:
            _update_rows(db, singles)
        db.execute(delete(DeliveryBatch).where(DeliveryBatch.key.in_({result.request.batch_key for result in results})))
        for address, reason in bounced:  # the address is dead: no later campaign tries it (consent `bounced`)
            channels.mark_bounced(db, workspace_id=sender.workspace_id, address=address, reason=reason)
        db.execute(update(Campaign).where(Campaign.id == sender.campaign_id)
                   .values(sent_count=Campaign.sent_count + sent, failed_count=Campaign.failed_count + failed, heartbeat_at=now,
                           waiting=None))
    return {"sent": sent, "failed": failed}


def _members(rows: list[Row], dialect: str):
    """The condition that selects these delivery rows: one id range when they are one (the snapshot numbers
    deliveries in the order their messages group, so a multicast's members usually are), which PostgreSQL
    walks as one index range instead of looking up each id."""
    ids = list(map(_ID, rows))
    first, last = min(ids), max(ids)
    if last - first + 1 == len(ids):  # ids are unique: as many as the range holds means exactly the range
        return _TABLE.c.id.between(first, last)
    return in_ids(_TABLE.c.id, ids, dialect)


def _final(outcome: Outcome, now: datetime) -> dict:
    if outcome.status == "sent":
        return {"status": "sent", "sent_at": now, "provider_id": outcome.provider_id, "error_code": None, "error_reason": None}
    return {"status": "failed", "sent_at": None, "provider_id": outcome.provider_id, "error_code": outcome.code,
            "error_reason": (outcome.reason or "the provider refused it")[:2000]}


def _update_rows(db: Session, rows: list[dict]) -> None:
    from sqlalchemy import bindparam

    columns = ("status", "attempts", "batch_key", "not_before", "error_code", "error_reason", "sent_at", "provider_id")
    shapes: dict[tuple, list[dict]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for shape, members in shapes.items():
        values = {c: bindparam(c) for c in columns if c in shape}
        statement = update(_TABLE).where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.status == "queued").values(**values)
        db.execute(statement, members)


# --- the job ----------------------------------------------------------------------------------------


def in_quiet_hours(quiet: dict | None, zone: str, now: datetime) -> bool:
    if not quiet or not quiet.get("start") or not quiet.get("end"):
        return False
    local = now.astimezone(ZoneInfo(zone or "Asia/Taipei")).strftime("%H:%M")
    start, end = quiet["start"], quiet["end"]
    if start == end:
        return False
    return start <= local < end if start < end else (local >= start or local < end)


def run(campaign_id: int, *, database: Database | None = None) -> str:
    """The job body. Returns what it did: busy, sent, paused, cancelled, waiting (quiet hours or back-off)."""
    database = database or get_database()
    with campaign_lock(database, campaign_id) as held:
        if not held:
            return "busy"
        with fewer_collections():
            return _run(database, campaign_id)


def _run(database: Database, campaign_id: int) -> str:
    from tutti.reach.campaigns import service

    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            return "gone"
        workspace_id = campaign.workspace_id
        if campaign.status == "sending" and campaign.snapshot_at is None:
            service.take_audience(db, campaign=campaign)
    sender = Sender(database, campaign_id, workspace_id)
    try:
        stale = leftovers(sender)
        if stale:
            log.info("resending deliveries a stopped sender left", extra={"campaign": campaign_id, "requests": len(stale)})
            record(sender, sender.send(stale))
        inflight: deque = deque()  # stages submitted, oldest first
        while True:
            state = _state(database, campaign_id)
            requests = claim(sender, reread=not inflight) if state == "go" else []
            while inflight and (len(inflight) >= STAGES or not requests):
                inflight.popleft().result()
            if requests:
                inflight.append(_submit(sender, requests))
                continue
            if state != "go":  # rows waiting in pending groups were never offered: they stay queued
                return _settle(database, campaign_id, state)
            wait = _next_due(database, campaign_id)
            if wait is None:
                return _settle(database, campaign_id, "done")
            if wait > IDLE_WAIT:
                _set_waiting(database, campaign_id, "retry_backoff")
                return "waiting"
            # queued rows remain that the last claim did not look for: a retry the stage thread asked for
            # while that claim ran (it may have just cleared the flag)
            sender.expect_retries()
            time.sleep(max(0.05, wait))
    finally:
        sender.close()


_STAGE = ThreadPoolExecutor(max_workers=4, thread_name_prefix="campaign-stage")


def _submit(sender: Sender, requests: list[Request]):
    return _STAGE.submit(_send_and_record, sender, requests)


def _send_and_record(sender: Sender, requests: list[Request]) -> dict:
    """The stage thread writes the outcomes too, on its own connection, while the main thread claims."""
    return record(sender, sender.send(requests))


def _state(database: Database, campaign_id: int) -> str:
    with database.read_session() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None or campaign.status != "sending":
            return campaign.status if campaign else "gone"
        zone = db.scalar(select(Workspace.timezone).where(Workspace.id == campaign.workspace_id))
        if in_quiet_hours(campaign.quiet_hours, zone, utcnow()):
            return "quiet_hours"
        return "go"


def _next_due(database: Database, campaign_id: int) -> float | None:
    """Seconds until the next queued delivery may go (0: now), None when nothing is queued."""
    with database.read_session() as db:
        earliest = db.execute(select(func.count(), func.min(Delivery.not_before)).where(
            Delivery.campaign_id == campaign_id, Delivery.status == "queued")).one()
    count, not_before = earliest
    if not count:
        return None
    if not_before is None:
        return 0.0
    return max(0.0, (not_before - utcnow()).total_seconds())


def _set_waiting(database: Database, campaign_id: int, why: str) -> None:
    with database.session() as db:
        db.execute(update(Campaign).where(Campaign.id == campaign_id).values(waiting=why, heartbeat_at=utcnow()))


def _settle(database: Database, campaign_id: int, state: str) -> str:
    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        if campaign is None:
            return "gone"
        if state == "quiet_hours":
            campaign.waiting = "quiet_hours"
            return "waiting"
        if state == "done" and campaign.status == "sending":
            campaign.status, campaign.finished_at, campaign.waiting = "sent", utcnow(), None
            return "sent"
        if campaign.status == "cancelled" and campaign.finished_at is None:
            # rows a request in flight at the cancel put back for a retry: nothing sends them now
            count = db.execute(update(_TABLE).where(_TABLE.c.campaign_id == campaign_id, _TABLE.c.status == "queued")
                               .values(status="cancelled", not_before=None)).rowcount
            campaign.cancelled_count = (campaign.cancelled_count or 0) + count
            campaign.finished_at = utcnow()
        return campaign.status
