"""Benchmark: count five typical segments on the demo brand, compiled vs hand-written SQL, same run.

    python bench/segments.py --database postgresql+psycopg://postgres@127.0.0.1/tutti_bench_segments
    python bench/segments.py --database sqlite:////tmp/segbench/sqlite/demo.db

The database must hold the demo brand (`tutti demo --contacts 1000000`, or bench/demo_scale.py). The
bench creates the tables segments need if the database predates them, adds clicks if there are none (the
demo has no campaigns: 5% of contacts get 1–3 clicks over 90 days, written with one INSERT … SELECT),
folds the events into the daily counts (timed: the first fold is the whole history; later ones only new
events), then for each segment counts with the compiler (`service.count`, ONE statement) and with a
hand-written query of the same meaning, `--repeat` times each, and prints one JSON line per segment with
the best time of each and their ratio, and checks the two counts are equal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, inspect, text

from tutti.platform import migrate
from tutti.platform.db import Database, UTCDateTime
from tutti.reach.segments import eventcounts, orderfacts, service

CATEGORY = "保養"
CITY = "台北市"


def emit(**figure) -> None:
    print(json.dumps({"bench": "segments", **figure}, ensure_ascii=False), flush=True)


def ensure_tables(database: Database, url: str) -> None:
    """A database built by the migrations is migrated to the newest schema; one built before segments (or
    tracking) existed gets the missing tables (nothing else changes)."""
    if "alembic_version" in inspect(database.engine).get_table_names():
        migrate.upgrade(url)
        return
    metadata = migrate.all_metadata()
    wanted = [t for t in metadata.sorted_tables if t.name in (
        "segment", "segment_member", "segment_refresh", "segment_change", "event_daily_count", "event_count_watermark", "link", "click",
        "order_summary", "order_bought", "order_fact_change", "order_fact_watermark")]
    metadata.create_all(database.engine, tables=wanted, checkfirst=True)


def add_clicks(database: Database, workspace_id: int, now: datetime) -> int:
    with database.session() as db:
        existing = db.scalar(text("SELECT count(*) FROM click WHERE workspace_id = :w"), {"w": workspace_id})
        if existing:
            return existing
        link_id = db.execute(text("INSERT INTO link (workspace_id, campaign_id, variant_id, position, url, created_at) "
                                  "VALUES (:w, 1, 0, 0, 'https://example.com/spring', :now) RETURNING id")
                             .bindparams(bindparam("now", type_=UTCDateTime())), {"w": workspace_id, "now": now}).scalar_one()
        for k in range(3):  # contact id modulo picks who clicks; the day spread covers 0–89 days ago
            db.execute(text(
                "INSERT INTO click (workspace_id, link_id, delivery_id, contact_id, campaign_id, clicked_at) "
                "SELECT workspace_id, :link, 0, id, 1, :now - (((id * 7 + :k * 13) % 90) * :day) FROM contact "
                "WHERE workspace_id = :w AND id % 20 = 0 AND (id / 20) % 3 >= :k").bindparams(bindparam("now", type_=UTCDateTime()))
                if database.dialect == "postgresql" else text(
                "INSERT INTO click (workspace_id, link_id, delivery_id, contact_id, campaign_id, clicked_at) "
                "SELECT workspace_id, :link, 0, id, 1, strftime('%Y-%m-%d %H:%M:%f000', :now, '-' || ((id * 7 + :k * 13) % 90) || ' days') "
                "FROM contact WHERE workspace_id = :w AND id % 20 = 0 AND (id / 20) % 3 >= :k").bindparams(bindparam("now", type_=UTCDateTime())),
                {"w": workspace_id, "link": link_id, "now": now, "k": k, "day": timedelta(days=1)})
        return db.scalar(text("SELECT count(*) FROM click WHERE workspace_id = :w"), {"w": workspace_id})


LIVE = "c.workspace_id = :w AND c.merged_into_id IS NULL AND c.erased_at IS NULL"
COUNTED = "o.status NOT IN ('cancelled', 'refunded')"

SEGMENTS = [
    ("attribute_and_tag", "city = 台北市 AND tag VIP",
     {"op": "and", "children": [{"kind": "attribute", "field": "city", "op": "equals", "value": CITY}, {"kind": "tag", "tag": "VIP"}]},
     f"""SELECT count(*) FROM contact c WHERE {LIVE} AND c.city = :city AND EXISTS (
           SELECT 1 FROM contact_tag ct JOIN tag t ON t.id = ct.tag_id
           WHERE ct.contact_id = c.id AND t.workspace_id = :w AND t.name = 'VIP' AND (ct.expires_at IS NULL OR ct.expires_at > :now))""", None),
    ("event_count_30d", "Product Viewed at least 3 times in the last 30 days",
     {"op": "and", "children": [{"kind": "event", "name": "Product Viewed", "op": "at_least", "times": 3, "days": 30}]},
     f"""SELECT count(*) FROM contact c WHERE {LIVE} AND c.id IN (
           SELECT contact_id FROM event WHERE workspace_id = :w AND name = 'Product Viewed' AND occurred_at >= :d30
           GROUP BY contact_id HAVING count(*) >= 3)""",
     # the daily counts of the days wholly inside the window, plus the window's partial first day from the events
     # (everything is folded right before the counts, so no event is above the watermark)
     f"""SELECT count(*) FROM contact c WHERE {LIVE} AND c.id IN (
           SELECT contact_id FROM (
             SELECT contact_id, n FROM event_daily_count WHERE workspace_id = :w AND name = 'Product Viewed' AND day > :d30day
             UNION ALL
             SELECT contact_id, 1 FROM event WHERE workspace_id = :w AND name = 'Product Viewed' AND occurred_at >= :d30
               AND occurred_at < :d30next) AS counted
           GROUP BY contact_id HAVING sum(n) >= 3)"""),
    ("bought_category_90_not_30", "bought 保養 in the last 90 days but not in the last 30",
     {"op": "and", "children": [{"kind": "bought", "category": CATEGORY, "days": 90},
                                {"kind": "group", "op": "and", "negate": True, "children": [{"kind": "bought", "category": CATEGORY, "days": 30}]}]},
     f"""SELECT count(*) FROM contact c WHERE {LIVE}
           AND EXISTS (SELECT 1 FROM orders o JOIN order_line l ON l.order_id = o.id
                       WHERE o.contact_id = c.id AND o.workspace_id = :w AND {COUNTED} AND o.placed_at >= :d90
                         AND l.category = :category AND l.status = 'ok')
           AND NOT EXISTS (SELECT 1 FROM orders o JOIN order_line l ON l.order_id = o.id
                       WHERE o.contact_id = c.id AND o.workspace_id = :w AND {COUNTED} AND o.placed_at >= :d30
                         AND l.category = :category AND l.status = 'ok')""",
     f"""SELECT count(*) FROM contact c WHERE {LIVE}
           AND c.id IN (SELECT contact_id FROM order_bought WHERE workspace_id = :w AND kind = 'category' AND value = :category AND last_at >= :d90)
           AND c.id NOT IN (SELECT contact_id FROM order_bought WHERE workspace_id = :w AND kind = 'category' AND value = :category AND last_at >= :d30)"""),
    ("rfm_top_monetary_with_line", "monetary quintile 5 AND reachable on LINE",
     {"op": "and", "children": [{"kind": "rfm", "dimension": "monetary", "low": 5, "high": 5}, {"kind": "reachable", "channel": "line"}]},
     f"""WITH buyers AS (
           SELECT o.contact_id, sum(o.total - o.refunded_total) AS money FROM orders o JOIN contact c ON c.id = o.contact_id
           WHERE o.workspace_id = :w AND {COUNTED} AND c.merged_into_id IS NULL AND c.erased_at IS NULL GROUP BY o.contact_id),
         q AS (SELECT contact_id, ntile(5) OVER (ORDER BY money, contact_id) AS m FROM buyers)
         SELECT count(*) FROM contact c JOIN q ON q.contact_id = c.id AND q.m = 5 WHERE {LIVE}
           AND EXISTS (SELECT 1 FROM consent s WHERE s.contact_id = c.id AND s.workspace_id = :w AND s.channel = 'line' AND s.status = 'subscribed')
           AND EXISTS (SELECT 1 FROM identity i WHERE i.contact_id = c.id AND i.workspace_id = :w AND i.kind = 'line_uid')""",
     # NTILE(5)'s fifth quintile is the last n / 5 buyers (the first n % 5 quintiles get the extra ones)
     f"""SELECT count(*) FROM contact c WHERE {LIVE}
           AND c.id IN (SELECT contact_id FROM order_summary WHERE workspace_id = :w ORDER BY spent DESC, contact_id DESC
                        LIMIT (SELECT count(*) / 5 FROM order_summary WHERE workspace_id = :w))
           AND EXISTS (SELECT 1 FROM consent s WHERE s.contact_id = c.id AND s.workspace_id = :w AND s.channel = 'line' AND s.status = 'subscribed')
           AND EXISTS (SELECT 1 FROM identity i WHERE i.contact_id = c.id AND i.workspace_id = :w AND i.kind = 'line_uid')"""),
    ("not_clicked_60d", "NOT clicked anything in the last 60 days",
     {"op": "and", "children": [{"kind": "group", "op": "and", "negate": True,
                                 "children": [{"kind": "engagement", "op": "clicked_any", "days": 60}]}]},
     f"""SELECT count(*) FROM contact c WHERE {LIVE} AND NOT EXISTS (
           SELECT 1 FROM click k WHERE k.contact_id = c.id AND k.workspace_id = :w AND k.clicked_at >= :d60)""", None),
]


def hand_query(sql: str, params: dict):
    """The statement and the parameters it uses (times typed as Tutti stores them, for SQLite's text)."""
    statement = text(sql).bindparams(*[bindparam(p, type_=UTCDateTime()) for p in ("now", "d30", "d60", "d90", "d30next") if f":{p}" in sql])
    return statement, {k: v for k, v in params.items() if f":{k}" in sql}


def best_of(repeat: int, run) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="comma-separated segment names")
    parser.add_argument("--skip-raw", default="", help="comma-separated segment names whose hand-written query over the raw "
                        "tables is not run (on SQLite the bought-category one takes tens of minutes)")
    args = parser.parse_args()
    database = Database(args.database)
    engine = database.dialect
    ensure_tables(database, args.database)
    now = datetime.now(UTC)
    with database.read_session() as db:
        workspace_id, contacts, events = db.execute(text(
            "SELECT w.id, (SELECT count(*) FROM contact c WHERE c.workspace_id = w.id), (SELECT count(*) FROM event e WHERE e.workspace_id = w.id) "
            "FROM workspace w ORDER BY 2 DESC LIMIT 1")).one()
    common = {"database": engine, "contacts": contacts}
    emit(figure="events", value=events, unit="events", **common)
    emit(figure="clicks", value=add_clicks(database, workspace_id, now), unit="clicks", **common)

    started = time.perf_counter()
    mark = eventcounts.fold(database, workspace_id=workspace_id)
    emit(figure="fold_seconds", value=round(time.perf_counter() - started, 2), unit="s", watermark=mark,
         note="all events above the watermark; the first run folds the whole history", **common)
    started = time.perf_counter()
    marks = orderfacts.fold(database, workspace_id=workspace_id)
    emit(figure="order_fold_seconds", value=round(time.perf_counter() - started, 2), unit="s", watermark=list(marks),
         note="orders and changes above the watermark; the first run builds the whole workspace", **common)
    with database.read_session() as db:
        for table in ("event_daily_count", "order_summary", "order_bought"):
            emit(figure=f"{table}_rows", value=db.scalar(text(f"SELECT count(*) FROM {table} WHERE workspace_id = :w"), {"w": workspace_id}),
                 unit="rows", **common)
    with database.engine.connect() as connection:  # fresh statistics (and, on PostgreSQL, the visibility map that
        # index-only scans need, which autovacuum would set later) after the big writes above
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        if engine == "postgresql":
            for table in ("event_daily_count", "order_summary", "order_bought"):
                connection.execute(text(f"VACUUM ANALYZE {table}"))
        connection.execute(text("ANALYZE"))

    d30 = now - timedelta(days=30)
    params = {"w": workspace_id, "city": CITY, "category": CATEGORY, "now": now, "d30": d30, "d60": now - timedelta(days=60),
              "d90": now - timedelta(days=90), "d30day": d30.date(),
              "d30next": datetime.combine(d30.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)}
    only = set(args.only.split(",")) if args.only else None
    for name, meaning, rules, sql, state_sql in SEGMENTS:
        if only and name not in only:
            continue
        with database.read_session() as db:
            compiled_s, compiled_n = best_of(args.repeat, lambda r=rules: service.count(db, workspace_id=workspace_id, rules=r, now=now))
            hand, state = hand_query(sql, params), hand_query(state_sql, params) if state_sql else None
            skip = name in args.skip_raw.split(",")
            hand_s, hand_n = (None, None) if skip else best_of(args.repeat, lambda q=hand: db.scalar(*q))
            state_s, state_n = best_of(args.repeat, lambda q=state: db.scalar(*q)) if state else (None, None)
        emit(figure="count_seconds", segment=name, meaning=meaning, compiled_s=round(compiled_s, 3),
             hand_written_s=round(hand_s, 3) if hand_s else None, ratio=round(compiled_s / hand_s, 2) if hand_s else None,
             count=compiled_n, hand_count=hand_n, equal=compiled_n == (hand_n if hand_n is not None else state_n),
             hand_written_state_s=round(state_s, 3) if state_s else None,
             ratio_state=round(compiled_s / state_s, 2) if state_s else None, state_count=state_n,
             under_1s=compiled_s < 1.0, load_average=round(os.getloadavg()[0], 2), **common)

    # folding only what is new: one more event, then fold again
    with database.session() as db:
        db.execute(text("INSERT INTO event (workspace_id, contact_id, kind, name, occurred_at, received_at, properties, source, message_id) "
                        "SELECT workspace_id, id, 'track', 'Bench Event', :now, :now, '{}', 'bench', 'bench-' || id FROM contact "
                        "WHERE workspace_id = :w ORDER BY id LIMIT 1000").bindparams(bindparam("now", type_=UTCDateTime())),
                   {"w": workspace_id, "now": now + timedelta(seconds=time.time() % 1000)})
    started = time.perf_counter()
    eventcounts.fold(database, workspace_id=workspace_id)
    emit(figure="incremental_fold_seconds", value=round(time.perf_counter() - started, 3), unit="s", new_events=1000, **common)
    with database.session() as db:
        db.execute(text("DELETE FROM event WHERE workspace_id = :w AND source = 'bench'"), {"w": workspace_id})
        # their folded counts go too (a distinct name), so the counts stay exact for the next run
        db.execute(text("DELETE FROM event_daily_count WHERE workspace_id = :w AND name = 'Bench Event'"), {"w": workspace_id})
    if (not only or only & set(UNFOLDED_SEGMENTS)) and not set(args.skip_raw.split(",")) & set(UNFOLDED_SEGMENTS):
        unfolded_figures(database, workspace_id, now, params, args.repeat, common)
    database.dispose()
    return 0


