"""Running the real `tutti` commands as processes, the way people run them, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SOURCE = str(Path(__file__).resolve().parents[1] / "src")
REDIS_URL = "redis://127.0.0.1:6379/0"


def tutti_env(database_url: str, data_dir: Path, **settings: str) -> dict:
    """The environment of a `tutti` process: this one's, less any TUTTI_* of ours, plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")}
    env.update({"TUTTI_DATA_DIR": str(data_dir), "TUTTI_DATABASE_URL": database_url, "TUTTI_SECRET_KEY": "process-test",
                "PYTHONPATH": SOURCE})
    env.update({f"TUTTI_{key.upper()}": value for key, value in settings.items()})
    return env


def redis_queue_env(env: dict) -> dict:
    """`env` on a Redis queue of its own (skipped when Redis is down, except under CI)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable: {error}")
    return {**env, "TUTTI_QUEUE_URL": REDIS_URL, "TUTTI_QUEUE_NAME": f"tutti-test-{os.getpid()}-{time.monotonic_ns()}"}


def forget_queue(env: dict) -> None:
    import redis

    queue = redis.Redis.from_url(REDIS_URL)
    for key in queue.scan_iter(f"*{env['TUTTI_QUEUE_NAME']}*"):
        queue.delete(key)


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tutti.cli", *args], env=env, capture_output=True, text=True, timeout=120, check=True)


def _start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tutti.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@contextmanager
def serving(env: dict) -> Iterator[str]:
    """`tutti serve` on a free port until the block ends; yields its URL once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = _start(env, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"tutti serve exited: {process.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("tutti serve did not come up")
            time.sleep(0.2)
        yield base
    finally:
        _stop(process)


@contextmanager
def working(env: dict) -> Iterator[subprocess.Popen]:
    """`tutti worker` until the block ends."""
    process = _start(env, "worker")
    try:
        yield process
    finally:
        _stop(process)
