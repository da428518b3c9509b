"""Background work of channels: importing this module registers its huey tasks."""

from __future__ import annotations

import threading

from tutti.platform.jobs import on_tick, task

_running = threading.Lock()
_wanted = threading.Event()


def drain_line_events() -> None:
    """Process stored LINE events until none is pending. One run per process at a time (so a customer's
    events keep their order here); a wake-up during a run makes that run look again before it ends."""
    from tutti.channels import webhooks

    _wanted.set()
    while _wanted.is_set():
        if not _running.acquire(blocking=False):
            return
        try:
            _wanted.clear()
            limit = 500
            while webhooks.process_pending(limit=limit)[0] == limit:  # a full batch: there may be more
                pass
        finally:
            _running.release()


@task()
def process_line_events_task() -> None:
    """Wake-up sent after a LINE webhook stored new events; the events themselves are rows."""
    drain_line_events()


@on_tick
def process_leftover_line_events() -> None:
    """Events whose wake-up was lost, or whose handler failed last time, are tried again."""
    drain_line_events()
