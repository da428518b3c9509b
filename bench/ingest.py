"""Benchmark: tracking API ingestion, accepted and processed, against a bare bulk insert into the same table.

For each engine (a fresh SQLite file; a fresh PostgreSQL database created with psql) it runs Tutti as in
production and sends N realistic Segment events (page views, product views and cart adds, identifies
with traits, orders with products) from a pool of users in batches to /v1/batch with several concurrent
clients:

- SQLite: the server with its embedded queue and worker (SQLite queue in the data directory), as
  `tutti serve` runs it;
- PostgreSQL: the server on a Redis queue, plus `tutti worker` processes (--queue-workers) that store
  the batches, several at once (FOR UPDATE SKIP LOCKED).

Two figures, honestly labelled:

- `accepted_events_per_s`: events over the time from the first request to the last 200 answer. A 200
  means the request was validated and durably stored (one `inbound_batch` row, committed); the events are
  not in the event table yet.
- `processed_events_per_s`: end to end, events over the time from the first request until the inbox is
  empty and every event is in the event table (identities resolved, profiles, orders, products written).

The reference, in the same database afterwards: the event table emptied and the very rows the API stored
inserted again with the same batch size, one DBAPI executemany and one commit per batch
(`bare_insert_rows_per_s`). One JSON line per engine:

    {"bench": "ingest", "database": "sqlite", "accepted_events_per_s": …, "processed_events_per_s": …,
     "bare_insert_rows_per_s": …, "accepted_ratio": …, "processed_ratio": …, …}

    .venv/bin/python bench/ingest.py [--events 200000] [--users 20000] [--batch 200] [--clients 8]
                                     [--workers 1] [--queue-workers 2] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

POSTGRES_ADMIN = os.environ.get("TUTTI_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("TUTTI_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CITIES = ["台北市", "新北市", "台中市", "高雄市", "台南市", "桃園市"]
PAGES = [("/", "首頁"), ("/new", "新品上市"), ("/sale", "限時特賣"), ("/tea", "茶葉"), ("/cups", "茶具"), ("/about", "品牌故事")]
PRODUCTS = [(f"SKU-{i:04d}", f"商品 {i}", random.Random(i).choice(["tea", "cups", "gifts", "snacks"]), 100 + (i * 37) % 1900)
            for i in range(500)]


# --- realistic traffic -------------------------------------------------------------------------------


def make_events(n: int, users: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    people = [(f"member-{i:06d}", str(uuid.UUID(int=rng.getrandbits(128)))) for i in range(users)]
    start = datetime(2025, 3, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        user_id, anonymous_id = people[int(rng.paretovariate(1.2) * 97 + i * 7) % users]
        logged_in = rng.random() < 0.7
        ids = {"userId": user_id, "anonymousId": anonymous_id} if logged_in else {"anonymousId": anonymous_id}
        at = (start + timedelta(seconds=i * 3)).isoformat(timespec="milliseconds")
        context = {"library": {"name": "analytics.js", "version": "5.2.0"}, "ip": f"61.{i % 250}.{i % 199}.{i % 97}",
                   "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Line/14.3.0",
                   "locale": "zh-TW", "page": {"path": "/", "url": "https://shop.example.tw/"}}
        roll = rng.random()
        sku, name, category, price = PRODUCTS[rng.randrange(len(PRODUCTS))]
        base = {"messageId": f"bench-{seed}-{i}", "timestamp": at, "context": context, **ids}
        if roll < 0.40:
            path, title = PAGES[rng.randrange(len(PAGES))]
            out.append({**base, "type": "page", "name": title, "properties": {"path": path, "url": f"https://shop.example.tw{path}", "title": title, "referrer": "https://line.me/"}})
        elif roll < 0.75:
            out.append({**base, "type": "track", "event": "Product Viewed", "properties": {"product_id": sku, "name": name, "category": category, "price": price, "currency": "TWD"}})
        elif roll < 0.87:
            out.append({**base, "type": "track", "event": "Product Added", "properties": {"product_id": sku, "name": name, "price": price, "quantity": 1 + rng.randrange(3)}})
        elif roll < 0.93 and logged_in:
            out.append({**base, "type": "identify", "traits": {"email": f"{user_id}@example.tw", "name": f"會員{user_id[-4:]}", "city": rng.choice(CITIES), "points": rng.randrange(5000), "tier": rng.choice(["gold", "silver", "basic"])}})
        elif roll < 0.96 and logged_in:
            lines = [PRODUCTS[rng.randrange(len(PRODUCTS))] for _ in range(1 + rng.randrange(3))]
            total = sum(p for _, _, _, p in lines)
            out.append({**base, "type": "track", "event": "Order Completed", "properties": {
                "order_id": f"ORD-{seed}-{i}", "total": total + 60, "subtotal": total, "shipping": 60, "currency": "TWD",
                "products": [{"product_id": s, "name": nm, "category": c, "price": p, "quantity": 1} for s, nm, c, p in lines]}})
        else:
            out.append({**base, "type": "track", "event": "Coupon Viewed", "properties": {"coupon_id": f"C{rng.randrange(20)}", "campaign": "spring"}})
    return out


# --- databases ---------------------------------------------------------------------------------------


def fresh_database(engine: str, tmp: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    from sqlalchemy.engine import make_url

    name = f"tutti_bench_{os.getpid()}"
    admin = make_url(POSTGRES_ADMIN)
    for sql in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", "-h", admin.host or "127.0.0.1", "-U", admin.username or "postgres", "-d", admin.database or "postgres",
                        "-q", "-c", sql], check=True)
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    subprocess.run(["psql", "-h", parsed.host or "127.0.0.1", "-U", parsed.username or "postgres", "-d", "postgres", "-q",
                    "-c", f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'], check=False)


def prepare(url: str) -> tuple[int, str]:
    from tutti.platform import migrate, workspaces
    from tutti.platform.db import Database

    migrate.upgrade(url)
    database = Database(url)
    with database.session() as db:
        workspace = workspaces.create_workspace(db, name="Bench Tea Co.")
        result = workspace.id, workspace.write_key
    database.dispose()
    return result


# --- the server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(url: str, tmp: Path, queue: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
    env.update({"TUTTI_DATABASE_URL": url, "TUTTI_DATA_DIR": str(tmp / "data"), "TUTTI_LOG_LEVEL": "WARNING",
                "TUTTI_SECRET_KEY": "bench-secret", "TUTTI_LOG_JSON": "false"})
    if queue:  # Redis; unset = the embedded SQLite queue with a worker inside the server
        env.update({"TUTTI_QUEUE_URL": queue, "TUTTI_QUEUE_NAME": f"tutti-bench-{os.getpid()}"})
    return env


def start_server(env: dict, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = ("import uvicorn; uvicorn.run('tutti.web.app:create_app', factory=True, host='127.0.0.1', "
            f"port={port}, workers={workers}, access_log=False, log_level='warning')")
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code in (200, 503):
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def start_queue_workers(env: dict, n: int, threads: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "tutti.cli", "worker", "--threads", str(threads)], env=env) for _ in range(n)]


def wait_processed(url: str, expected: int, started: float, timeout: float = 1800) -> float:
    """Seconds from `started` until the inbox is empty and every event is in the event table."""
    from sqlalchemy import text

    from tutti.platform.db import Database

    database = Database(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with database.engine.connect() as connection:
                waiting = connection.execute(text("SELECT count(*) FROM inbound_batch WHERE failed_at IS NULL")).scalar()
                stored = connection.execute(text("SELECT count(*) FROM event")).scalar() if waiting == 0 else -1
            if waiting == 0 and stored == expected:
                return time.perf_counter() - started
            if waiting == 0:
                with database.engine.connect() as connection:
                    failed = connection.execute(text("SELECT count(*) FROM inbound_batch")).scalar()
                if failed:
                    raise RuntimeError(f"{failed} batches were set aside; {stored} of {expected} events stored")
            time.sleep(0.05)
        raise RuntimeError("the inbox was not emptied in time")
    finally:
        database.dispose()


def send_all(base: str, write_key: str, bodies: list[bytes], clients: int) -> tuple[float, float]:
    """(perf_counter at the first request, seconds until the last 200)."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode(), "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    host, port = base.removeprefix("http://").split(":")

    def client():
        # http.client on a kept-alive connection: the harness should cost the 2 shared cores as little as it can
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                connection.request("POST", "/v1/batch", body=body, headers=headers)
                answer = connection.getresponse()
                text = answer.read()
                if answer.status != 200:
                    failures.append(f"{answer.status} {text[:300]!r}")
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return started, elapsed


