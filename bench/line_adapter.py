"""How close the LINE adapter gets to LINE's multicast rate limit, against the LINE emulator.

Starts `tutti line-emulator` in its own process with LINE's real limits (multicast 200 requests/s, 500
recipients each), then sends N recipients through `tutti.channels.line` (line-bot-sdk, retry keys, the shared
rate limiter at the channel's configured 200/s) from T threads, and prints JSON lines: requests per second
and its share of the limit, recipients per second, CPU per request of the adapter and of the emulator (what
decides the ceiling on a quiet machine: 1000 / (adapter + emulator ms) requests per second per core), the
load average, 429 answers, and whether every recipient got exactly one message.

    .venv/bin/python bench/line_adapter.py --recipients 200000 --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """CPU time of another process (Linux), to tell the adapter's cost from the emulator's on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def emit(figure: str, value, unit: str, **extra) -> None:
    print(json.dumps({"bench": "line_adapter", "figure": figure, "value": value, "unit": unit, **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--limit", type=float, default=200.0, help="the emulator's multicast limit (LINE: 200/s)")
    args = parser.parse_args()

    from tutti.channels import line
    from tutti.channels.base import Outgoing

    port = _port()
    url = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen([str(ROOT / ".venv/bin/tutti"), "line-emulator", "--port", str(port), "--rate-multicast", str(args.limit)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_emulator/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    sys.exit("the emulator did not start")
                time.sleep(0.2)
        adapter = line.from_channel(channel_id=1, config={"api_base_url": url, "channel_id": f"bench-{uuid.uuid4().hex[:6]}",
                                                          "multicast_rate": args.limit},
                                    secrets={"access_token": "emulator-channel-access-token"})
        payload = {"messages": [{"type": "text", "text": "雙11 全館 8 折 https://shop.example/sale"}]}
        users = [f"U{uuid.uuid4().hex}" for _ in range(args.recipients)]
        groups = [[Outgoing(key=str(uuid.uuid4()), to=u, payload=payload) for u in users[i:i + 500]] for i in range(0, len(users), 500)]
        emulator_cpu, client_cpu = _cpu_seconds(emulator.pid), time.process_time()
        pending, retried, started = groups, 0, time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            while pending:
                results = list(pool.map(adapter.send, pending))
                again = [g for g, outcomes in zip(pending, results, strict=True) if outcomes[0].status == "retry"]
                retried += len(again)
                pending = again
        seconds = time.perf_counter() - started
        client_cpu, emulator_cpu = time.process_time() - client_cpu, _cpu_seconds(emulator.pid) - emulator_cpu
        adapter.close()
        stats = httpx.get(f"{url}/_emulator/stats", timeout=60).json()
        counts = httpx.get(f"{url}/_emulator/counts", timeout=120).json()
        requests = len(groups)
        emit("multicast_requests_per_second", round(requests / seconds, 1), "req/s", limit=args.limit,
             share_of_limit=round(requests / seconds / args.limit, 3), threads=args.threads)
        emit("recipients_per_second", round(args.recipients / seconds), "recipients/s", recipients=args.recipients)
        emit("adapter_cpu_per_request", round(client_cpu / requests * 1000, 2), "ms",
             note="line-bot-sdk + grouping + retry keys + outcomes, for 500 recipients")
        emit("emulator_cpu_per_request", round(emulator_cpu / requests * 1000, 2), "ms")
        emit("load_average", os.getloadavg()[0], "1-min", cpus=os.cpu_count())
        emit("rate_limited_answers", stats["rejected_429"], "requests", retried_groups=retried)
        emit("exactly_once", counts["users"] == args.recipients and counts["messages"] == args.recipients, "bool",
             users=counts["users"], messages=counts["messages"])
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
