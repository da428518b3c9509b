"""The demo brand: a Taiwanese lifestyle shop, generated from a seed at any scale.

`build` creates 好日子生活選物 Hao Rizi Living: members with zh-TW names, LINE ids, e-mails and phones,
consent with its history, custom attributes, a catalogue, twelve months of orders with Taiwan's
shopping calendar (11.11, 6.18, Mother's Day, Lunar New Year, Christmas), web events and tags. The
benchmarks use the same generator at a million contacts, so the bulk data is written set-based: rows
are generated in chunks of contacts and written with one executemany (SQLite) or COPY (PostgreSQL) per
table and chunk, never one statement per row.

Idempotency. The demo workspace is found by its `demo.build` audit entry; a `demo.complete` entry is
written when the last chunk is in. Building again with the same seed and size changes nothing. A
different seed or size is refused (use `reset=True`, `tutti demo --reset`): silently replacing a brand
someone may be demoing from would be a surprise. A build that was interrupted (no `demo.complete`) is
deleted and built again.

Speed. Contact ids are reserved for the whole build up front, so a second (forked) process can generate
chunks ahead while this one writes; order ids are taken per chunk in the transaction that writes them,
and every other id is left to the database. One transaction per chunk of 5,000 contacts.

Determinism. Each chunk has its own `random.Random` seeded from (seed, chunk number), and the chunk size
is fixed, so the same seed always gives the same brand. Dates are relative to `today`; without one,
nothing is dated after the present second, so builds at different moments differ in their last hours.

The owner signs in as owner@demo.tutti.local with the password `demo_password(seed)` (hao-rizi-demo-42
for the default seed): a local demo, printed by the CLI.
"""

from __future__ import annotations

import bisect
import json
import math
import multiprocessing
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from itertools import accumulate

import orjson
from sqlalchemy import MetaData, delete, insert, select, text
from sqlalchemy.orm import Session

from tutti.audience.models import AttributeDefinition, Contact, Product, Tag
from tutti.platform import audit, security, workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import Database
from tutti.platform.errors import Conflict, InvalidInput
from tutti.platform.models import AuditLog, User, Workspace

WORKSPACE_NAME = "好日子生活選物 Hao Rizi Living"
OWNER_EMAIL = "owner@demo.tutti.local"
OWNER_NAME = "好日子店長 Demo Owner"
VERSION = 2  # bump when the generator changes what a seed produces
CHUNK = 5_000  # contacts per chunk; part of what a seed means, so it is fixed
PARALLEL_MIN_CHUNKS = 4  # from this many chunks on, rows are generated in a second process
TZ_OFFSET = 8 * 3600  # Asia/Taipei, no daylight saving
HISTORY_DAYS = 2_400  # members joined up to ~6.5 years ago
WINDOW_DAYS = 365  # orders and events: the twelve months ending today
SOURCE = "demo"
ANONYMOUS_SHARE = 0.10  # web visitors who never registered
LINE_SHARE, EMAIL_SHARE, PHONE_SHARE = 0.70, 0.60, 0.80

Progress = Callable[[str, int, int], None]

STEP_LABELS = {
    "workspace": "品牌與帳號 workspace",
    "catalogue": "商品目錄 catalogue",
    "members": "會員、訂單與事件 members, orders, events",
    "finish": "統計與完成 finishing",
    "reset": "刪除舊的示範品牌 removing the old demo",
}

TAGS = [
    ("VIP", "金卡與黑卡會員 Gold and black tier members"),
    ("新會員", "加入 30 天內的會員 Members who joined in the last 30 days"),
    ("沉睡會員", "180 天沒有購買 No purchase in 180 days"),
    ("高價值", "近 12 個月消費 NT$20,000 以上 Spent NT$20,000+ in 12 months"),
    ("母親節檔期", "母親節檔期購買 Bought during the Mother's Day campaign"),
    ("雙11購買", "雙 11 檔期購買 Bought during the 11.11 sale"),
]
ATTRIBUTES = [
    ("tier", "會員等級 Tier", "string"),
    ("points", "點數 Points", "number"),
    ("member_since", "入會日 Member since", "date"),
    ("favourite_categories", "偏好分類 Favourite categories", "list"),
    ("marketing_opt_in", "同意行銷 Marketing opt-in", "boolean"),
]
TIERS = ((30_000, "黑卡"), (12_000, "金卡"), (4_000, "銀卡"), (0, "一般"))

LUNAR_NEW_YEAR = {
    2022: date(2022, 2, 1), 2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29),
    2026: date(2026, 2, 17), 2027: date(2027, 2, 6), 2028: date(2028, 1, 26), 2029: date(2029, 2, 13),
    2030: date(2030, 2, 3), 2031: date(2031, 1, 23), 2032: date(2032, 2, 11), 2033: date(2033, 1, 31),
}
WEEKDAY = (0.9, 0.88, 0.93, 1.0, 1.12, 1.38, 1.3)  # Monday first
HOURS_ONLINE = (0.35, 0.2, 0.1, 0.06, 0.05, 0.07, 0.15, 0.3, 0.45, 0.6, 0.75, 0.85,
                1.1, 1.0, 0.85, 0.8, 0.8, 0.85, 0.95, 1.1, 1.45, 1.6, 1.4, 0.8)
HOURS_STORE = tuple(1.0 if 11 <= h <= 21 else 0.0 for h in range(24))
HOURS_1111 = tuple(4.0 if h == 0 else w for h, w in enumerate(HOURS_ONLINE))  # the midnight rush

CONTACT_COLUMNS = ("id", "workspace_id", "name", "gender", "birthday", "locale", "timezone", "city", "attributes",
                   "created_at", "updated_at", "last_seen_at")
IDENTITY_COLUMNS = ("workspace_id", "contact_id", "kind", "value", "source", "created_at")
CONSENT_COLUMNS = ("contact_id", "channel", "workspace_id", "status", "source", "updated_at")
CONSENT_CHANGE_COLUMNS = ("workspace_id", "contact_id", "channel", "status", "source", "at")
CONTACT_TAG_COLUMNS = ("contact_id", "tag_id", "workspace_id", "applied_at", "expires_at")
TAG_APPLICATION_COLUMNS = ("workspace_id", "contact_id", "tag_id", "applied_at", "source")
ORDER_COLUMNS = ("id", "workspace_id", "contact_id", "external_id", "status", "currency", "subtotal", "discount",
                 "shipping", "tax", "total", "refunded_total", "channel", "placed_at", "updated_at", "properties")
