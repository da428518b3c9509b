"""Benchmark: concurrent chat-widget conversations against a real `tutti serve`, on loopback.

Each simulated visitor does what the widget does: starts a session (a new anonymous id), opens the SSE
stream of its conversation, and sends messages through the public endpoint — one at a time, waiting for
the AI agent's reply to arrive on the stream, then "typing" for a moment before the next. Questions are
ones the demo knowledge base answers, so the bot keeps the conversation (a hand-off would end the bot's
replies). Figures, one JSON line:

- `messages_per_s`: customer messages answered per second (the answer arrived on the stream);
- `latency_ms_p50/p95`: from the send request leaving the client to the bot's reply arriving on the
  visitor's SSE stream (the full path: HTTP, agent decision, commit, after-commit event, fan-out, SSE);
- `errors`: failed requests or streams; `lost`: messages stored in the conversation (read back from the
  history endpoint at the end) that never arrived on the visitor's stream — must be 0.

With `--servers 2` the run uses a Redis queue and two `tutti serve` processes: each visitor's stream is
on one server and its sends go to the other, so every reply crosses processes through Redis pub/sub.

    .venv/bin/python bench/widget_concurrency.py [--visitors 200] [--seconds 60] [--servers 1|2]
                                                  [--think 1.0] [--database sqlite|postgresql]

Also called from bench/agent.py (concurrent_widget_conversations()).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = str(ROOT / "src")
REDIS_URL = "redis://127.0.0.1:6379/0"
REPLY_TIMEOUT = 60  # seconds a visitor waits for the reply before counting a timeout

FAQ = [
    ("運費怎麼算", "單筆訂單滿 NT$1,500 免運,未滿酌收 NT$80。", ["運費怎麼算?", "運費多少", "多少錢免運", "有免運嗎", "how much is shipping"]),
    ("退貨", "收到商品 7 天內可申請退貨,請保留完整包裝。", ["可以退貨嗎", "怎麼退貨", "退貨規定", "how do I return an item"]),
    ("付款方式", "我們接受信用卡、LINE Pay、ATM 轉帳與超商取貨付款。", ["可以用什麼付款", "付款方式有哪些", "可以用 LINE Pay 嗎", "payment methods"]),
    ("出貨時間", "下單後 1–2 個工作天出貨,宅配約 1–2 天送達。", ["多久會出貨", "什麼時候寄出", "出貨要幾天", "when will it ship"]),
    ("門市", "目前只有網路商店,沒有實體門市。", ["有門市嗎", "實體店在哪", "可以去店裡看嗎", "do you have a store"]),
    ("發票", "我們開立電子發票,會寄到您的 e-mail,也可存入載具。", ["有開發票嗎", "發票怎麼拿", "可以打統編嗎", "do you issue invoices"]),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    name = f"tutti_bench_widget_{os.getpid()}"
    for sql in (f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c", sql], check=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _prepare(url: str) -> str:
    """Migrate, create the workspace and its knowledge base; returns the widget key."""
    from tutti.converse.knowledge import service as knowledge
    from tutti.converse.widget import service as widget
    from tutti.platform import migrate, workspaces
    from tutti.platform.audit import Actor
    from tutti.platform.db import Database

    migrate.upgrade(url)
    database = Database(url)
    with database.session() as db:
        workspace = workspaces.create_workspace(db, name="好日子生活選物 bench")
        for title, answer, phrasings in FAQ:
            knowledge.create_item(db, workspace_id=workspace.id, actor=Actor.cli(), title=title, answer=answer, phrasings=phrasings)
        key = widget.config_for(db, workspace_id=workspace.id).public_key
    database.dispose()
    return key


def _env(url: str, tmp: Path, redis_queue: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
    env.update({
        "PYTHONPATH": SOURCE, "TUTTI_DATABASE_URL": url, "TUTTI_DATA_DIR": str(tmp / "data"), "TUTTI_SECRET_KEY": "bench",
        "TUTTI_LOG_LEVEL": "WARNING", "TUTTI_LOG_JSON": "false",
        # one address plays 200 visitors: lift the per-address and per-visitor guards for the run
        "TUTTI_WIDGET_MESSAGES_PER_MINUTE": "100000", "TUTTI_WIDGET_REQUESTS_PER_MINUTE_PER_ADDRESS": "10000000",
        # numpy's BLAS threads per embedding, times the server's request threads, oversubscribe the
        # cores: one query embedding took 2.3 s instead of 0.13 s on a busy 2-core machine
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    if redis_queue:
        env.update({"TUTTI_QUEUE_URL": REDIS_URL, "TUTTI_QUEUE_NAME": redis_queue})
    return env


def _start(env: dict) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "tutti.cli", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"tutti serve exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("tutti serve did not come up")
        time.sleep(0.3)


class Visitor:
    def __init__(self, n: int, stream_base: str, send_base: str, key: str, stats: dict, think: float):
        self.n, self.key, self.stats, self.think = n, key, stats, think
        self.stream_api = f"{stream_base}/widget/api/{key}"
        self.send_api = f"{send_base}/widget/api/{key}"
        self.token = ""
        self.conversation = 0
        self.seen: set[int] = set()
        self.replies: asyncio.Queue = asyncio.Queue()
        self.rng = random.Random(n)
        self.answered_at = 0.0

    async def post(self, session, path: str, body: dict) -> dict:
        async with session.post(self.send_api + path, data=json.dumps(body), headers={"Content-Type": "text/plain"}) as response:
            payload = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{path}: {response.status} {payload}")
            return payload

    async def listen(self, session, after: int) -> None:
        """The SSE stream, reconnecting with Last-Event-ID like EventSource does."""
        last = after
        while True:
            try:
                params = {"token": self.token, "conversation": self.conversation, "after": after}
                headers = {"Last-Event-ID": str(last)} if last else {}
                async with session.get(self.stream_api + "/stream", params=params, headers=headers, timeout=None) as response:
                    if response.status != 200:
                        raise RuntimeError(f"stream: {response.status}")
                    data, event = None, None
                    async for raw in response.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("data: "):
                            data = line[6:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line == "" and data is not None:
                            if event == "message":
                                message = json.loads(data)
                                self.seen.add(message["id"])
                                last = max(last, message["id"])
                                if message["author"] == "bot":
                                    self.replies.put_nowait((time.perf_counter(), message))
                            data, event = None, None
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - count it and reconnect, as the widget does
                self.stats["errors"] += 1
                await asyncio.sleep(1)

    async def run(self, session, until: float) -> None:
        """Conversations one after another until time is up: each asks every FAQ topic once, in a random
        order and phrasing (asking one thing three times is a hand-off trigger, and the bot stops), then
        the visitor leaves and a new one (new anonymous id, new conversation) takes the seat."""
        while time.perf_counter() < until:
            try:
                await self._conversation(session, until)
            except Exception:  # noqa: BLE001
                self.stats["errors"] += 1
                await asyncio.sleep(1)

    async def _conversation(self, session, until: float) -> None:
        self.seen, self.replies, self.conversation = set(), asyncio.Queue(), 0
        started = await self.post(session, "/session", {"anonymous_id": uuid.uuid4().hex})
        self.token = started["token"]
        topics = list(range(len(FAQ)))
        self.rng.shuffle(topics)
        listener = None
        try:
            for topic in topics:
                if time.perf_counter() >= until:
                    break
                sent = await self._send(session, self.rng.choice(FAQ[topic][2][:4]))
                if sent is None:
                    continue
                if listener is None:  # the first message created the conversation: open its stream
                    listener = asyncio.create_task(self.listen(session, after=0))
                await self._await_reply(*sent)
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think)
            if self.conversation:
                # every stored message must come on the stream: wait for stragglers while it is open
                stored = await self.stored_ids(session)
                deadline = time.perf_counter() + 20
                while [i for i in stored if i not in self.seen] and time.perf_counter() < deadline:
                    await asyncio.sleep(0.2)
                self.stats["stored"] += len(stored)
                self.stats["lost"] += len([i for i in stored if i not in self.seen])
                self.stats["conversations"] += 1
        finally:
            if listener is not None:
                listener.cancel()

    async def _send(self, session, question: str):
        began = time.perf_counter()
        try:
            answer = await self.post(session, "/messages", {"token": self.token, "text": question,
                                                             "client_id": uuid.uuid4().hex[:24]})
        except Exception:  # noqa: BLE001
            self.stats["errors"] += 1
            return None
        self.conversation = answer["conversation_id"]
        self.stats["sent"] += 1
        self.stats["post_latencies"].append((time.perf_counter() - began) * 1000)
        self.answered_at = time.perf_counter()
        return began, answer["message"]["id"]

    async def _await_reply(self, began: float, message_id: int) -> None:
        deadline = began + REPLY_TIMEOUT
        while True:
            try:
                arrived, reply = await asyncio.wait_for(self.replies.get(), timeout=max(0.1, deadline - time.perf_counter()))
            except TimeoutError:
                self.stats["timeouts"] += 1
                return
            if reply["id"] > message_id:
                self.stats["latencies"].append((arrived - began) * 1000)
                # the reply was committed before the send request answered: this is the event path alone
                self.stats["delivery"].append(max(0.0, arrived - self.answered_at) * 1000)
                self.stats["answered"] += 1
                return

    async def stored_ids(self, session) -> list[int]:
        async with session.get(self.send_api + "/messages", params={"token": self.token}) as response:
            return [m["id"] for m in (await response.json())["messages"]]


async def _drive(stream_bases: list[str], send_bases: list[str], key: str, visitors: int, seconds: float, think: float) -> dict:
    import aiohttp

    stats = {"sent": 0, "answered": 0, "errors": 0, "timeouts": 0, "latencies": [], "post_latencies": [], "delivery": [], "stored": 0, "lost": 0, "conversations": 0}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as session:
        people = [Visitor(n, stream_bases[n % len(stream_bases)], send_bases[n % len(send_bases)], key, stats, think)
                  for n in range(visitors)]
        # visitors arrive over the first two seconds, not in one instant
        began = time.perf_counter()
        until = began + seconds
        tasks = []
        for person in people:
            tasks.append(asyncio.create_task(person.run(session, until)))
            await asyncio.sleep(2.0 / visitors)
        await asyncio.gather(*tasks)
        stats["elapsed"] = time.perf_counter() - began
    return stats


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrent_widget_conversations(*, visitors: int = 200, seconds: float = 60, servers: int = 1, think: float = 1.0,
                                    database: str = "sqlite") -> dict:
    """Run the benchmark (fresh database, real `tutti serve` processes); returns and prints its JSON line."""
    sys.path.insert(0, SOURCE)
    tmp = Path(tempfile.mkdtemp(prefix="tutti-bench-widget-"))
    url = _fresh_database(database, tmp)
    redis_queue = f"tutti-bench-widget-{os.getpid()}" if servers > 1 else None
    processes = []
    try:
        key = _prepare(url)
        env = _env(url, tmp, redis_queue)
        bases = []
        for _ in range(servers):
            process, base = _start(env)
            processes.append(process)
            bases.append(base)
        import httpx

        for base in bases:  # warm up: the first question loads the embeddings model in each server
            anon = uuid.uuid4().hex
            token = httpx.post(f"{base}/widget/api/{key}/session", content=json.dumps({"anonymous_id": anon}), timeout=60).json()["token"]
            httpx.post(f"{base}/widget/api/{key}/messages", content=json.dumps({"token": token, "text": "運費怎麼算?"}), timeout=120)
        send_bases = bases[1:] + bases[:1]  # with two servers, each visitor sends to the other one
        stats = asyncio.run(_drive(bases, send_bases, key, visitors, seconds, think))
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if database == "postgresql":
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-q", "-c",
                            f'DROP DATABASE IF EXISTS "tutti_bench_widget_{os.getpid()}" WITH (FORCE)'], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    latencies = stats["latencies"]
    line = {
        "bench": "widget_concurrency", "database": database, "servers": servers, "visitors": visitors,
        "seconds": round(stats["elapsed"], 1), "messages_sent": stats["sent"], "messages_answered": stats["answered"],
        "messages_per_s": round(stats["answered"] / stats["elapsed"], 1) if stats["elapsed"] else None,
        "latency_ms_p50": round(_percentile(latencies, 0.5), 1) if latencies else None,
        "latency_ms_p95": round(_percentile(latencies, 0.95), 1) if latencies else None,
        # the send request alone (the agent decides inside it); the rest is commit → event → SSE
        "send_request_ms_p50": round(_percentile(stats["post_latencies"], 0.5), 1) if stats["post_latencies"] else None,
        "send_request_ms_p95": round(_percentile(stats["post_latencies"], 0.95), 1) if stats["post_latencies"] else None,
        "delivery_after_send_ms_p95": round(_percentile(stats["delivery"], 0.95), 1) if stats["delivery"] else None,
        "errors": stats["errors"], "reply_timeouts": stats["timeouts"], "conversations": stats["conversations"],
        "stored_messages": stats["stored"], "lost": stats["lost"],
    }
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--servers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds a visitor waits before the next message")
    parser.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    concurrent_widget_conversations(visitors=args.visitors, seconds=args.seconds, servers=args.servers, think=args.think,
                                    database=args.database)


if __name__ == "__main__":
    main()
