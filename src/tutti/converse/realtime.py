"""Real-time events for the inbox and the chat widget: publish after commit, subscribe from SSE handlers.

    publish(workspace_id, {"type": "message", "conversation_id": 7, "message": {...}})
    async with subscribe(workspace_id, conversation_id=7) as events:   # or: async for … in subscribe(...)
        async for event in events: ...

Events are plain JSON-able dicts. By convention they carry `type` ("message", "conversation", "typing",
…) and, when they concern one conversation, `conversation_id` — that is what `subscribe(…,
conversation_id=…)` filters on. The database stays the truth: events say "this changed", and a client
that missed some (a reconnect, a slow consumer) reloads from the database; a subscriber whose buffer
overflows, or whose Redis connection was re-established, receives `{"type": "resync"}` for that reason.

Two transports, chosen by TUTTI_QUEUE_URL:
- embedded (SQLite queue, 'immediate', unset): an in-process fan-out. publish() may run on any thread
  (huey worker threads, sync request handlers); each subscriber is an asyncio.Queue fed with
  loop.call_soon_threadsafe, so no subscriber's loop is touched from a foreign thread.
- redis://: publish() is a sync PUBLISH on the channel `<queue_name>:realtime:<workspace_id>`; each
  event loop that has subscribers holds ONE pattern subscription (redis.asyncio) that feeds the same
  local fan-out. So several `tutti serve` processes and `tutti worker`s share events, and 200 open
  widget streams cost one Redis connection per process, not 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, Self

log = logging.getLogger("tutti.realtime")

# A subscriber that falls this far behind is told to resync instead of holding memory without bound.
QUEUE_LIMIT = 1000
RESYNC = {"type": "resync"}

_lock = threading.Lock()
_subscribers: dict[int, set[Subscription]] = {}
_config: dict[str, Any] = {}  # "redis_url", "prefix" — resolved from settings on first use
_sync_redis = None
_listeners: dict[asyncio.AbstractEventLoop, _RedisListener] = {}


def configure(*, redis_url: str | None = None, prefix: str | None = None) -> None:
    """Choose the transport explicitly (tests, benchmarks); otherwise it follows get_settings()."""
    global _sync_redis
    _config.clear()
    _config.update(redis_url=redis_url, prefix=prefix or "tutti")
    _sync_redis = None


def _settings() -> tuple[str | None, str]:
    if not _config:
        from tutti.platform.config import get_settings

        settings = get_settings()
        url = (
            settings.queue_url
            if settings.queue_url and settings.queue_url.startswith(("redis://", "rediss://"))
            else None
        )
        _config.update(redis_url=url, prefix=settings.queue_name)
    return _config["redis_url"], _config["prefix"]


def _channel(prefix: str, workspace_id: int | str) -> str:
    return f"{prefix}:realtime:{workspace_id}"


def publish(workspace_id: int, event: dict) -> None:
    """Tell every subscriber of this workspace (in every process, with Redis) about `event`.

    Call it after the commit that made the change, so a subscriber that reloads sees it. Never raises:
    a lost event costs a client a reload, a raised one would fail the request that caused it."""
    try:
        data = json.dumps(event, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        log.exception("realtime event is not JSON", extra={"workspace_id": workspace_id})
        return
    redis_url, prefix = _settings()
    if redis_url is None:
        _fan_out(workspace_id, json.loads(data))
        return
    global _sync_redis
    try:
        if _sync_redis is None:
            import redis

            _sync_redis = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        _sync_redis.publish(_channel(prefix, workspace_id), data)
    except Exception:  # Redis down: the event is lost, the change is committed
        log.exception("realtime publish failed", extra={"workspace_id": workspace_id})


def _fan_out(workspace_id: int, event: dict) -> None:
    with _lock:
        targets = list(_subscribers.get(int(workspace_id), ()))
    for subscription in targets:
        subscription._offer(event)


def subscriber_count(workspace_id: int | None = None) -> int:
    with _lock:
        if workspace_id is None:
            return sum(len(s) for s in _subscribers.values())
        return len(_subscribers.get(int(workspace_id), ()))


class Subscription:
    """Events of one workspace (optionally one conversation), as an async iterator.

    It is registered as soon as it is created, so a handler can subscribe, then read the database, then
    iterate, and miss nothing in between (it may see an event twice: de-duplicate by id). Close it — or
    use it as `async with` — when done; iterating to the end or breaking out of `async for` closes it."""

    def __init__(self, workspace_id: int, conversation_id: int | None = None):
        self.workspace_id = int(workspace_id)
        self.conversation_id = None if conversation_id is None else int(conversation_id)
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closed = False
        with _lock:
            _subscribers.setdefault(self.workspace_id, set()).add(self)
        redis_url, prefix = _settings()
        self._listener = _listener_for(self._loop, redis_url, prefix) if redis_url else None

    async def ready(self) -> None:
        """Wait until events published from now on will reach this subscription (Redis subscribed)."""
        if self._listener is not None:
            await self._listener.ready()

    # -- fed from any thread
    def _offer(self, event: dict) -> None:
        if self._closed:
            return
        cid = self.conversation_id
        if cid is not None and event.get("conversation_id") != cid and event.get("type") != "resync":
            return
        try:
            self._loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the subscriber's loop is closed: it will never read again
            self.close()

    def _put(self, event: dict) -> None:
        if self._queue.qsize() >= QUEUE_LIMIT:
            while not self._queue.empty():
                self._queue.get_nowait()
            event = RESYNC
        self._queue.put_nowait(event)

    # -- consumed on the subscriber's loop
    def __aiter__(self) -> AsyncIterator[dict]:
        return self

    async def __anext__(self) -> dict:
        if self._closed:
            raise StopAsyncIteration
        return await self._queue.get()

    async def get(self, timeout: float | None = None) -> dict | None:
        """The next event, or None after `timeout` seconds (for SSE keep-alives)."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def __aenter__(self) -> Self:
        await self.ready()
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _lock:
            group = _subscribers.get(self.workspace_id)
            if group is not None:
                group.discard(self)
                if not group:
                    del _subscribers[self.workspace_id]
        if self._listener is not None:
            self._listener.release()

    def __del__(self):  # a forgotten subscription must not keep receiving forever
        if not getattr(self, "_closed", True):
            self.close()