ORDER_LINE_COLUMNS = ("order_id", "workspace_id", "product_id", "sku", "name", "category", "quantity", "unit_price",
                      "status")
EVENT_COLUMNS = ("workspace_id", "contact_id", "kind", "name", "occurred_at", "received_at", "properties", "context",
                 "source", "message_id")
TABLE_COLUMNS = {
    "contact": CONTACT_COLUMNS, "identity": IDENTITY_COLUMNS, "consent": CONSENT_COLUMNS,
    "consent_change": CONSENT_CHANGE_COLUMNS, "contact_tag": CONTACT_TAG_COLUMNS,
    "tag_application": TAG_APPLICATION_COLUMNS, "orders": ORDER_COLUMNS, "order_line": ORDER_LINE_COLUMNS,
    "event": EVENT_COLUMNS,
}
BULK_TABLES = tuple(TABLE_COLUMNS)


@dataclass
class DemoInfo:
    """What the CLI prints, and what the benchmark reports."""

    workspace_id: int
    workspace_name: str
    email: str
    password: str
    contacts: int
    seed: int
    created: bool  # False when the existing demo brand was kept as it was
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table
    table_seconds: dict[str, float] = field(default_factory=dict)  # time spent writing each table
    step_seconds: dict[str, float] = field(default_factory=dict)
    generate_seconds: float = 0.0  # time spent making rows in Python


def demo_password(seed: int) -> str:
    return f"hao-rizi-demo-{seed}"


def _data(name: str) -> dict:
    return json.loads(resources.files("tutti.audience").joinpath("demo_data", name).read_text(encoding="utf-8"))


def _cumulative(weights) -> list[float]:
    return list(accumulate(weights))


# --- finding, keeping and removing the demo workspace ---------------------------------------------------------


def find_demo(db: Session) -> tuple[int, dict | None] | None:
    """The demo workspace id and the detail of its completion entry (None while unfinished)."""
    workspace_id = db.scalar(
        select(AuditLog.workspace_id).where(AuditLog.action == "demo.build").order_by(AuditLog.id.desc()).limit(1)
    )
    if workspace_id is None:
        return None
    complete = db.scalar(
        select(AuditLog.detail)
        .where(AuditLog.workspace_id == workspace_id, AuditLog.action == "demo.complete")
        .order_by(AuditLog.id.desc())
        .limit(1)
    )
    return workspace_id, complete


def delete_workspace_data(database: Database, workspace_id: int) -> None:
    """Remove a workspace and every row that carries its id, child tables first.

    Tables are reflected from the database, so tables of every part are covered. On PostgreSQL the
    per-row foreign-key checks are skipped when the role may do so (superuser): every table of the
    workspace is emptied anyway, and those checks scan tables without an index on contact_id.
    """
    with database.session() as db:
        # mark unfinished first: if this is interrupted, the next build finishes the job
        db.execute(delete(AuditLog).where(AuditLog.workspace_id == workspace_id, AuditLog.action == "demo.complete"))
    metadata = MetaData()
    metadata.reflect(bind=database.engine)
    tables = [t for t in reversed(metadata.sorted_tables) if "workspace_id" in t.c and t.name != "workspace"]
    with database.session() as db:
        if database.dialect == "postgresql" and db.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")):
            db.execute(text("SET LOCAL session_replication_role = replica"))
        for table in tables:
            db.execute(table.delete().where(table.c.workspace_id == workspace_id))
        if database.dialect == "postgresql":
            db.execute(text("SET LOCAL session_replication_role = origin"))
        db.execute(delete(Workspace).where(Workspace.id == workspace_id))


def _ensure_owner(db: Session, *, workspace_id: int, password: str) -> None:
    """The owner can sign in with the printed password, whatever happened to the account since."""
    user = db.scalar(select(User).where(User.email == OWNER_EMAIL))
    if user is None:
        user = workspaces.create_user(db, email=OWNER_EMAIL, password=password, name=OWNER_NAME)
    elif user.disabled_at is not None or not security.verify_password(user.password_hash, password):
        user.password_hash = security.hash_password(password)
        user.disabled_at = None
    if workspaces.role_of(db, workspace_id=workspace_id, user_id=user.id) != "owner":
        workspaces.add_member(db, workspace_id=workspace_id, user_id=user.id, role="owner", actor=Actor.cli())


# --- the build --------------------------------------------------------------------------------------------------


