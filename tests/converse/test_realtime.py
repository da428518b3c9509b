"""tutti.converse.realtime: in-process fan-out across threads, and Redis pub/sub across processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.processes import REDIS_URL, SOURCE
from tutti.converse import realtime


@pytest.fixture
def embedded():
    realtime.configure(redis_url=None)
    yield
    realtime._config.clear()


@pytest.fixture
def on_redis():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable: {error}")
    prefix = f"tutti-test-rt-{os.getpid()}-{time.monotonic_ns()}"
    realtime.configure(redis_url=REDIS_URL, prefix=prefix)
    yield prefix
    realtime._config.clear()


async def _collect(subscription, count, timeout=5.0):
    got = []
    while len(got) < count:
        event = await subscription.get(timeout)
        if event is None:
            break
        got.append(event)
    return got


def test_publish_from_worker_threads_reaches_asyncio_subscribers(embedded):
    async def scenario():
        async with (
            realtime.subscribe(1) as everything,
            realtime.subscribe(1, conversation_id=7) as one,
            realtime.subscribe(2) as other_workspace,
        ):
            threads = [
                threading.Thread(
                    target=realtime.publish, args=(1, {"type": "message", "conversation_id": cid, "n": n})
                )
                for n, cid in enumerate([7, 8, 7, 9])
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            all_events = await _collect(everything, 4)
            mine = await _collect(one, 2)
            assert await one.get(0.2) is None  # conversations 8 and 9 are filtered out
            assert await other_workspace.get(0.2) is None  # another workspace sees nothing
            return all_events, mine

    all_events, mine = asyncio.run(scenario())
    assert sorted(e["n"] for e in all_events) == [0, 1, 2, 3]
    assert sorted(e["n"] for e in mine) == [0, 2] and {e["conversation_id"] for e in mine} == {7}
    assert realtime.subscriber_count() == 0  # leaving the block unsubscribes


def test_subscribers_on_two_loops_and_sync_publish(embedded):
    """Two servers' worth of loops in one process (e.g. the test server thread and the test itself)."""
    results = {}

    def run(name):
        async def scenario():
            async with realtime.subscribe(5) as events:
                ready.wait()
                results[name] = await _collect(events, 1)

        asyncio.run(scenario())

    ready = threading.Event()
    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while realtime.subscriber_count(5) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    realtime.publish(5, {"type": "conversation", "conversation_id": 1, "status": "resolved"})
    ready.set()
    for thread in threads:
        thread.join(5)
    assert results == {
        name: [{"type": "conversation", "conversation_id": 1, "status": "resolved"}] for name in "ab"
    }


def test_slow_subscriber_is_told_to_resync_instead_of_growing(embedded, monkeypatch):
    monkeypatch.setattr(realtime, "QUEUE_LIMIT", 5)

    async def scenario():
        async with realtime.subscribe(3) as events:
            for n in range(12):
                realtime.publish(3, {"type": "message", "n": n})
            await asyncio.sleep(0.05)
            return await _collect(events, 20, timeout=0.2)

    events = asyncio.run(scenario())
    assert len(events) <= 5 and {"type": "resync"} in events
    assert events[-1]["n"] == 11  # the newest survive


def test_unserialisable_event_is_dropped_not_raised(embedded):
    realtime.publish(1, {"type": "bad", "value": object()})  # default=str makes it a string
    realtime.publish(1, {"type": "bad", "value": {1, 2}} | {"x": float("nan")})


_PUBLISHER = """
import sys
from tutti.converse import realtime
realtime.configure(redis_url=sys.argv[1], prefix=sys.argv[2])
realtime.publish(int(sys.argv[3]), {"type": "message", "conversation_id": 4, "text": "來自另一個程序"})
"""


def test_redis_shares_events_between_processes(on_redis):
    async def scenario():
        async with realtime.subscribe(11, conversation_id=4) as events, realtime.subscribe(12) as other:
            # another process (a second `tutti serve`, or `tutti worker`) publishes
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", _PUBLISHER, REDIS_URL, on_redis, "11"],
                check=True,
                timeout=30,
                env={**os.environ, "PYTHONPATH": SOURCE},
            )
            got = await _collect(events, 1, timeout=10)
            assert await other.get(0.3) is None
            # and this process's publish goes through Redis too, from a thread
            await asyncio.to_thread(
                realtime.publish, 11, {"type": "message", "conversation_id": 4, "text": "local"}
            )
            got += await _collect(events, 1, timeout=10)
            return got

    got = asyncio.run(scenario())
    assert [e["text"] for e in got] == ["來自另一個程序", "local"]
    assert realtime.subscriber_count() == 0


def test_redis_many_subscribers_share_one_connection(on_redis):
    import redis

    async def scenario():
        subs = [realtime.subscribe(21, conversation_id=n % 10) for n in range(50)]
        for sub in subs:
            await sub.ready()
        listeners = {id(sub._listener) for sub in subs}
        numsub = redis.Redis.from_url(REDIS_URL).pubsub_numpat()
        realtime.publish(21, {"type": "message", "conversation_id": 3})
        received = [await sub.get(5) for sub in subs if sub.conversation_id == 3]
        for sub in subs:
            sub.close()
        return listeners, numsub, received

    listeners, numsub, received = asyncio.run(scenario())
    assert len(listeners) == 1 and numsub >= 1
    assert len(received) == 5 and all(e == {"type": "message", "conversation_id": 3} for e in received)
