"""Public endpoints of the chat widget: the script, sessions, messages, history and the SSE stream.

No API key here: the widget key in the script tag says which workspace, the visitor token (from the
session start) says which visitor. Requests are "simple" CORS requests (JSON sent as text/plain, the
token in the body or query), so browsers need no preflight; allowed origins are checked per widget.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import weakref
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tutti.converse import realtime
from tutti.converse.widget import limits, service
from tutti.platform.db import get_database
from tutti.platform.errors import Forbidden, InvalidInput, TuttiError
from tutti.web.session import client_address

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
KEEPALIVE_SECONDS = 15
RECENT_SECONDS = 10
AGENT_CONCURRENCY = 4
PREFIX = "/widget/api/"
_CONFIG_CACHE_SECONDS = 30
_origins: dict[str, tuple[float, list[str]]] = {}


def minify(source: str) -> str:
    """Drop comment lines and indentation (the source keeps no // inside strings at a line's start)."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


class _Script:
    """widget.js, minified and gzipped once per process (re-read when the file changes, for development)."""

    def __init__(self) -> None:
        self.mtime = -1.0
        self.body = b""
        self.gzipped = b""
        self.etag = ""

    def load(self) -> _Script:
        path = STATIC / "widget.js"
        mtime = path.stat().st_mtime
        if mtime != self.mtime:
            self.body = minify(path.read_text(encoding="utf-8")).encode()
            self.gzipped = gzip.compress(self.body, 9, mtime=0)
            self.etag = f'"w{int(mtime)}-{len(self.body)}"'
            self.mtime = mtime
        return self


script = _Script()


@router.get("/widget.js")
def widget_js(request: Request) -> Response:
    loaded = script.load()
    headers = {"Cache-Control": "public, max-age=300", "ETag": loaded.etag, "Vary": "Accept-Encoding",
               "Access-Control-Allow-Origin": "*"}
    if request.headers.get("if-none-match") == loaded.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(loaded.gzipped, media_type="application/javascript; charset=utf-8",
                        headers={**headers, "Content-Encoding": "gzip"})
    return Response(loaded.body, media_type="application/javascript; charset=utf-8", headers=headers)


# --- CORS per widget ------------------------------------------------------------------------------


def _allowed_origins(key: str) -> list[str] | None:
    cached = _origins.get(key)
    now = time.monotonic()
    if cached and now - cached[0] < _CONFIG_CACHE_SECONDS:
        return cached[1]
    try:
        with get_database().read_session() as db:
            origins = list(service.config_by_key(db, key).allowed_origins or [])
    except TuttiError:
        return None
    if len(_origins) > 10_000:
        _origins.clear()
    _origins[key] = (now, origins)
    return origins


def install(app: FastAPI) -> None:
    """CORS for /widget/api/: the page's origin must be one the widget allows (any, when none is set)."""
    limits.configure(
        messages_per_minute=app.state.settings.widget_messages_per_minute,
        requests_per_minute_per_address=app.state.settings.widget_requests_per_minute_per_address,
    )

    @app.middleware("http")
    async def widget_cors(request: Request, call_next):
        path = request.url.path
        if not path.startswith(PREFIX):
            return await call_next(request)
        origin = request.headers.get("origin")
        key = path[len(PREFIX):].split("/", 1)[0]
        if origin:
            origins = await run_in_threadpool(_allowed_origins, key)
            if origins is not None and not service.origin_allowed(origins, origin):
                return JSONResponse({"error": {"code": "forbidden", "message": f"origin {origin} may not use this widget"}},
                                    status_code=403)
        cors = {"Access-Control-Allow-Origin": origin or "*", "Vary": "Origin"}
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={
                **cors, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Last-Event-ID", "Access-Control-Max-Age": "600"})
        response = await call_next(request)
        response.headers.update(cors)
        return response


# --- endpoints ------------------------------------------------------------------------------------


async def _body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > 16_384:
        raise InvalidInput("the request is too large")
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise InvalidInput("the body must be JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("the body must be a JSON object")
    return value


def _secret(request: Request) -> str:
    return request.app.state.settings.resolved_secret_key()


def _str(value, field: str, limit: int = 320) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or len(str(value)) > limit:
        raise InvalidInput(f"{field} must be a string of at most {limit} characters", field=field)
    return str(value)


@router.post("/widget/api/{key}/session")
async def start_session(key: str, request: Request) -> dict:
    limits.address.check(client_address(request), "requests")
    body = await _body(request)
    secret = _secret(request)

    def run() -> dict:
        with get_database().session() as db:
            config = service.config_by_key(db, key)
            visitor = service.start_session(
                db, config=config, anonymous_id=_str(body.get("anonymous_id"), "anonymous_id", 64),
                user_id=_str(body.get("user_id"), "user_id", 200), user_hash=_str(body.get("user_hash"), "user_hash", 128),
                name=_str(body.get("name"), "name", 200), email=_str(body.get("email"), "email"),
            )
            conversation = service.current_conversation(db, visitor)
            messages = service.history(db, visitor=visitor) if conversation else []
            return {
                "token": service.visitor_token(secret, visitor),
                "conversation_id": conversation.id if conversation else None,
                "status": conversation.status if conversation else None,
                "messages": messages,
                "look": service.public_look(config),
            }

    return await run_in_threadpool(run)


def _visitor(request: Request, key: str, token: str | None):
    with get_database().read_session() as db:
        config = service.config_by_key(db, key)
        return service.read_token(_secret(request), token, workspace_id=config.workspace_id)


@router.post("/widget/api/{key}/messages")
async def send_message(key: str, request: Request) -> dict:
    body = await _body(request)
    text = body.get("text")
    if not isinstance(text, str):
        raise InvalidInput("text is required", field="text")
    client_id = _str(body.get("client_id"), "client_id", 64)

    def run() -> dict:
        visitor = _visitor(request, key, _str(body.get("token"), "token", 400))
        limits.messages.check(f"{visitor.workspace_id}:{visitor.contact_id}", "messages")
        with get_database().session() as db:
            message = service.send(db, visitor=visitor, text=text, client_id=client_id)
            out = service.message_out(message)
        # the conversation service publishes the message and the agent's reply once this commits
        return {"message": out, "conversation_id": out["conversation_id"]}

    async with _agent_slots():
        return await run_in_threadpool(run)


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its semaphore


def _agent_slots() -> asyncio.Semaphore:
    """At most AGENT_CONCURRENCY visitors' messages in the agent at once per event loop. The agent's work
    is CPU-bound Python: forty of them on the thread pool starve this loop of the GIL, and every open
    SSE stream (and the replies waiting to go out on them) stalls for seconds. The rest wait here."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(AGENT_CONCURRENCY)
    return slots


@router.get("/widget/api/{key}/messages")
async def message_history(key: str, request: Request, token: str = "", after: int = 0) -> dict:
    limits.address.check(client_address(request), "requests")

    def run() -> dict:
        visitor = _visitor(request, key, token)
        with get_database().read_session() as db:
            return {"messages": service.history(db, visitor=visitor, after_id=max(after, 0))}

    return await run_in_threadpool(run)


def _visible(message: dict | None) -> bool:
    """A customer's or the bot's message carried whole by the event: sent as is, no query."""
    return bool(message) and message.get("author") in ("customer", "bot") and message.get("kind") not in service.HIDDEN_KINDS


def _hidden(message: dict | None) -> bool:
    return bool(message) and (message.get("kind") in service.HIDDEN_KINDS or message.get("author") == "system")


def _sse(message: dict) -> str:
    return f"id: {message['id']}\nevent: message\ndata: {json.dumps(message, ensure_ascii=False)}\n\n"


@router.get("/widget/api/{key}/stream")
async def stream(key: str, request: Request, token: str = "", conversation: int = 0, after: int = 0):
    """Server-sent events of one conversation: each message once, in order, resumed from Last-Event-ID."""
    limits.address.check(client_address(request), "requests")
    visitor = await run_in_threadpool(_visitor, request, key, token)

    def owns() -> bool:
        with get_database().read_session() as db:
            return service.owns_conversation(db, visitor, conversation)

    if not conversation or not await run_in_threadpool(owns):
        raise Forbidden("this conversation is not yours")
    resume = request.headers.get("last-event-id", "")
    last = int(resume) if resume.isdigit() else max(after, 0)
    # subscribe before reading, so a message committed in between is not missed (seen ids are skipped)
    subscription = realtime.subscribe(visitor.workspace_id, conversation_id=conversation)
    await subscription.ready()

    def newer(after_id: int) -> list[dict]:
        # On PostgreSQL ids come from a sequence and two transactions may commit out of id order, so the
        # last few seconds are read again (and ids already sent skipped): a late commit is not lost.
        with get_database().read_session() as db:
            return service.history(db, visitor=visitor, conversation_id=conversation, after_id=after_id,
                                   recent_seconds=RECENT_SECONDS)

    async def events():
        nonlocal last
        sent: set[int] = set()
        resumed_from = last
        try:
            yield f"retry: 2000\n: connected {conversation}\n\n"
            pending = True
            while True:
                if pending:
                    for message in await run_in_threadpool(newer, last):
                        if message["id"] in sent or message["id"] <= resumed_from:
                            continue
                        sent.add(message["id"])
                        last = max(last, message["id"])
                        yield _sse(message)
                    if len(sent) > 5000:  # a long-lived stream: forget old ids, the window is seconds
                        resumed_from, sent = last, set()
                event = await subscription.get(KEEPALIVE_SECONDS)
                if event is None:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    pending = False
                    continue
                if event.get("type") == "typing":
                    if event.get("author") != "customer":
                        yield f"event: typing\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
                    pending = False
                elif event.get("type") == "conversation":
                    status = json.dumps({"status": (event.get("conversation") or {}).get("status")})
                    yield f"event: status\ndata: {status}\n\n"
                    pending = False
                elif event.get("type") == "message" and _visible(event.get("message")):
                    message = service.public_message(event["message"])
                    if message["id"] not in sent and message["id"] > resumed_from:
                        sent.add(message["id"])
                        last = max(last, message["id"])
                        yield _sse(message)
                    pending = False
                elif event.get("type") == "message" and _hidden(event.get("message")):
                    pending = False  # a note or a system line: nothing for the visitor
                else:  # an agent's message (its name is looked up), resync, anything new: ask the database
                    pending = True
        finally:
            subscription.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