def build(
    database: Database,
    *,
    contacts: int = 20_000,
    seed: int = 42,
    reset: bool = False,
    today: date | None = None,
    progress: Progress | None = None,
) -> DemoInfo:
    """Build the demo brand (or keep the one that is there); see the module docstring."""
    if contacts < 1 or contacts > 50_000_000:
        raise InvalidInput("contacts must be between 1 and 50,000,000", field="contacts")
    report = progress or (lambda step, done, total: None)
    password = demo_password(seed)
    steps: dict[str, float] = {}

    with database.session() as db:
        found = find_demo(db)
    if found is not None:
        workspace_id, complete = found
        if complete is not None and not reset:
            if complete.get("seed") == seed and complete.get("contacts") == contacts:
                with database.session() as db:
                    _ensure_owner(db, workspace_id=workspace_id, password=password)
                    name = db.scalar(select(Workspace.name).where(Workspace.id == workspace_id))
                return DemoInfo(workspace_id, name, OWNER_EMAIL, password, contacts, seed, created=False,
                                rows=complete.get("rows", {}))
            raise Conflict(
                f"示範品牌已存在（{complete.get('contacts')} 位聯絡人，seed {complete.get('seed')}）；"
                f"要以 {contacts} 位、seed {seed} 重建請加上 --reset。 "
                f"The demo brand exists with {complete.get('contacts')} contacts and seed {complete.get('seed')}; "
                f"run `tutti demo --reset` to rebuild it with {contacts} contacts and seed {seed}.",
                field="contacts",
            )
        started = time.perf_counter()
        report(STEP_LABELS["reset"], 0, 1)
        delete_workspace_data(database, workspace_id)
        report(STEP_LABELS["reset"], 1, 1)
        steps["reset"] = time.perf_counter() - started

    started = time.perf_counter()
    report(STEP_LABELS["workspace"], 0, 1)
    with database.session() as db:
        workspace = workspaces.create_workspace(db, name=WORKSPACE_NAME, timezone="Asia/Taipei", locale="zh-TW", currency="TWD")
        workspace_id = workspace.id
        _ensure_owner(db, workspace_id=workspace_id, password=password)
        audit.record(db, workspace_id=workspace_id, actor=Actor.cli(), action="demo.build", target_kind="workspace",
                     target_id=workspace_id, detail={"seed": seed, "contacts": contacts, "version": VERSION})
    report(STEP_LABELS["workspace"], 1, 1)
    steps["workspace"] = time.perf_counter() - started

    started = time.perf_counter()
    report(STEP_LABELS["catalogue"], 0, 1)
    brand = _Brand(seed=seed, workspace_id=workspace_id, today=today, dialect=database.dialect, contacts=contacts)
    with database.session() as db:
        brand.write_catalogue(db)
    report(STEP_LABELS["catalogue"], 1, 1)
    steps["catalogue"] = time.perf_counter() - started

    started = time.perf_counter()
    totals = _Totals()
    label = STEP_LABELS["members"]
    report(label, 0, contacts)
    contact_base = _reserve_contacts(database, workspace_id, contacts)
    last_chunk = (contacts - 1) // CHUNK
    tick = time.perf_counter()
    for chunk_no, first, chunk, seconds in _chunks(brand, contacts, contact_base):
        totals.wait_seconds += time.perf_counter() - tick
        totals.generate_seconds += seconds
        placeholder = contact_base + contacts - 1 if chunk_no == last_chunk and database.dialect == "sqlite" else None
        _write_chunk(database, workspace_id, chunk, totals, placeholder)
        report(label, min(contacts, first + CHUNK), contacts)
        tick = time.perf_counter()
    rows, table_seconds, generate_seconds = totals.rows, totals.seconds, totals.generate_seconds
    steps["members.waiting_for_rows"] = totals.wait_seconds
    steps["members.commits"] = totals.commit_seconds
    steps["members"] = time.perf_counter() - started

    for part, build_part in _part_builders():
        started = time.perf_counter()
        build_part(database, workspace_id=workspace_id, seed=seed, today=brand.today, contacts=contacts, report=report)
        steps[part] = time.perf_counter() - started

    started = time.perf_counter()
    report(STEP_LABELS["finish"], 0, 1)
    with database.session() as db:
        if database.dialect == "postgresql":
            for table in BULK_TABLES:
                db.execute(text(f'ANALYZE "{table}"'))
        else:
            db.execute(text("ANALYZE"))
            db.execute(text("PRAGMA cache_size=-65536"))  # the defaults of tutti.platform.db
            db.execute(text("PRAGMA wal_autocheckpoint=1000"))
        audit.record(db, workspace_id=workspace_id, actor=Actor.cli(), action="demo.complete", target_kind="workspace",
                     target_id=workspace_id,
                     detail={"seed": seed, "contacts": contacts, "version": VERSION, "rows": rows,
                             "today": brand.today.isoformat()})
    report(STEP_LABELS["finish"], 1, 1)
    steps["finish"] = time.perf_counter() - started
    return DemoInfo(workspace_id, WORKSPACE_NAME, OWNER_EMAIL, password, contacts, seed, created=True, rows=rows,
                    table_seconds=table_seconds, step_seconds=steps, generate_seconds=generate_seconds)


def _part_builders():
    """Each part's demo content (channels wired to the LINE emulator, segments, campaigns, the knowledge base,
    conversations): `tutti.<part>.demo.build_demo(database, *, workspace_id, seed, today, contacts, report)`,
    run after the members and orders exist."""
    import importlib

    builders = []
    for part in ("channels", "reach", "converse"):
        try:
            module = importlib.import_module(f"tutti.{part}.demo")
        except ModuleNotFoundError as error:
            if error.name != f"tutti.{part}.demo":
                raise
            continue
        builders.append((part, module.build_demo))
    return builders


# --- writing ----------------------------------------------------------------------------------------------------


_worker_brand: _Brand | None = None


def _init_worker(brand: _Brand) -> None:
    global _worker_brand
    _worker_brand = brand


def _generate_in_worker(chunk_no: int, first: int, count: int, contact_base: int) -> tuple[dict, float]:
    started = time.perf_counter()
    chunk = _worker_brand.generate_chunk(chunk_no, first, count, contact_base)
    return chunk, time.perf_counter() - started


def _chunks(brand: _Brand, contacts: int, contact_base: int):
    """(chunk number, first contact index, rows, seconds spent generating), in order.

    Large builds generate in a separate process that runs a few chunks ahead, so Python makes rows on
    one core while the database writes on the other (threads would take turns on the GIL)."""
    plan = [(n, first, min(CHUNK, contacts - first), contact_base + first)
            for n, first in enumerate(range(0, contacts, CHUNK))]
    if len(plan) < PARALLEL_MIN_CHUNKS or "fork" not in multiprocessing.get_all_start_methods():
        for n, first, count, base in plan:
            started = time.perf_counter()
            chunk = brand.generate_chunk(n, first, count, base)
            yield n, first, chunk, time.perf_counter() - started
        return
    # fork, not spawn: spawn re-runs the caller's __main__. The child only computes rows: it never uses the
    # inherited database connections and leaves with os._exit, so they stay the parent's.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_init_worker, initargs=(brand,)) as pool:
        pending: deque = deque()
        for n, first, count, base in plan:
            pending.append((n, first, pool.submit(_generate_in_worker, n, first, count, base)))
            if len(pending) > 3:
                n0, first0, future = pending.popleft()
                chunk, seconds = future.result()
                yield n0, first0, chunk, seconds
        while pending:
            n0, first0, future = pending.popleft()
            chunk, seconds = future.result()
            yield n0, first0, chunk, seconds


@dataclass
class _Totals:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BULK_TABLES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BULK_TABLES, 0.0))
    generate_seconds: float = 0.0
    wait_seconds: float = 0.0  # waiting for the generating process (and taking its rows in)
    commit_seconds: float = 0.0


