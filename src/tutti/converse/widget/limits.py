"""Rate limits of the public widget endpoints: token buckets per visitor and per address.

With a Redis queue (several `tutti serve` processes) the buckets live in Redis, shared by every process
(platform.ratelimit, one Lua script per check), so a client gets the same rate however many processes
serve it. Embedded, they live in this process.
"""

from __future__ import annotations

import threading
import time

from tutti.platform import ratelimit
from tutti.platform.errors import RateLimited

_MAX_BUCKETS = 50_000  # forget idle buckets beyond this, so a scan of many addresses cannot grow memory


class Limiter:
    def __init__(self, *, name: str, rate: float, burst: int):
        self.name, self.rate, self.burst = name, rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, tokens: float = 1.0) -> bool:
        shared = ratelimit.shared_buckets()
        if shared is not None:
            return shared.take(f"widget:{self.name}:{key}", tokens, self.rate, self.burst)
        now = time.monotonic()
        with self._lock:
            level, at = self._buckets.get(key, (float(self.burst), now))
            level = min(float(self.burst), level + (now - at) * self.rate)
            if level < tokens:
                self._buckets[key] = (level, now)
                return False
            self._buckets[key] = (level - tokens, now)
            if len(self._buckets) > _MAX_BUCKETS:
                full = [k for k, (lvl, t) in self._buckets.items() if lvl + (now - t) * self.rate >= self.burst]
                for k in full:
                    del self._buckets[k]
            return True

    def check(self, key: str, what: str) -> None:
        if not self.allow(key):
            raise RateLimited(f"too many {what}; wait a moment and try again")


# A person types a few messages a minute; 20 in a burst then one every 2 s stops a script, not a person.
messages = Limiter(name="messages", rate=0.5, burst=20)
# Session starts and history reads per address: a shop's office behind one NAT opens many tabs.
address = Limiter(name="address", rate=20.0, burst=200)


def configure(*, messages_per_minute: int, requests_per_minute_per_address: int) -> None:
    """From the settings (TUTTI_WIDGET_…): benchmarks simulating many visitors on one address raise them."""
    global messages, address
    messages = Limiter(name="messages", rate=messages_per_minute / 60, burst=max(5, messages_per_minute * 2 // 3))
    address = Limiter(name="address", rate=requests_per_minute_per_address / 60, burst=max(20, requests_per_minute_per_address // 6))
