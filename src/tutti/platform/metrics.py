"""Prometheus figures: requests, jobs and the queue."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter("tutti_http_requests_total", "HTTP requests", ["method", "route", "status"])
REQUEST_SECONDS = Histogram("tutti_http_request_seconds", "HTTP request duration", ["method", "route"])
JOBS = Counter("tutti_jobs_total", "Background jobs finished", ["task", "outcome"])
JOB_SECONDS = Histogram("tutti_job_seconds", "Background job duration", ["task"])
QUEUE_PENDING = Gauge("tutti_queue_pending", "Jobs waiting in the queue")
EVENTS_INGESTED = Counter("tutti_events_ingested_total", "Events stored through the tracking API", ["kind"])
EVENTS_ACCEPTED = Counter("tutti_events_accepted_total", "Messages accepted (200) by the tracking API into its inbox")
INBOUND_PENDING = Gauge("tutti_inbound_pending", "Tracking API inbox backlog, not yet stored", ["unit"])  # batches, messages
INBOUND_FAILED = Counter("tutti_inbound_batches_failed_total", "Tracking API batches set aside after repeated failures")


async def middleware(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")  # the template, not the raw path: bounded label values
    REQUESTS.labels(request.method, path, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(request.method, path).observe(time.perf_counter() - started)
    return response


def render() -> Response:
    from tutti.platform import jobs

    try:
        QUEUE_PENDING.set(jobs.pending_count())
    except Exception:  # the queue being down is reported by /healthz; figures still render
        pass
    try:
        from tutti.audience import tracking

        batches, messages = tracking.backlog()
        INBOUND_PENDING.labels("batches").set(batches)
        INBOUND_PENDING.labels("messages").set(messages)
    except Exception:  # noqa: BLE001, S110 - the database being down is reported by /healthz too
        pass
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