def _reserve_contacts(database: Database, workspace_id: int, count: int) -> int:
    """Ids for all the demo's contacts, taken before any is written, so chunks can be generated ahead."""
    with database.session() as db:
        base = _Writer(db).reserve_ids("contact", count)
        if database.dialect == "sqlite":
            # SQLite gives the next row max(id) + 1: a placeholder at the end of the range keeps anyone
            # else's new contacts out of it until the last chunk replaces it
            db.execute(insert(Contact).values(id=base + count - 1, workspace_id=workspace_id, attributes={}))
    return base


def _write_chunk(database: Database, workspace_id: int, chunk: dict[str, list[tuple]], totals: _Totals,
                 placeholder: int | None) -> None:
    """One chunk in one transaction. Orders get their ids here, in the transaction that writes them."""
    session = database.session()
    db = session.__enter__()
    try:
        writer = _Writer(db)
        writer.prepare()
        if placeholder is not None:
            db.execute(delete(Contact).where(Contact.workspace_id == workspace_id, Contact.id == placeholder))
        if chunk["orders"]:
            order_base = writer.reserve_ids("orders", len(chunk["orders"]))
            chunk["orders"] = [(order_base + row[0], *row[1:]) for row in chunk["orders"]]
            chunk["order_line"] = [(order_base + row[0], *row[1:]) for row in chunk["order_line"]]
        for table in BULK_TABLES:
            tick = time.perf_counter()
            writer.write(table, TABLE_COLUMNS[table], chunk[table])
            totals.seconds[table] += time.perf_counter() - tick
            totals.rows[table] += len(chunk[table])
    except BaseException:
        if not session.__exit__(*sys.exc_info()):
            raise
        return
    tick = time.perf_counter()
    session.__exit__(None, None, None)  # the commit (and on SQLite the WAL checkpoint)
    totals.commit_seconds += time.perf_counter() - tick


class _Writer:
    """Bulk writes on the session's own connection and transaction: executemany on SQLite, COPY on PostgreSQL."""

    BATCH = 20_000

    def __init__(self, db: Session):
        self.db = db
        self.connection = db.connection()
        self.dialect = self.connection.dialect.name
        self.raw = self.connection.connection.dbapi_connection

    def prepare(self) -> None:
        if self.dialect == "sqlite":
            # a bigger page cache for this transaction: the event indexes are written in time order per
            # contact, which touches pages all over the (workspace, name, time) index
            self.raw.execute("PRAGMA cache_size=-400000")
            # checkpoint every ~400 MB of WAL rather than after every chunk: the index pages each chunk
            # touches are then copied into the database file once per many chunks (restored in `finish`)
            self.raw.execute("PRAGMA wal_autocheckpoint=100000")
        else:
            self.db.execute(text("SET LOCAL synchronous_commit = off"))

    def reserve_ids(self, table: str, count: int) -> int:
        """The first of `count` consecutive ids no one else will use: under SQLite's write lock, max(id) + 1;
        on PostgreSQL a range taken from the table's sequence in one statement."""
        if self.dialect == "sqlite":
            return self.db.scalar(text(f'SELECT coalesce(max(id), 0) + 1 FROM "{table}"'))
        last = self.db.scalar(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), nextval(pg_get_serial_sequence(:t, 'id')) + :n - 1)"),
            {"t": table, "n": count},
        )
        return last - count + 1

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        names = ", ".join(f'"{c}"' for c in columns)
        if self.dialect == "sqlite":
            statement = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
            cursor = self.raw.cursor()
            for start in range(0, len(rows), self.BATCH):
                cursor.executemany(statement, rows[start:start + self.BATCH])
            cursor.close()
            return
        with self.raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)


# --- generating -------------------------------------------------------------------------------------------------


def _second_sunday_of_may(year: int) -> date:
    first = date(year, 5, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7)


def day_weight(day: date) -> float:
    """How busy the shop is on a day, relative to an ordinary Thursday: Taiwan's shopping calendar."""
    w = WEEKDAY[day.weekday()]
    m, d = day.month, day.day
    if m == 11:
        w *= {11: 7.0, 10: 2.5, 12: 1.3}.get(d, 1.6 if d < 10 else 1.0)
    elif m == 12:
        w *= 2.2 if d == 12 else 1.5 if 10 <= d <= 24 else 1.0
    elif m == 6:
        w *= 3.0 if d == 18 else 1.4 if 10 <= d <= 17 else 1.0
    elif m == 2 and 7 <= d <= 13:
        w *= 1.3
    elif m == 9 and 20 <= d <= 27:
        w *= 1.5  # the brand's anniversary sale
    mothers_day = _second_sunday_of_may(day.year)
    if timedelta(days=1) <= mothers_day - day <= timedelta(days=14):
        w *= 1.9
    new_year = LUNAR_NEW_YEAR.get(day.year)
    if new_year is not None:
        before = (new_year - day).days
        if 2 <= before <= 21:
            w *= 1.7
        elif -3 <= before <= 1:
            w *= 0.6  # shops and couriers rest
    return w


