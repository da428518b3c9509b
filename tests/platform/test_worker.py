"""Jobs run by real workers: the embedded one inside `tutti serve`, and `tutti worker` beside a Redis queue.

These start the real commands as processes and drive them over HTTP, the way people run Tutti."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.processes import forget_queue, redis_queue_env, run, serving, tutti_env, working

CSV = "姓名,手機,Email\n王小明,0912-345-678,ming@example.com\n林美玲,0922 333 444,mei@example.com\n壞資料,123,\n".encode()


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


@pytest.fixture
def env(database_url, tmp_path) -> dict:
    return tutti_env(database_url, tmp_path / "data")


def test_embedded_worker_inside_serve_runs_an_import(env):
    created = json.loads(run(env, "workspace", "create", "Embedded Shop").stdout)
    with serving(env) as base:
        job = import_status(base, created["api_key"], start_import(base, created["api_key"]), seconds=60)
    assert job["status"] == "done", job
    assert job["ok_rows"] == 2 and job["error_rows"] == 1


def test_separate_worker_process_consumes_the_redis_queue(env):
    env = redis_queue_env(env)
    created = json.loads(run(env, "workspace", "create", "Redis Shop").stdout)
    try:
        with serving(env) as base:
            import_id = start_import(base, created["api_key"])
            # the server alone does not consume a Redis queue
            assert import_status(base, created["api_key"], import_id, seconds=3)["status"] == "queued"
            with working(env):
                job = import_status(base, created["api_key"], import_id, seconds=60)
    finally:
        forget_queue(env)
    assert job["status"] == "done", job
    assert job["ok_rows"] == 2 and job["error_rows"] == 1
