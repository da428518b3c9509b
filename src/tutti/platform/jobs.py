"""Background jobs with huey.

Embedded (no TUTTI_QUEUE_URL): an SQLite queue in the data directory and a consumer running on threads
inside the server. Distributed (TUTTI_QUEUE_URL=redis://…): Redis, consumed by `tutti worker` processes.
Queue messages only say "look at row N": the state of long work lives in database rows, so a lost or
repeated message loses and duplicates nothing, and the periodic tick picks up work whose worker died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from tutti.platform import metrics
from tutti.platform.config import get_settings

log = logging.getLogger("tutti.jobs")


def _make_huey() -> Huey:
    settings = get_settings()
    url = settings.queue_url
    name = settings.queue_name
    if url == "immediate":
        return MemoryHuey(name, immediate=True)
    if url is None or url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :] if url else str((settings.data_dir / "queue.db").resolve())
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=path)
    return RedisHuey(name, url=url)


huey = _make_huey()

# Periodic work registered by each part: called once a minute by one tick task.
TICK_HANDLERS: list[Callable[[], None]] = []


def task(**options):
    """huey.task that also counts and times each run for /metrics."""

    def decorate(func):
        @wraps(func)
        def measured(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception:
                metrics.JOBS.labels(func.__name__, "error").inc()
                log.exception("job failed", extra={"task": func.__name__})
                raise
            metrics.JOBS.labels(func.__name__, "ok").inc()
            metrics.JOB_SECONDS.labels(func.__name__).observe(time.perf_counter() - started)
            return result

        return huey.task(**options)(measured)

    return decorate


def on_tick(func: Callable[[], None]) -> Callable[[], None]:
    TICK_HANDLERS.append(func)
    return func


@huey.periodic_task(crontab(minute="*"))
def tick() -> None:
    for handler in TICK_HANDLERS:
        try:
            handler()
        except Exception:  # one part failing must not stop the others' scheduled work
            log.exception("tick handler failed", extra={"handler": handler.__name__})


def load_tasks() -> None:
    """Import every part's jobs module so its tasks are registered with huey."""
    import tutti.audience.jobs
    import tutti.channels.jobs
    import tutti.converse.jobs
    import tutti.reach.jobs  # noqa: F401


def pending_count() -> int:
    return huey.pending_count()


def ping() -> None:
    """Raise if the queue's storage cannot be reached."""
    huey.pending_count()


class _ThreadConsumer(Consumer):
    """A consumer that runs beside the web server: no signal handlers (they belong to uvicorn)."""

    def _set_signal_handlers(self) -> None:
        pass


class EmbeddedWorker:
    def __init__(self, threads: int):
        load_tasks()
        self.consumer = _ThreadConsumer(huey, workers=threads, worker_type="thread", periodic=True, check_worker_health=False)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.consumer.start()
        log.info("embedded worker started", extra={"threads": self.consumer.workers})

    def stop(self) -> None:
        self.consumer.stop(graceful=True)


def run_worker(threads: int) -> None:
    """`tutti worker`: a separate consumer process, stopped by SIGINT (gracefully) or SIGTERM."""
    load_tasks()
    Consumer(huey, workers=threads, worker_type="thread", periodic=True).run()