class _Brand:
    """Everything fixed for one build (catalogue, calendar, formats) and the chunk generator."""

    def __init__(self, *, seed: int, workspace_id: int, today: date | None, dialect: str, contacts: int):
        self.seed = seed
        self.total = contacts
        self.workspace_id = workspace_id
        now = datetime.now(UTC)
        if today is None:
            today = (now + timedelta(seconds=TZ_OFFSET)).date()
            self.now_tod = int((now.timestamp() + TZ_OFFSET) % 86400)  # events stop at the present second
        else:
            self.now_tod = 86399
        self.today = today
        names = _data("names.json")
        places = _data("places.json")
        catalogue = _data("catalogue.json")

        self.surnames = [(zh, en) for zh, en, _ in names["surnames"]]
        self.surname_cum = _cumulative(w for _, _, w in names["surnames"])
        self.female = names["female"]
        self.male = names["male"]
        self.english = {"female": names["english_female"], "male": names["english_male"]}
        self.domains = [d for d, _ in names["email_domains"]]
        self.domain_cum = _cumulative(w for _, w in names["email_domains"])
        urban = {"台北市": 1.4, "新北市": 1.15, "台中市": 1.1, "新竹市": 1.2}
        self.cities = [zh for zh, _, _ in places["cities"]]
        self.city_cum = _cumulative(w * urban.get(zh, 1.0) for zh, _, w in places["cities"])
        self.stores = places["stores"]
        self.payments = [p for p, _ in places["payments"]]
        self.payment_cum = _cumulative(w for _, w in places["payments"])
        self.catalogue = catalogue

        # day indexes: 0 is the local midnight HISTORY_DAYS before today; today is HISTORY_DAYS
        self.today_index = HISTORY_DAYS
        self.window_start = HISTORY_DAYS - WINDOW_DAYS + 1
        self.first_day = today - timedelta(days=HISTORY_DAYS)
        origin = datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=UTC).timestamp() - TZ_OFFSET
        self.origin = int(origin)  # epoch seconds of local midnight of day 0
        utc_day0 = self.origin // 86400
        self.offset = self.origin - utc_day0 * 86400
        suffix = ".000000" if dialect == "sqlite" else "+00"
        start = date(1970, 1, 1) + timedelta(days=utc_day0)
        self.day_text = [(start + timedelta(days=i)).isoformat() + " " for i in range(HISTORY_DAYS + 40)]
        self.tod_text = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{suffix}" for s in range(86400)]

        days = [self.first_day + timedelta(days=i) for i in range(HISTORY_DAYS + 1)]
        trend = [0.85 + 0.3 * max(0, i - self.window_start) / WINDOW_DAYS for i in range(HISTORY_DAYS + 1)]
        self.day_cum = _cumulative(day_weight(d) * t for d, t in zip(days, trend, strict=True))
        self.dates = days
        self.double11 = {i for i, d in enumerate(days) if d.month == 11 and d.day <= 11}
        self.day_1111 = {i for i, d in enumerate(days) if d.month == 11 and d.day == 11}
        self.mothers = {i for i, d in enumerate(days)
                        if timedelta(0) <= _second_sunday_of_may(d.year) - d <= timedelta(days=14)}
        self.gift_season = set(self.mothers)
        for i, d in enumerate(days):
            new_year = LUNAR_NEW_YEAR.get(d.year)
            if (d.month == 12 and 10 <= d.day <= 24) or (new_year is not None and 2 <= (new_year - d).days <= 21):
                self.gift_season.add(i)
        self.sale_days = self.double11 | {i for i, d in enumerate(days) if (d.month, d.day) in {(6, 18), (12, 12)}}
        self.hour_cum = {kind: _cumulative(h) for kind, h in
                         (("online", HOURS_ONLINE), ("store", HOURS_STORE), ("1111", HOURS_1111))}

        self.products: list[dict] = []  # filled by write_catalogue, with ids
        self.category_names = [c["name"] for c in catalogue["categories"]]
        self.category_cum = _cumulative(c["weight"] for c in catalogue["categories"])
        self.pages = catalogue["pages"]
        self.page_cum = _cumulative(p[3] for p in self.pages)

    # -- formats --

    def ts(self, t: int) -> str:
        """Seconds since day 0's local midnight, as the UTC timestamp text the database stores."""
        a = t + self.offset
        return self.day_text[a // 86400] + self.tod_text[a % 86400]

    # -- the small tables --

    def write_catalogue(self, db: Session) -> None:
        rng = random.Random(f"tutti-demo:{self.seed}:catalogue")
        created = datetime.fromtimestamp(self.origin + (self.window_start - 30) * 86400, UTC)
        brands = self.catalogue["brands"]
        brand_cum = _cumulative(b[2] for b in brands)
        product_rows = []
        for category in self.catalogue["categories"]:
            for n, (zh, en, price) in enumerate(category["items"], start=1):
                brand = rng.choices(brands, cum_weights=brand_cum)[0]
                for v, (vzh, ven, factor) in enumerate(category["variants"], start=1):
                    sku = f"HR-{category['slug'][:4].upper()}-{n:02d}{v}"
                    product_rows.append({
                        "workspace_id": self.workspace_id, "sku": sku, "name": f"{brand[0]} {zh} {vzh}",
                        "category": category["name"], "brand": f"{brand[0]} {brand[1]}",
                        "price": float(price if factor == 1 else round(price * factor, -1)),
                        "currency": "TWD", "url": f"https://shop.haorizi.example/products/{sku.lower()}",
                        "image_url": f"https://shop.haorizi.example/images/{sku.lower()}.jpg",
                        "properties": {"name_en": f"{brand[1]} {en} ({ven})", "category_en": category["en"],
                                       "category_slug": category["slug"]},
                        "created_at": created,
                    })
        db.execute(insert(Product), product_rows)
        ids = dict(db.execute(select(Product.sku, Product.id).where(Product.workspace_id == self.workspace_id)).all())
        by_category: dict[str, list[dict]] = {c: [] for c in self.category_names}
        for row in product_rows:
            product = {"id": ids[row["sku"]], "sku": row["sku"], "name": row["name"], "category": row["category"],
                       "price": row["price"], "url": row["url"]}
            product["viewed"] = orjson.dumps({
                "product_id": product["sku"], "sku": product["sku"], "name": product["name"],
                "category": product["category"], "price": product["price"], "currency": "TWD", "url": product["url"],
            }).decode()
            product["page"] = orjson.dumps({
                "path": row["url"].removeprefix("https://shop.haorizi.example"), "url": row["url"],
                "title": row["name"], "category": row["category"],
            }).decode()
            self.products.append(product)
            by_category[row["category"]].append(product)
        # popularity within a category: a few best sellers, a long tail (the order is fixed by the seed)
        self.by_category = {}
        for name, products in by_category.items():
            rng.shuffle(products)
            self.by_category[name] = (products, _cumulative(1 / (rank + 1) ** 0.9 for rank in range(len(products))))

        db.execute(insert(AttributeDefinition), [
            {"workspace_id": self.workspace_id, "key": key, "label": label, "type": type_} for key, label, type_ in ATTRIBUTES
        ])
        db.execute(insert(Tag), [{"workspace_id": self.workspace_id, "name": n, "description": d} for n, d in TAGS])
        self.tag_ids = dict(db.execute(select(Tag.name, Tag.id).where(Tag.workspace_id == self.workspace_id)).all())
        self.page_json = [
            orjson.dumps({"path": path, "url": f"https://shop.haorizi.example{path}", "title": title}).decode()
            for path, _, title, _ in self.pages
        ]

    # -- one chunk of contacts --

    def generate_chunk(self, chunk_no: int, first: int, count: int, contact_base: int) -> dict[str, list[tuple]]:
        rng = random.Random(f"tutti-demo:{self.seed}:{VERSION}:{chunk_no}")
        out = {table: [] for table in BULK_TABLES}
        state = _ChunkState(rng, out, self, chunk_no)
        for k in range(count):
            index = first + k
            contact_id = contact_base + k
            if rng.random() < ANONYMOUS_SHARE:
                state.visitor(contact_id)
            else:
                state.member(index, contact_id)
        return out


class _ChunkState:
    """Generation of one chunk: kept in one object so the hot loops use attributes, not arguments."""

    def __init__(self, rng: random.Random, out: dict[str, list], brand: _Brand, chunk_no: int):
        self.rng = rng
        self.r = rng.random
        self.b = brand
        self.ws = brand.workspace_id
        self.contacts = out["contact"]
        self.identities = out["identity"]
        self.consents = out["consent"]
        self.consent_changes = out["consent_change"]
        self.contact_tags = out["contact_tag"]
        self.tag_applications = out["tag_application"]
        self.orders = out["orders"]
        self.lines = out["order_line"]
        self.events = out["event"]
        self.message_prefix = f"demo-{brand.seed}-{chunk_no:05d}-"
        self.order_prefix = f"{chunk_no:04d}"
        self.now = brand.today_index * 86400 + brand.now_tod

    # -- small helpers --

    def pick_day(self, lo: int, hi: int) -> int:
        """A day index in [lo, hi], following the shop's calendar."""
        cum = self.b.day_cum
        low = cum[lo - 1] if lo > 0 else 0.0
        return min(hi, max(lo, bisect.bisect_left(cum, low + self.r() * (cum[hi] - low))))

    def pick_time(self, day: int, kind: str = "online") -> int:
        if kind == "online" and day in self.b.day_1111:
            kind = "1111"
        cum = self.b.hour_cum[kind]
        hour = bisect.bisect_left(cum, self.r() * cum[-1])
        t = day * 86400 + hour * 3600 + int(self.r() * 3600)
        return min(t, self.now - int(self.r() * 3600)) if t > self.now else t

    def event(self, contact_id: int, kind: str, name: str, t: int, properties: str, source: str, context=None) -> None:
        stamp = self.b.ts(t)
        self.events.append((self.ws, contact_id, kind, name, stamp, stamp, properties, context, source,
                            self.message_prefix + str(len(self.events))))

    def product(self, favourites: list[str], day: int):
        r = self.r
        if day in self.b.gift_season and r() < 0.25:
            category = "禮盒"
        elif favourites and r() < 0.7:
            category = favourites[int(r() * len(favourites))]
        else:
            category = self.b.category_names[bisect.bisect_left(self.b.category_cum, r() * self.b.category_cum[-1])]
        products, cum = self.b.by_category[category]
        return products[bisect.bisect_left(cum, r() * cum[-1])]

    # -- people --

    def visitor(self, contact_id: int) -> None:
        """Someone who browsed the shop without ever registering."""
        b, r = self.b, self.r
        first = self.pick_day(b.window_start, b.today_index)
        times = sorted(self.pick_time(self.pick_day(first, b.today_index)) for _ in range(1 + int(r() * 2.6)))
        times[0] = min(times[0], self.pick_time(first))
        anonymous = "%032x" % self.rng.getrandbits(128)
        anonymous = f"{anonymous[:8]}-{anonymous[8:12]}-4{anonymous[13:16]}-a{anonymous[17:20]}-{anonymous[20:]}"
        last = 0
        for t in times:
            last = max(last, self.browse(contact_id, t, [], "web"))
        created = b.ts(times[0])
        self.contacts.append((contact_id, self.ws, None, None, None, "zh-TW" if r() < 0.9 else "en", None, None, "{}",
                              created, b.ts(last), b.ts(last)))
        self.identities.append((self.ws, contact_id, "anonymous_id", anonymous, "tracking", created))

    def member(self, index: int, contact_id: int) -> None:
        b, r, rng = self.b, self.r, self.rng
        ws = self.ws
        # who
        x = r()
        gender = "female" if x < 0.66 else "male" if x < 0.98 else None
        surname_zh, surname_en = b.surnames[bisect.bisect_left(b.surname_cum, r() * b.surname_cum[-1])]
        given_zh, given_en = rng.choice(b.male if gender == "male" else b.female)
        english = r() < 0.08
        locale = "en" if english else "zh-TW"
        name = f"{rng.choice(b.english['male' if gender == 'male' else 'female'])} {surname_en}" if english else surname_zh + given_zh
        birthday = None
        if r() < 0.85:
            age = rng.choices((20, 29, 39, 49, 60), cum_weights=(15, 50, 78, 92, 100))[0] + int(r() * 10) - 4
            birthday = (b.today - timedelta(days=int(age * 365.25 + r() * 365))).isoformat()
        city = b.cities[bisect.bisect_left(b.city_cum, r() * b.city_cum[-1])] if r() < 0.9 else None
        # ids follow the order people joined in (the newest member has the highest id, as when members sign
        # up one by one), with ages spread as an exponential of mean 600 days cut at HISTORY_DAYS
        older = 1 - (index + r()) / b.total  # 1 for the first contact, 0 for the last
        age = -600 * math.log(1 - older * (1 - math.exp(-HISTORY_DAYS / 600)))
        joined_day = max(0, b.today_index - min(HISTORY_DAYS, int(age)))
        joined = self.pick_time(joined_day)
        has_line, has_email, has_phone = r() < LINE_SHARE, r() < EMAIL_SHARE, r() < PHONE_SHARE
        favourites = []
        for _ in range(1 + int(r() * 2.4)):
            category = b.category_names[bisect.bisect_left(b.category_cum, r() * b.category_cum[-1])]
            if category not in favourites:
                favourites.append(category)

        # how they buy: most members buy rarely, a few buy very often (Pareto)
        start_day = max(joined_day, b.window_start)
        active_until = b.today_index if r() < 0.78 else self.pick_day(start_day, b.today_index)
        n_orders = 0
        if r() < 0.8:
            n_orders = min(60, int(rng.paretovariate(1.33)))
            span = active_until - start_day + 1
            if span < WINDOW_DAYS:
                n_orders = max(1 if r() < 0.6 else 0, round(n_orders * span / WINDOW_DAYS))
        if has_line:
            channels, channel_cum = ("web", "line", "app", "store"), (35, 70, 85, 100)
        else:
            channels, channel_cum = ("web", "app", "store"), (55, 75, 100)
        days = sorted(self.pick_day(start_day, active_until) for _ in range(n_orders))
        spend = 0.0
        last_seen = joined
        first_order_at = last_order_at = None
        vip_at = high_value_at = mothers_at = double11_at = None
        for day in days:
            channel = channels[bisect.bisect_left(channel_cum, r() * 100)]
            placed, paid = self.order(contact_id, day, channel, favourites)
            last_seen = max(last_seen, placed)
            if first_order_at is None:
                first_order_at = placed
            last_order_at = placed
            spend += paid
            if vip_at is None and spend >= 12_000:
                vip_at = placed
            if high_value_at is None and spend >= 20_000:
                high_value_at = placed
            if mothers_at is None and day in b.mothers:
                mothers_at = placed
            if double11_at is None and day in b.double11:
                double11_at = placed
        # browsing without buying, some with an abandoned cart
        sessions = int(r() * 1.6) + (1 if r() < 0.25 else 0)
        for _ in range(sessions):
            day = self.pick_day(start_day, active_until)
            source = "app" if r() < 0.2 else "web"
            last_seen = max(last_seen, self.browse(contact_id, self.pick_time(day), favourites, source))

        # identities
        joined_text = b.ts(joined)
        identities = self.identities
        identities.append((ws, contact_id, "external_id", f"M{index + 1:06d}", "import", joined_text))
        if has_line:
            identities.append((ws, contact_id, "line_uid", "U%032x" % rng.getrandbits(128), "line", joined_text))
        if has_email:
            number = (index * 7_654_321 + self.b.seed * 97 + 1_234) % 10_000_000
            g = given_en.replace("-", "").lower()
            s = surname_en.lower()
            pattern = int(r() * 4)
            local = (f"{g}.{s}{number}", f"{s}{g}{number}", f"{g}{number}", f"{s}.{g}{number}")[pattern]
            domain = b.domains[bisect.bisect_left(b.domain_cum, r() * b.domain_cum[-1])]
            identities.append((ws, contact_id, "email", f"{local}@{domain}", "import", joined_text))
        if has_phone:
            number = (index * 91_234_567 + self.b.seed * 7_919 + 13_579) % 100_000_000
            identities.append((ws, contact_id, "phone", f"+8869{number:08d}", "import", joined_text))

        # consent, each with its history
        subscribed = False
        if has_line:
            follow = joined + int(r() * 600)
            if r() < 0.12:
                self.consent(contact_id, "line", [("subscribed", "line_follow", follow),
                                                  ("blocked", "line_unfollow", self.later(follow))])
            else:
                self.consent(contact_id, "line", [("subscribed", "line_follow", follow)])
        if has_email:
            x = r()
            if x < 0.75:
                self.consent(contact_id, "email", [("subscribed", "signup_form", joined)])
                subscribed = True
            elif x < 0.95:
                self.consent(contact_id, "email", [("subscribed", "signup_form", joined),
                                                   ("unsubscribed", "unsubscribe_link", self.later(joined))])
            elif x < 0.975:
                self.consent(contact_id, "email", [("subscribed", "signup_form", joined),
                                                   ("bounced", "bounce", self.later(joined))])
            else:
                self.consent(contact_id, "email", [("unsubscribed", "signup_form", joined)])
        if has_phone:
            x = r()
            if x < 0.6:
                self.consent(contact_id, "sms", [("subscribed", "signup_form", joined)])
                subscribed = True
            elif x < 0.8:
                self.consent(contact_id, "sms", [("subscribed", "signup_form", joined),
                                                 ("unsubscribed", "sms_stop", self.later(joined))])
            else:
                self.consent(contact_id, "sms", [("unsubscribed", "signup_form", joined)])

        # tags
        if joined_day >= b.window_start:
            expires = joined + 30 * 86400
            self.tag(contact_id, "新會員", joined, expires if expires > self.now else None, current=expires > self.now)
        if vip_at is not None:
            self.tag(contact_id, "VIP", vip_at)
        if high_value_at is not None:
            self.tag(contact_id, "高價值", high_value_at)
        if mothers_at is not None:
            self.tag(contact_id, "母親節檔期", mothers_at)
        if double11_at is not None:
            self.tag(contact_id, "雙11購買", double11_at)
        quiet_since = last_order_at if last_order_at is not None else (joined if joined_day < b.window_start else None)
        if quiet_since is not None and quiet_since + 180 * 86400 <= self.now:
            self.tag(contact_id, "沉睡會員", max(quiet_since + 180 * 86400, b.window_start * 86400 + 3 * 3600))

        tier = next(name for threshold, name in TIERS if max(spend, 0) >= threshold)
        attributes = orjson.dumps({
            "tier": tier,
            "points": int(spend // 50) + int(r() * 300),
            "member_since": b.dates[joined_day].isoformat(),
            "favourite_categories": favourites,
            "marketing_opt_in": subscribed,
        }).decode()
        updated = b.ts(max(joined, last_order_at or joined))
        self.contacts.append((contact_id, ws, name, gender, birthday, locale, "Asia/Taipei", city, attributes,
                              joined_text, updated, b.ts(last_seen)))

    def later(self, t: int) -> int:
        """A moment between `t` and now."""
        return t + int(self.r() * max(60, self.now - t))

    def consent(self, contact_id: int, channel: str, history: list[tuple[str, str, int]]) -> None:
        ws, ts = self.ws, self.b.ts
        for status, source, at in history:
            self.consent_changes.append((ws, contact_id, channel, status, source, ts(at)))
        status, source, at = history[-1]
        self.consents.append((contact_id, channel, ws, status, source, ts(at)))

    def tag(self, contact_id: int, name: str, at: int, expires: int | None = None, current: bool = True) -> None:
        tag_id = self.b.tag_ids[name]
        at_text = self.b.ts(at)
        self.tag_applications.append((self.ws, contact_id, tag_id, at_text, "rule"))
        if current:
            self.contact_tags.append((contact_id, tag_id, self.ws, at_text, None if expires is None else self.b.ts(expires)))

    # -- shopping --

    def browse(self, contact_id: int, t: int, favourites: list[str], source: str) -> int:
        """A visit without a purchase; returns the time of its last event."""
        b, r = self.b, self.r
        page = bisect.bisect_left(b.page_cum, r() * b.page_cum[-1])
        self.event(contact_id, "page", b.pages[page][1], t, b.page_json[page], source)
        day = t // 86400
        cart = []
        cart_id = f"cart-{self.order_prefix}-{len(self.events)}"  # ids differ between databases; this does not
        for _ in range(1 + int(r() * 2.2)):
            t += 20 + int(r() * 150)
            product = self.product(favourites, day)
            self.event(contact_id, "track", "Product Viewed", t, product["viewed"], source)
            if r() < 0.12:
                t += 10 + int(r() * 60)
                cart.append(product)
                self.event(contact_id, "track", "Product Added", t,
                           product["viewed"][:-1] + f',"quantity":1,"cart_id":"{cart_id}"}}', source)
        if cart and r() < 0.3:
            t += 30 + int(r() * 200)
            value = sum(p["price"] for p in cart)
            products = [{"product_id": p["sku"], "sku": p["sku"], "category": p["category"], "price": p["price"],
                         "quantity": 1} for p in cart]
            self.event(contact_id, "track", "Checkout Started", t,
                       orjson.dumps({"value": value, "currency": "TWD", "products": products}).decode(), source)
        return t

    def order(self, contact_id: int, day: int, channel: str, favourites: list[str]) -> tuple[int, float]:
        """One order with its lines and events; returns (placed time, amount kept after refunds)."""
        b, r, ws = self.b, self.r, self.ws
        placed = self.pick_time(day, "store" if channel == "store" else "online")
        x = r()
        n_lines = 1 if x < 0.55 else 2 if x < 0.82 else 3 if x < 0.94 else 4
        picked = []
        for _ in range(n_lines):
            product = self.product(favourites, day)
            if product not in picked:
                picked.append(product)
        quantities = [1 if (q := r()) < 0.85 else 2 if q < 0.97 else 3 for _ in picked]
        subtotal = sum(p["price"] * q for p, q in zip(picked, quantities, strict=True))
        if day in b.sale_days:
            discount = round(subtotal * (0.2 if day in b.day_1111 else 0.12))
            coupon = "1111SALE" if day in b.double11 else "SALE"
        elif subtotal >= 1000 and r() < 0.15:
            discount, coupon = 100.0, "WELCOME100"
        else:
            discount, coupon = 0.0, None
        shipping = 0.0 if channel == "store" or subtotal >= 990 else 80.0
        total = subtotal - discount + shipping

        age = b.today_index - day
        x = r()
        line_status = ["ok"] * len(picked)
        refunded = 0.0
        if x < 0.025:
            status = "cancelled"
            line_status = ["cancelled"] * len(picked)
        elif x < 0.06:
            status, refunded = "refunded", total
            line_status = ["refunded"] * len(picked)
        elif x < 0.07 and len(picked) > 1:
            status = "partially_refunded"
            # the refund of one line, with its share of the discount
            refunded = min(total, round(picked[0]["price"] * quantities[0] * (1 - discount / subtotal)))
            line_status[0] = "refunded"
        elif channel == "store" or age > 6:
            status = "completed"
        else:
            status = "paid" if age <= 1 else "fulfilled"
        changed = placed
        if status in ("cancelled", "refunded", "partially_refunded"):
            changed = min(self.now, placed + 3600 + int(r() * (86400 if status == "cancelled" else 14 * 86400)))
        elif status == "completed":
            changed = min(self.now, placed + (0 if channel == "store" else 3 * 86400 + int(r() * 3 * 86400)))

        number = len(self.orders)
        external_id = f"HR{b.dates[day]:%y%m%d}{self.order_prefix}{number:05d}"
        properties = {"payment": "cash" if channel == "store" and r() < 0.3
                      else b.payments[bisect.bisect_left(b.payment_cum, r() * b.payment_cum[-1])]}
        if channel == "store":
            properties["store"] = self.rng.choice(b.stores)[0]
        if coupon:
            properties["coupon"] = coupon
        self.orders.append((number, ws, contact_id, external_id, status, "TWD", subtotal, discount, shipping, 0.0, total,
                            refunded, channel, b.ts(placed), b.ts(changed), orjson.dumps(properties).decode()))
        for product, quantity, line in zip(picked, quantities, line_status, strict=True):
            self.lines.append((number, ws, product["id"], product["sku"], product["name"], product["category"], quantity,
                               product["price"], line))

        products = [{"product_id": p["sku"], "sku": p["sku"], "name": p["name"], "category": p["category"],
                     "price": p["price"], "quantity": q} for p, q in zip(picked, quantities, strict=True)]
        source = "pos" if channel == "store" else "app" if channel == "app" else "web"
        if channel != "store":
            # the visit that led to the order
            context = '{"campaign":{"source":"line","medium":"message"}}' if channel == "line" else None
            t = placed - 240 - 90 * len(picked) * 2 - int(r() * 1200)
            if channel == "line" or r() < 0.6:
                page = bisect.bisect_left(b.page_cum, r() * b.page_cum[-1])
                self.event(contact_id, "page", b.pages[page][1], t, b.page_json[page], source, context)
            for product, quantity in zip(picked, quantities, strict=True):
                t += 30 + int(r() * 120)
                self.event(contact_id, "track", "Product Viewed", t, product["viewed"], source, context)
                t += 15 + int(r() * 60)
                self.event(contact_id, "track", "Product Added", t,
                           product["viewed"][:-1] + f',"quantity":{quantity},"cart_id":"cart-{external_id}"}}', source,
                           context)
            self.event(contact_id, "track", "Checkout Started", placed - 60 - int(r() * 120), orjson.dumps(
                {"order_id": external_id, "value": subtotal, "currency": "TWD", "products": products}).decode(),
                source, context)
        self.event(contact_id, "track", "Order Completed", placed, orjson.dumps({
            "order_id": external_id, "total": total, "revenue": subtotal - discount, "shipping": shipping,
            "discount": discount, "coupon": coupon, "currency": "TWD", "channel": channel, "products": products,
        }).decode(), source)
        if status in ("cancelled", "refunded"):
            name = "Order Cancelled" if status == "cancelled" else "Order Refunded"
            self.event(contact_id, "track", name, changed,
                       orjson.dumps({"order_id": external_id, "total": total, "currency": "TWD"}).decode(), source)
        kept = 0.0 if status in ("cancelled", "refunded") else total - refunded
        return placed, kept
