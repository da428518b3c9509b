"""A LINE broadcast to N recipients (default 1,000,000) through the send engine, against the LINE emulator
running as a separate process with LINE's real multicast limit (200 requests/s).

    .venv/bin/python bench/broadcast.py [--recipients 1000000] [--database postgresql+psycopg://…/tutti_bench_broadcast] [--phases]

Builds its own database (PostgreSQL by default, `tutti_bench_broadcast`, dropped and created) with N
contacts who follow the LINE account (set-based INSERT … SELECT), sends one campaign personalised by city
(`{{ city | default("台灣") }}`: ~20 distinct payloads, so recipients are grouped into multicasts of 500),
and prints one JSON line per figure: audience snapshot time, personalised render rate (sandboxed Jinja2
per recipient, no memo), the sustained multicast rate as a share of the limit, total time, duplicates and
losses (from the emulator's own per-user counts). A second, smaller run sends a message with a tracked
link — different for every recipient, so one push each — and reports its rate. `--phases` adds where the
sender's time went (wall seconds of each engine step, summed over threads).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TUTTI_QUEUE_URL", "immediate")
os.environ.setdefault("TUTTI_LOG_JSON", "false")
os.environ.setdefault("TUTTI_SECRET_KEY", "bench-broadcast")
os.environ.setdefault("TUTTI_DATA_DIR", tempfile.mkdtemp(prefix="tutti-bench-broadcast-"))

CITIES = ["台北市", "新北市", "桃園市", "台中市", "台南市", "高雄市", "基隆市", "新竹市", "嘉義市", "新竹縣", "苗栗縣", "彰化縣",
          "南投縣", "雲林縣", "嘉義縣", "屏東縣", "宜蘭縣", "花蓮縣", "台東縣"]


def figure(name: str, value, unit: str = "", **extra) -> None:
    print(json.dumps({"figure": name, "value": value, "unit": unit, **extra}, ensure_ascii=False), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(multicast_rate: float, push_rate: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tutti.cli", "line-emulator", "--port", str(port), "--rate-multicast",
                                str(multicast_rate), "--rate-push", str(push_rate), "--allow-http-urls"],
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/_emulator/stats", timeout=2).raise_for_status()
            return process, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the LINE emulator did not start") from None
            time.sleep(0.2)


def fresh_database(url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tutti.platform import migrate

    if url.startswith("postgresql"):
        parsed = make_url(url)
        admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        admin.dispose()
    else:
        Path(make_url(url).database).unlink(missing_ok=True)
    migrate.upgrade(url)
    return url


def make_people(database, workspace_id: int, count: int) -> float:
    """`count` LINE followers with a name and a city, set-based."""
    from sqlalchemy import text

    started = time.perf_counter()
    postgres = database.dialect == "postgresql"
    series = ("SELECT g AS n FROM generate_series(1, :count) AS g" if postgres else
              "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count) SELECT n FROM s")
    cities = "ARRAY[" + ",".join(f"'{c}'" for c in CITIES) + "]"
    city = f"({cities})[1 + n % {len(CITIES)}]" if postgres else "'" + CITIES[0] + "'"
    now = "now()" if postgres else "CURRENT_TIMESTAMP"
    with database.session() as db:
        db.execute(text(f"INSERT INTO contact (workspace_id, name, city, attributes, created_at, updated_at) "
                        f"SELECT :w, '會員' || n, CASE WHEN n % 10 = 0 THEN NULL ELSE {city} END, '{{}}', {now}, {now} FROM ({series}) AS q"),
                   {"w": workspace_id, "count": count})
        md5 = "md5(c.id::text)" if postgres else "printf('%032x', c.id)"
        db.execute(text(f"INSERT INTO identity (workspace_id, contact_id, kind, value, source, created_at) "
                        f"SELECT c.workspace_id, c.id, 'line_uid', 'U' || {md5}, 'bench', {now} FROM contact c WHERE c.workspace_id = :w"),
                   {"w": workspace_id})
        db.execute(text(f"INSERT INTO consent (contact_id, channel, workspace_id, status, source, updated_at) "
                        f"SELECT c.id, 'line', c.workspace_id, 'subscribed', 'bench', {now} FROM contact c WHERE c.workspace_id = :w"),
                   {"w": workspace_id})
    if postgres:
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE contact, identity, consent"))
    return time.perf_counter() - started


def render_rate(database, workspace_id: int, sample: int = 50_000) -> tuple[float, float]:
    """Personalised renders per second: sandboxed Jinja2 per recipient (no memo), and through the fast path
    the templates package compiles simple templates to."""
    from sqlalchemy import select

    from tutti.audience.models import Contact
    from tutti.reach.campaigns import content
    from tutti.reach.templates import service as templates

    with database.read_session() as db:
        ids = list(db.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id).order_by(Contact.id).limit(sample)))
        contexts = content.load_contexts(db, workspace_id=workspace_id, contact_ids=ids)
    renderer = templates.compile_content("line", {"messages": [
        {"type": "text", "text": "{{ first_name | default('朋友') }} 您好！{{ city | default('台灣') }}門市週年慶，會員 {{ name }} 專屬 8 折。"}]})
    started = time.perf_counter()
    for contact_id in ids:
        renderer.render(contexts[contact_id])
    per_recipient = len(ids) / (time.perf_counter() - started)
    loop = renderer.render(contexts[ids[0]])
    assert "您好" in loop["messages"][0]["text"]
    return per_recipient, len(ids)


def broadcast(database, workspace_id: int, channel_id: int, emulator: str, *, text: str, name: str, contact_ids=None) -> dict:
    from sqlalchemy import func, select

    from tutti.platform.audit import Actor
    from tutti.platform.db import utcnow
    from tutti.reach.campaigns import engine, service
    from tutti.reach.campaigns.models import Campaign, Delivery

    segment = None
    if contact_ids is None:
        segment = "all"
    with database.session() as db:
        audience = {"contact_ids": contact_ids} if contact_ids else {"contact_ids": [1]}
        campaign = service.create(db, workspace_id=workspace_id, actor=Actor.cli(), data={
            "name": name, "audience": audience, "channels": ["line"], "channel_ids": {"line": channel_id},
            "variants": [{"name": "A", "split_percent": 100, "content": {"line": {"messages": [{"type": "text", "text": text}]}}}]})
        campaign_id = campaign.id
    if segment == "all":  # the whole workspace: a materialised "segment" of everyone, as segments.refresh would leave it
        _everyone_segment(database, workspace_id, campaign_id)
    httpx.post(f"{emulator}/_emulator/reset", timeout=60)
    stats_before = httpx.get(f"{emulator}/_emulator/stats", timeout=60).json()
    started = time.perf_counter()
    with database.session() as db:
        campaign = db.get(Campaign, campaign_id)
        campaign.status, campaign.started_at = "sending", utcnow()
        service.take_audience(db, campaign=campaign)
    snapshot = time.perf_counter() - started
    send_started = time.perf_counter()
    result = engine.run(campaign_id, database=database)
    send_seconds = time.perf_counter() - send_started
    total = time.perf_counter() - started
    stats = httpx.get(f"{emulator}/_emulator/stats", timeout=60).json()
    with database.read_session() as db:
        statuses = dict(db.execute(select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
                                   .group_by(Delivery.status)).all())
        deliveries = db.get(Campaign, campaign_id).deliveries_count
        addresses = set() if deliveries > 50_000 else set(db.scalars(select(Delivery.address).where(Delivery.campaign_id == campaign_id)))
    counts = httpx.get(f"{emulator}/_emulator/counts", timeout=600).json()["counts"]
    duplicates = sum(1 for n in counts.values() if n > 1)
    received = sum(1 for n in counts.values() if n >= 1)
    losses = deliveries - received
    if addresses:
        losses = sum(1 for a in addresses if counts.get(a, 0) == 0)
    return {"campaign_id": campaign_id, "result": result, "snapshot_s": snapshot, "send_s": send_seconds, "total_s": total,
            "deliveries": deliveries, "statuses": statuses, "requests": stats["requests"] - stats_before.get("requests", 0),
            "rejected_429": stats["rejected_429"], "duplicates": duplicates, "losses": losses}


def _everyone_segment(database, workspace_id: int, campaign_id: int) -> None:
    """Point the campaign at a segment holding every contact (created through the segments service when it is
    there; a segment_member table filled set-based either way)."""
    from sqlalchemy import text

    from tutti.reach.campaigns.models import Campaign

    with database.session() as db:
        segment_id = db.execute(text("SELECT id FROM segment WHERE workspace_id = :w LIMIT 1"), {"w": workspace_id}).scalar()
        campaign = db.get(Campaign, campaign_id)
        campaign.audience = {"segment_ids": [segment_id], "exclude_segment_ids": [], "contact_ids": []}


def make_segment(database, workspace_id: int) -> int:
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service as segments

    with database.session() as db:
        segment = segments.create_segment(db, workspace_id=workspace_id, name="LINE 好友", actor=Actor.cli(),
                                          rules={"version": 1, "root": {"kind": "group", "op": "and",
                                                                              "children": [{"kind": "reachable", "channel": "line"}]}})
        return segment.id


def time_engine_phases() -> dict[str, float]:
    """Wrap the send engine's steps to add up the wall time each takes (a diagnostic: it changes nothing
    they do). Returns the dict the wrappers fill."""
    import functools
    import threading

    from tutti.reach.campaigns import content, engine

    seconds: dict[str, float] = {}
    lock = threading.Lock()

    def timed(name, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        return wrapper

    for name in ("claim", "_take_fresh", "_write_batches", "record"):
        setattr(engine, name, timed(name.strip("_"), getattr(engine, name)))
    content.load_contexts = timed("load_contexts", content.load_contexts)
    engine.Sender.send = timed("provider_calls", engine.Sender.send)
    engine.Sender.render = timed("render", engine.Sender.render)
    engine.Sender.group = timed("group", engine.Sender.group)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--links-recipients", type=int, default=10_000, help="size of the tracked-link (one push each) run")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/tutti_bench_broadcast")
    parser.add_argument("--batch", type=int, default=20000, help="campaign_batch_size")
    parser.add_argument("--phases", action="store_true", help="also print where the sender's time went (wall seconds per step)")
    args = parser.parse_args()
    os.environ["TUTTI_CAMPAIGN_BATCH_SIZE"] = str(args.batch)
    os.environ["TUTTI_DATABASE_URL"] = args.database

    from tutti.platform import db as tutti_db
    from tutti.platform import workspaces
    from tutti.platform.audit import Actor
    from tutti.reach.campaigns.models import Campaign  # noqa: F401 - registers the tables

    url = fresh_database(args.database)
    database = tutti_db.configure(url)
    emulator, base = start_emulator(multicast_rate=200.0, push_rate=2000.0)
    try:
        with database.session() as db:
            workspace = workspaces.create_workspace(db, name="Bench Broadcast")
            workspace_id = workspace.id
        built = make_people(database, workspace_id, args.recipients)
        figure("contacts_built", args.recipients, "contacts", seconds=round(built, 1), engine=database.dialect)
        from tutti.channels import service as channels

        with database.session() as db:
            channel_id = channels.connect(db, workspace_id=workspace_id, kind="line", name="LINE", actor=Actor.cli(),
                                          config={"api_base_url": base, "multicast_rate": 200.0, "push_rate": 2000.0},
                                          credentials={"channel_secret": "emulator-channel-secret",
                                                       "access_token": "emulator-channel-access-token"}).id
        import tutti.channels.line  # noqa: F401 - line-bot-sdk takes seconds to import: not part of the figures

        rate, sample = render_rate(database, workspace_id)
        figure("render_rate_personalised", round(rate), "messages/s", target=20000, sample=sample,
               template="first_name, city and name, sandboxed Jinja2 (fast path for simple templates), no memo")
        make_segment(database, workspace_id)
        phases = time_engine_phases() if args.phases else None
        run = broadcast(database, workspace_id, channel_id, base, name="週年慶 by city", text="{{ city | default('台灣') }} 限定：週年慶全館 8 折")
        figure("snapshot_seconds", round(run["snapshot_s"], 1), "s", recipients=run["deliveries"])
        send_rate = run["requests"] / run["send_s"] if run["send_s"] else 0
        figure("multicast_rate", round(send_rate, 1), "requests/s", share_of_limit=round(send_rate / 200.0, 3), target_share=0.8,
               recipients_per_second=round(run["deliveries"] / run["send_s"]), requests=run["requests"],
               rate_limited_answers=run["rejected_429"])
        figure("broadcast_total_seconds", round(run["total_s"], 1), "s", recipients=run["deliveries"], statuses=run["statuses"])
        if phases is not None:
            figure("sender_phases", {name: round(seconds, 2) for name, seconds in sorted(phases.items())}, "s (wall, summed over threads)",
                   note="claim = read rows + contexts + render + group + mark sending (main thread); stage = send + record (overlaps the next claim)")
        figure("duplicates", run["duplicates"], "recipients", target=0)
        figure("losses", run["losses"], "recipients", target=0)
        if args.links_recipients:
            from sqlalchemy import select

            from tutti.audience.models import Contact

            with database.read_session() as db:
                ids = list(db.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id).order_by(Contact.id)
                                      .limit(args.links_recipients)))
            linked = broadcast(database, workspace_id, channel_id, base, name="tracked link", contact_ids=ids,
                               text="{{ first_name | default('朋友') }}，週年慶開跑 https://shop.example.com/sale")
            figure("tracked_link_push_rate", round(linked["deliveries"] / linked["send_s"]), "messages/s",
                   provider_limit=2000, recipients=linked["deliveries"], duplicates=linked["duplicates"], losses=linked["losses"],
                   note="a tracked link differs per recipient: one push each, never a multicast")
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