# --- the reference: a bare executemany of the same rows ---------------------------------------------

COLUMNS = ("workspace_id", "contact_id", "kind", "name", "occurred_at", "received_at", "properties", "context", "source", "message_id")


def bare_insert(url: str, batch: int) -> tuple[int, float]:
    """Read back the rows the API stored, empty the table, insert them again: executemany per batch."""
    from tutti.platform.db import Database

    database = Database(url)
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM event ORDER BY id")
        rows = cursor.fetchall()
        if database.dialect == "sqlite":
            cursor.execute("DELETE FROM event")
            raw.commit()
            placeholders = ", ".join("?" for _ in COLUMNS)
        else:
            cursor.execute("TRUNCATE event")
            raw.commit()
            placeholders = ", ".join("%s" for _ in COLUMNS)
            from psycopg.types.json import Jsonb

            rows = [(*r[:6], Jsonb(r[6]), Jsonb(r[7]) if r[7] is not None else None, *r[8:]) for r in rows]
        statement = f"INSERT INTO event ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            if database.dialect == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(statement, rows[start:start + batch])
            raw.commit()
        elapsed = time.perf_counter() - started
        return len(rows), elapsed
    finally:
        raw.close()
        database.dispose()


def run(engine: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"tutti-bench-{engine}-"))
    url = fresh_database(engine, tmp)
    processes: list[subprocess.Popen] = []
    env = server_env(url, tmp, None if engine == "sqlite" else REDIS)
    try:
        _, write_key = prepare(url)
        events = make_events(args.events, args.users)
        bodies = [orjson.dumps({"batch": events[i:i + args.batch], "sentAt": datetime.now(UTC).isoformat()})
                  for i in range(0, len(events), args.batch)]
        server, base = start_server(env, args.workers)
        processes.append(server)
        if engine != "sqlite":
            processes.extend(start_queue_workers(env, args.queue_workers, args.worker_threads))
        started, accept_elapsed = send_all(base, write_key, bodies, args.clients)
        processed_elapsed = wait_processed(url, len(events), started)
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        processes = []
        rows, bare_elapsed = bare_insert(url, args.batch)
        accepted = len(events) / accept_elapsed
        processed = len(events) / processed_elapsed
        bare = rows / bare_elapsed
        return {"bench": "ingest", "database": engine, "events": len(events), "users": args.users, "batch": args.batch,
                "clients": args.clients, "server_processes": args.workers,
                "worker": "embedded (in the server)" if engine == "sqlite" else f"{args.queue_workers} x tutti worker on Redis",
                "accept_seconds": round(accept_elapsed, 2), "processed_seconds": round(processed_elapsed, 2),
                "accepted_events_per_s": round(accepted), "processed_events_per_s": round(processed),
                "bare_insert_rows_per_s": round(bare),
                "accepted_ratio": round(accepted / bare, 3), "processed_ratio": round(processed / bare, 3)}
    finally:
        for process in processes:
            process.kill()
        if engine != "sqlite":
            cleanup_redis(env["TUTTI_QUEUE_NAME"])
            drop_database(url)
        shutil.rmtree(tmp, ignore_errors=True)


def cleanup_redis(name: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--queue-workers", type=int, default=2, help="`tutti worker` processes (PostgreSQL runs)")
    parser.add_argument("--worker-threads", type=int, default=2, help="threads per `tutti worker`")
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    for engine in args.engines.split(","):
        print(json.dumps(run(engine.strip(), args)), flush=True)


if __name__ == "__main__":
    main()