def subscribe(workspace_id: int, *, conversation_id: int | None = None) -> Subscription:
    """Subscribe from inside a running event loop; see Subscription."""
    return Subscription(workspace_id, conversation_id)


class _RedisListener:
    """One Redis pattern subscription per event loop, feeding the local fan-out; reconnects with backoff."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str, prefix: str):
        self.loop, self.url, self.prefix = loop, url, prefix
        self.users = 0
        self._ready = asyncio.Event()
        self._task = loop.create_task(self._run())

    async def ready(self) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    def release(self) -> None:
        # Listeners live as long as their loop: a server's SSE clients come and go, and re-subscribing
        # on every new visitor would open a window where events are missed.
        self.users -= 1

    async def _run(self) -> None:
        import redis.asyncio as aredis

        pattern = f"{self.prefix}:realtime:*"
        skip = len(self.prefix) + len(":realtime:")
        delay, first = 0.2, True
        while True:
            client = aredis.Redis.from_url(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._ready.set()
                if not first:  # events published while we were away are lost: clients reload
                    with _lock:
                        everyone = [s for group in _subscribers.values() for s in group]
                    for subscription in everyone:
                        subscription._offer(RESYNC)
                first, delay = False, 0.2
                while True:
                    message = await pubsub.get_message(timeout=30)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel = (
                        message["channel"].decode()
                        if isinstance(message["channel"], bytes)
                        else message["channel"]
                    )
                    try:
                        workspace_id = int(channel[skip:])
                        event = json.loads(message["data"])
                    except (ValueError, TypeError):
                        continue
                    _fan_out(workspace_id, event)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis went away: retry, the server keeps serving
                self._ready.clear()
                log.warning("realtime: Redis subscription lost, retrying", extra={"error": str(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection may fail too
                    await pubsub.aclose()
                    await client.aclose()


def _listener_for(loop: asyncio.AbstractEventLoop, url: str, prefix: str) -> _RedisListener:
    with _lock:
        for stale in [other for other in _listeners if other.is_closed()]:
            del _listeners[stale]
        listener = _listeners.get(loop)
        if listener is None or listener.url != url or listener.prefix != prefix or listener._task.done():
            if listener is not None:
                listener._task.cancel()
            listener = _listeners[loop] = _RedisListener(loop, url, prefix)
        listener.users += 1
        return listener
