"""Jobs run by real workers: the embedded one inside `tutti serve`, and `tutti worker` beside a Redis queue.

These start the real commands as processes and drive them over HTTP, the way people run Tutti."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

CSV = "姓名,手機,Email\n王小明,0912-345-678,ming@example.com\n林美玲,0922 333 444,mei@example.com\n壞資料,123,\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tutti(env: dict, *args: str, **kwargs) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tutti.cli", *args]
    if kwargs.pop("background", False):
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not come up")


def start_import(base: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{base}/api/v1/imports", headers=headers, files={"file": ("members.csv", CSV, "text/csv")}, data={"kind": "members"})
    assert created.status_code == 201, created.text
    import_id = created.json()["id"]
    started = httpx.post(f"{base}/api/v1/imports/{import_id}/start", headers=headers, json={})
    assert started.status_code in (200, 202), started.text
    return import_id


def import_status(base: str, key: str, import_id: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = httpx.get(f"{base}/api/v1/imports/{import_id}", headers={"Authorization": f"Bearer {key}"}).json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def env(database_url, tmp_path) -> dict:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TUTTI_")},
        "TUTTI_DATA_DIR": str(tmp_path / "data"),
        "TUTTI_DATABASE_URL": database_url,
        "TUTTI_SECRET_KEY": "worker-test",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }


def test_embedded_worker_inside_serve_runs_an_import(env):
    created = json.loads(tutti(env, "workspace", "create", "Embedded Shop").stdout)
    port = free_port()
    server = tutti(env, "serve", "--port", str(port), background=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        job = import_status(base, created["api_key"], start_import(base, created["api_key"]), seconds=60)
    finally:
        stop(server)
    assert job["status"] == "done", job
    assert job["ok_rows"] == 2 and job["error_rows"] == 1


def test_separate_worker_process_consumes_the_redis_queue(env):
    queue = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        queue.ping()
    except redis.ConnectionError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable: {error}")
    name = f"tutti-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {**env, "TUTTI_QUEUE_URL": "redis://127.0.0.1:6379/0", "TUTTI_QUEUE_NAME": name}
    created = json.loads(tutti(env, "workspace", "create", "Redis Shop").stdout)
    port = free_port()
    server = tutti(env, "serve", "--port", str(port), background=True)
    base = f"http://127.0.0.1:{port}"
    worker = None
    try:
        wait_until_up(base, server)
        import_id = start_import(base, created["api_key"])
        # the server alone does not consume a Redis queue
        assert import_status(base, created["api_key"], import_id, seconds=3)["status"] == "queued"
        worker = tutti(env, "worker", background=True)
        job = import_status(base, created["api_key"], import_id, seconds=60)
    finally:
        for process in (worker, server):
            if process:
                stop(process)
        for key in queue.scan_iter(f"*{name}*"):
            queue.delete(key)
    assert job["status"] == "done", job
    assert job["ok_rows"] == 2 and job["error_rows"] == 1
