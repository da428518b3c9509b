"""Benchmark: build the demo brand at scale and report how fast each table is written.

    python bench/demo_scale.py                       # 1,000,000 contacts into a fresh SQLite file
    python bench/demo_scale.py --contacts 100000 --database postgresql+psycopg://postgres@127.0.0.1/tutti_bench_demo

Prints one JSON line per figure: seconds in total and per step, rows and rows/s per table, and a
reference: the database copying the generated events into a table with the same indexes with one
INSERT … SELECT (no Python involved), with the ratio of the generator's event rate to it. The database
should be empty (the demo brand is rebuilt with reset); a SQLite file is created in a temp dir by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import MetaData, text

from tutti.audience import demo
from tutti.audience.models import Event
from tutti.platform import migrate
from tutti.platform.db import Database


def emit(figure: str, value, unit: str, **extra) -> None:
    print(json.dumps({"bench": "demo_scale", "figure": figure, "value": value, "unit": unit, **extra}), flush=True)


def reference_copy(database: Database, workspace_id: int) -> tuple[int, float]:
    """The database's own speed for the same rows: INSERT … SELECT of the demo events into a copy of the
    event table (same columns, same indexes), then the copy is dropped."""
    metadata = MetaData()
    metadata.reflect(bind=database.engine, only=["workspace", "contact"])
    copy = Event.__table__.to_metadata(metadata, name="bench_event_copy")
    for index in copy.indexes:
        index.name = f"bench_{index.name}"
    for constraint in copy.constraints:
        if constraint.name:
            constraint.name = f"bench_{constraint.name}"
    copy.drop(database.engine, checkfirst=True)
    copy.create(database.engine)
    columns = ", ".join(c.name for c in copy.columns)
    try:
        started = time.perf_counter()
        with database.session() as db:
            rows = db.execute(text(
                f"INSERT INTO bench_event_copy ({columns}) SELECT {columns} FROM event WHERE workspace_id = :w"
            ), {"w": workspace_id}).rowcount
        return rows, time.perf_counter() - started
    finally:
        copy.drop(database.engine, checkfirst=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database", default="sqlite", help="'sqlite' (a fresh file in a temp dir) or a database URL")
    parser.add_argument("--no-reference", action="store_true", help="skip the INSERT … SELECT reference")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file")
    args = parser.parse_args()

    tmp = None
    url = args.database
    if url == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="tutti-bench-demo-"))
        url = f"sqlite:///{tmp / 'demo.db'}"
    engine_name = url.split(":", 1)[0].split("+", 1)[0]
    migrate.upgrade(url)
    database = Database(url)
    last_step: dict[str, float] = {}

    def progress(step: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last_step.get(step, 0) > 30:
            last_step[step] = now
            print(f"# {step}: {done:,}/{total:,}", file=sys.stderr, flush=True)

    try:
        started = time.perf_counter()
        info = demo.build(database, contacts=args.contacts, seed=args.seed, reset=True, progress=progress)
        total = time.perf_counter() - started
        common = {"database": engine_name, "contacts": args.contacts, "cpus": os.cpu_count()}
        emit("total_seconds", round(total, 2), "s", **common)
        for step, seconds in info.step_seconds.items():
            emit(f"step_seconds.{step}", round(seconds, 2), "s", **common)
        emit("generate_seconds", round(info.generate_seconds, 2), "s", **common)
        all_rows = sum(info.rows.values())
        emit("rows_total", all_rows, "rows", **common)
        emit("rows_per_second_overall", round(all_rows / total), "rows/s", **common)
        for table, rows in info.rows.items():
            seconds = info.table_seconds.get(table, 0.0)
            emit(f"rows.{table}", rows, "rows", **common)
            emit(f"write_rows_per_second.{table}", round(rows / seconds) if seconds else None, "rows/s", **common)
        emit("ratios_per_contact", {t: round(r / args.contacts, 2) for t, r in info.rows.items()}, "rows/contact", **common)
        if tmp is not None:
            size = sum(p.stat().st_size for p in tmp.iterdir())
            emit("database_bytes", size, "bytes", **common)
        if not args.no_reference:
            rows, seconds = reference_copy(database, info.workspace_id)
            event_rate = info.rows["event"] / info.table_seconds["event"]
            emit("reference.insert_select_event_rows_per_second", round(rows / seconds), "rows/s", **common)
            emit("ratio.event_write_vs_insert_select", round(event_rate / (rows / seconds), 3), "x", **common)
    finally:
        database.dispose()
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
