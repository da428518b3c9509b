"""Benchmarks of Converse's AI agents, one JSON line per figure.

- Concurrency (helper "inbox"): `concurrent_widget_conversations()` — 200 widget visitors on loopback
  for a minute against a real `tutti serve`: messages/s, p95 latency from send to the bot's reply on the
  visitor's SSE stream, errors, lost messages (see bench/widget_concurrency.py).
- Decision latency (helper "knowledge"): offline decisions with a 5,000-item knowledge base, p50/p95.

    .venv/bin/python bench/agent.py [--visitors 200] [--seconds 60] [--servers 1] [--skip-concurrency]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def concurrent_widget_conversations(*, visitors: int = 200, seconds: float = 60, servers: int = 1) -> dict:
    from widget_concurrency import concurrent_widget_conversations as run

    return run(visitors=visitors, seconds=seconds, servers=servers)


def main() -> None:
    parser = argparse.ArgumentParser(description="Converse agent benchmarks")
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--servers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--skip-concurrency", action="store_true")
    args = parser.parse_args()
    if not args.skip_concurrency:
        concurrent_widget_conversations(visitors=args.visitors, seconds=args.seconds, servers=args.servers)


if __name__ == "__main__":
    main()
