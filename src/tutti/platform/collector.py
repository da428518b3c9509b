"""Fewer cyclic garbage collections while a bulk job runs.

A broadcast's sender allocates several short-lived tuples per recipient (the driver's rows, grouping keys),
hundreds of thousands a second. CPython runs a young collection every 700 allocations, and because the
rows of a claim live until it is sent, they are promoted and soon trigger full collections: in a 7.5 s,
300,000-recipient send, five of them took 185–280 ms each with every thread stopped (the GIL is held
throughout), about a seventh of the send. Nothing the sender builds is cyclic: reference counting
frees all of it. So while any such job runs, young collections wait for 100,000 allocations and full ones
for many of those; the process's own thresholds come back when the last job ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (100_000, 50, 1_000)

_lock = threading.Lock()
_running = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _running, _saved
    with _lock:
        if _running == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
