"""A token bucket per provider account, shared by every worker: `acquire` blocks until the call may go.

With TUTTI_QUEUE_URL=redis://… the bucket lives in Redis and one Lua script updates it atomically, so any
number of `tutti worker` processes together stay under the provider's limit. Otherwise (embedded, tests)
it lives in this process, guarded by a lock.

The bucket is a *reservation* bucket: a caller takes its tokens at once, even into debt, and sleeps until
the debt would have been refilled. One round trip per call, and callers are served in the order they asked
(no thundering retry loop when many threads wait on one bucket).
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, tokens wanted. Stored: level (may be negative = reserved
# ahead) and the time it was computed, from Redis' own clock so workers on different machines agree.
_REFILL = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1])
local at = tonumber(state[2])
if level == nil then
  level = burst
  at = now
end
level = math.min(burst, level + (now - at) * rate / 1000000)
"""
_STORE = """
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - level) / rate * 1000) + 1000)
"""
# Reserve: take the tokens even into debt; returns microseconds to wait (0 = go now).
_LUA = _REFILL + "level = level - want\n" + _STORE + """
if level >= 0 then
  return 0
end
return math.ceil(-level / rate * 1000000)
"""
# Take if available, for guards that refuse instead of waiting (public endpoints): 1 taken, 0 refused.
_LUA_TAKE = _REFILL + """
local taken = 0
if level >= want then
  level = level - want
  taken = 1
end
""" + _STORE + "return taken\n"


def _check(tokens: int, rate: float, burst: int) -> None:
    if rate <= 0:
        raise ValueError(f"rate must be positive (got {rate})")
    if burst < 1 or tokens < 1 or tokens > burst:
        raise ValueError(f"need 1 <= tokens <= burst (got tokens={tokens}, burst={burst})")


class LocalBuckets:
    """Buckets in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # bucket -> (level, monotonic time)

    def reserve(self, bucket: str, tokens: int, rate: float, burst: int) -> float:
        """Take the tokens now; returns the seconds to wait before using them."""
        with self._lock:
            now = time.monotonic()
            level, at = self._state.get(bucket, (float(burst), now))
            level = min(float(burst), level + (now - at) * rate) - tokens
            self._state[bucket] = (level, now)
        return 0.0 if level >= 0 else -level / rate

    def reset(self) -> None:
        with self._lock:
            self._state.clear()


class RedisBuckets:
    """Buckets in Redis, shared by every process using the same Redis and prefix."""

    def __init__(self, url: str, prefix: str = "tutti") -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._script = self._client.register_script(_LUA)
        self._take = self._client.register_script(_LUA_TAKE)
        self.prefix = prefix

    def reserve(self, bucket: str, tokens: int, rate: float, burst: int) -> float:
        micros = self._script(keys=[f"{self.prefix}:ratelimit:{bucket}"], args=[repr(float(rate)), int(burst), int(tokens)])
        return int(micros) / 1_000_000

    def take(self, bucket: str, tokens: float, rate: float, burst: int) -> bool:
        """Take the tokens if the bucket holds them now; never goes into debt."""
        taken = self._take(keys=[f"{self.prefix}:ratelimit:{bucket}"], args=[repr(float(rate)), int(burst), repr(float(tokens))])
        return int(taken) == 1

    def reset(self, bucket: str) -> None:
        self._client.delete(f"{self.prefix}:ratelimit:{bucket}")

    def close(self) -> None:
        self._client.close()


_local = LocalBuckets()


@lru_cache(maxsize=4)
def _redis(url: str, prefix: str) -> RedisBuckets:
    return RedisBuckets(url, prefix)


def shared_buckets() -> RedisBuckets | None:
    """The Redis buckets when this deployment shares state through Redis, else None."""
    chosen = buckets()
    return chosen if isinstance(chosen, RedisBuckets) else None


def buckets() -> LocalBuckets | RedisBuckets:
    """Where the buckets of this deployment live: Redis when the queue is Redis, else this process."""
    from tutti.platform.config import get_settings

    settings = get_settings()
    url = settings.queue_url or ""
    if url.startswith(("redis://", "rediss://")):
        return _redis(url, settings.queue_name)
    return _local


def acquire(bucket: str, tokens: int = 1, *, rate: float, burst: int) -> float:
    """Block until `tokens` may be spent from `bucket` (refilled at `rate` per second, holding at most
    `burst`); returns the seconds waited. Adapters call this once per provider request."""
    _check(tokens, rate, burst)
    wait = buckets().reserve(bucket, tokens, rate, burst)
    if wait > 0:
        time.sleep(wait)
    return wait
