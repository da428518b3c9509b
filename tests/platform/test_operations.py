"""Operations: /healthz, /metrics, JSON errors and structured logs."""

import json
import logging

from fastapi.testclient import TestClient
from huey import RedisHuey

from tutti.platform import jobs, logs
from tutti.platform.config import Settings
from tutti.web.app import create_app


def test_healthz_reports_database_and_queue(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "queue": "ok"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path):
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:1/none", queue_url="immediate", data_dir=tmp_path)
    with TestClient(create_app(settings, run_worker=False)) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"].startswith("error") and answer.json()["queue"] == "ok"


def test_healthz_is_503_when_the_queue_is_unreachable(client, monkeypatch):
    monkeypatch.setattr(jobs, "huey", RedisHuey("tutti", url="redis://127.0.0.1:1/0"))
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["queue"].startswith("error")


def test_metrics_count_requests_by_route_template(client):
    client.get("/healthz")
    client.get("/api/v1/contacts/12345")
    text = client.get("/metrics").text
    assert 'tutti_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "tutti_http_request_seconds_bucket" in text and "tutti_queue_pending" in text
    assert "/api/v1/contacts/12345" not in text  # raw paths would make unbounded label values


def test_unknown_route_and_method_answer_json(client):
    answer = client.get("/no/such/page")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    answer = client.delete("/healthz")
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"


def test_logs_are_one_json_object_per_line(capsys):
    logs.setup("INFO", json=True)
    logging.getLogger("tutti.test").info("imported", extra={"rows": 3})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "imported" and entry["rows"] == 3 and entry["level"] == "info"
    logs.setup("INFO", json=False)