UNFOLDED_SEGMENTS = ("bought_category_90_not_30", "rfm_top_monetary_with_line")


def unfolded_figures(database: Database, workspace_id: int, now: datetime, params: dict, repeat: int, common: dict) -> None:
    """The order-fact segments again with 1,000 contacts not folded yet (500 with a new order of 保養, 500
    with a change noted, as a refund would), checked against the hand-written queries over the orders; then
    the fold that takes them in, and the same undone."""
    at = bindparam("now", type_=UTCDateTime())
    run = f"bench-{int(time.time())}-"
    with database.session() as db:
        db.execute(text("INSERT INTO orders (workspace_id, contact_id, external_id, status, currency, discount, shipping, tax, total, "
                        "refunded_total, placed_at, updated_at, properties) SELECT workspace_id, id, :run || id, 'completed', 'TWD', "
                        "0, 0, 0, 5000, 0, :now, :now, '{}' FROM contact WHERE workspace_id = :w AND id % 2000 = 1").bindparams(at),
                   {"w": workspace_id, "now": now - timedelta(days=45), "run": run})
        db.execute(text("INSERT INTO order_line (workspace_id, order_id, sku, category, quantity, unit_price, status) "
                        "SELECT workspace_id, id, 'BENCH', :category, 1, 5000, 'ok' FROM orders WHERE workspace_id = :w "
                        "AND external_id LIKE :run || '%'"), {"w": workspace_id, "category": CATEGORY, "run": run})
        changed = list(db.scalars(text("SELECT id FROM contact WHERE workspace_id = :w AND id % 2000 = 2"), {"w": workspace_id}))
        orderfacts.note_changes(db, workspace_id, changed)
    for name, meaning, rules, sql, _state_sql in SEGMENTS:
        if name not in UNFOLDED_SEGMENTS:
            continue
        with database.read_session() as db:
            compiled_s, compiled_n = best_of(repeat, lambda r=rules: service.count(db, workspace_id=workspace_id, rules=r, now=now))
            hand = hand_query(sql, params)
            hand_s, hand_n = best_of(1, lambda q=hand: db.scalar(*q))
        emit(figure="count_seconds_with_unfolded", segment=name, meaning=meaning, unfolded_contacts=1000, compiled_s=round(compiled_s, 3),
             hand_written_s=round(hand_s, 3), ratio=round(compiled_s / hand_s, 2), count=compiled_n, hand_count=hand_n,
             equal=compiled_n == hand_n, under_1s=compiled_s < 1.0, load_average=round(os.getloadavg()[0], 2), **common)
    started = time.perf_counter()
    orderfacts.fold(database, workspace_id=workspace_id)
    emit(figure="incremental_order_fold_seconds", value=round(time.perf_counter() - started, 3), unit="s", unfolded_contacts=1000, **common)
    with database.session() as db:  # undone as a shop would: cancelled (orders are never deleted, and on SQLite a
        # deleted highest id would be handed out again, below the watermark)
        bench_buyers = list(db.scalars(text("SELECT contact_id FROM orders WHERE workspace_id = :w AND external_id LIKE :run || '%'"),
                                       {"w": workspace_id, "run": run}))
        db.execute(text("UPDATE orders SET status = 'cancelled' WHERE workspace_id = :w AND external_id LIKE :run || '%'"),
                   {"w": workspace_id, "run": run})
        orderfacts.note_changes(db, workspace_id, bench_buyers)  # as commerce.set_order_status would
    orderfacts.fold(database, workspace_id=workspace_id)


if __name__ == "__main__":
    sys.exit(main())
