"""The shared token bucket: in-process and in Redis (a prefix unique to the test run)."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from tutti.platform import ratelimit
from tutti.platform.config import Settings

REDIS_URL = os.environ.get("TUTTI_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {error}")


def _hammer(reserve, bucket: str, *, threads: int, each: int, rate: float, burst: int) -> float:
    def work():
        for _ in range(each):
            wait = reserve(bucket, 1, rate, burst)
            if wait > 0:
                time.sleep(wait)

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.monotonic() - started


def test_local_bucket_allows_the_burst_then_the_rate():
    buckets = ratelimit.LocalBuckets()
    assert [buckets.reserve("b", 1, 10, 5) for _ in range(5)] == [0.0] * 5
    wait = buckets.reserve("b", 1, 10, 5)
    assert 0 < wait <= 0.1  # about one token at 10/s (less when the machine was slow to get here)
    assert buckets.reserve("other", 1, 10, 5) == 0.0  # buckets are independent
    # 4 threads x 15 calls at 100/s with a burst of 10: 50 calls must wait for refills, ≈0.5 s
    elapsed = _hammer(buckets.reserve, "h", threads=4, each=15, rate=100, burst=10)
    assert 0.45 <= elapsed < 3


def test_acquire_checks_its_arguments_and_uses_the_process_bucket():
    with pytest.raises(ValueError):
        ratelimit.acquire("x", 3, rate=10, burst=2)
    with pytest.raises(ValueError):
        ratelimit.acquire("x", rate=0, burst=2)
    bucket = f"acquire-{uuid.uuid4()}"
    assert ratelimit.acquire(bucket, rate=5, burst=1) == 0
    started = time.monotonic()
    waited = ratelimit.acquire(bucket, rate=5, burst=1)
    assert 0.05 < waited <= 0.2 and time.monotonic() - started >= waited


def test_redis_bucket_is_shared_by_separate_clients():
    _redis_or_skip()
    prefix = f"tutti-test-{uuid.uuid4().hex[:8]}"
    clients = [ratelimit.RedisBuckets(REDIS_URL, prefix) for _ in range(3)]
    try:
        assert [clients[i % 3].reserve("b", 1, 10, 5) for i in range(5)] == [0.0] * 5
        assert 0 < clients[1].reserve("b", 1, 10, 5) <= 0.1  # the others' spending counts
        # 3 "workers" (own connections) x 20 calls at 100/s, burst 10: ≈0.5 s in all, not 3x faster
        index = iter(range(3))
        lock = threading.Lock()
        _local = threading.local()

        def reserve(bucket, tokens, rate, burst):
            if not hasattr(_local, "client"):
                with lock:
                    _local.client = clients[next(index)]
            return _local.client.reserve(bucket, tokens, rate, burst)

        elapsed = _hammer(reserve, "h", threads=3, each=20, rate=100, burst=10)
        assert 0.45 <= elapsed < 3
    finally:
        for client in clients:
            client.reset("b")
            client.reset("h")
            client.close()


def test_acquire_uses_redis_when_the_queue_is_redis(monkeypatch):
    _redis_or_skip()
    name = f"tutti-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("tutti.platform.config.get_settings", lambda: Settings(queue_url=REDIS_URL, queue_name=name))
    chosen = ratelimit.buckets()
    assert isinstance(chosen, ratelimit.RedisBuckets) and chosen.prefix == name
    assert ratelimit.acquire("r", rate=5, burst=1) == 0
    assert 0.05 < ratelimit.acquire("r", rate=5, burst=1) <= 0.2
    chosen.reset("r")


def test_widget_limits_are_shared_by_every_process_through_redis(monkeypatch):
    """Two Limiter objects stand for two `tutti serve` processes: with a Redis queue they drain one bucket."""
    _redis_or_skip()
    from tutti.converse.widget.limits import Limiter

    name = f"tutti-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr("tutti.platform.config.get_settings", lambda: Settings(queue_url=REDIS_URL, queue_name=name))
    first, second = Limiter(name="messages", rate=0.5, burst=3), Limiter(name="messages", rate=0.5, burst=3)
    assert [first.allow("visitor-1"), second.allow("visitor-1"), first.allow("visitor-1")] == [True, True, True]
    assert second.allow("visitor-1") is False and first.allow("visitor-1") is False  # refused, and no debt taken
    assert second.allow("visitor-2") is True  # buckets are per key
    time.sleep(2.1)
    assert second.allow("visitor-1") is True  # refilled at 0.5/s
    ratelimit.shared_buckets().reset("widget:messages:visitor-1")
    ratelimit.shared_buckets().reset("widget:messages:visitor-2")


def test_widget_limits_stay_in_process_without_redis(monkeypatch):
    from tutti.converse.widget.limits import Limiter

    monkeypatch.setattr("tutti.platform.config.get_settings", lambda: Settings(queue_url="immediate"))
    assert ratelimit.shared_buckets() is None
    first, second = Limiter(name="messages", rate=0.5, burst=2), Limiter(name="messages", rate=0.5, burst=2)
    assert first.allow("v") and first.allow("v") and not first.allow("v")
    assert second.allow("v")  # another process's buckets are its own
