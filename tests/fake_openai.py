"""A real local HTTP server speaking the OpenAI protocol, scripted per test.

    # in your conftest.py: from tests.fake_openai import fake_openai  # noqa: F401

    def test_x(fake_openai):
        fake_openai.reply("Hello")                                  # next chat answer: plain text
        fake_openai.reply_tool_call("order_status", {"order": "A1"}) # next: a tool call
        fake_openai.reply_json({"answer": "…", "cited": [3]})       # next: structured output
        fake_openai.reply_raw("{not json")                          # next: message content as given
        fake_openai.reply_body(b"<html>oops")                       # next: an HTTP body that is not JSON
        fake_openai.fail(500)                                       # next: an HTTP error
        fake_openai.hang(5)                                         # next: answer only after 5 s
        fake_openai.fail_embeddings(500)                            # next /v1/embeddings: an HTTP error
        llm = LLM(base_url=fake_openai.url, model="fake", api_key="k")
        ...
        assert "other customer" not in fake_openai.sent_text()

Chat answers come from a queue; when it is empty the server answers with `default` (a callable
`(body) -> dict` building a response, or plain "OK"). /v1/embeddings answers deterministic unit vectors
derived from a hash of each input (dimension `dim`), unless `embed` is set to a callable. Every request
is recorded in `requests` as {"path", "body", "headers"}.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest


class FakeOpenAI:
    def __init__(self, *, dim: int = 384):
        self.dim = dim
        self.requests: list[dict] = []
        self.default: Callable[[dict], dict] | None = None
        self.embed: Callable[[list[str]], list[list[float]]] | None = None
        self.api_key: str | None = None  # when set, requests must carry it
        self._queue: deque = deque()
        self._embedding_failures: deque = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    # --- scripting -------------------------------------------------------------------------------------

    def reply(
        self,
        content: str | None = "OK",
        *,
        tool_calls: list[dict] | None = None,
        finish_reason: str | None = None,
    ) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        reason = finish_reason or ("tool_calls" if tool_calls else "stop")
        self._push(("chat", message, reason))

    def reply_json(self, value: Any) -> None:
        self.reply(json.dumps(value, ensure_ascii=False))

    def reply_raw(self, content: str) -> None:
        """Message content exactly as given (e.g. malformed JSON for a structured-output request)."""
        self.reply(content)

    def reply_tool_call(self, name: str, arguments: dict | str, *, call_id: str | None = None) -> None:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        self.reply(
            None,
            tool_calls=[
                {
                    "id": call_id or f"call_{len(self._queue)}_{name}",
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
            ],
        )

    def reply_body(self, body: bytes, *, status: int = 200, content_type: str = "application/json") -> None:
        self._push(("body", body, status, content_type))

    def fail(self, status: int = 500, message: str = "internal error") -> None:
        self._push(("body", json.dumps({"error": {"message": message}}).encode(), status, "application/json"))

    def fail_embeddings(self, status: int = 500) -> None:
        """The next /v1/embeddings request answers this HTTP error."""
        with self._lock:
            self._embedding_failures.append(status)

    def hang(self, seconds: float, then: str | None = "too late") -> None:
        """The next chat request waits `seconds` before answering (longer than the client's timeout)."""
        self._push(("hang", seconds, then))

    def _push(self, item: tuple) -> None:
        with self._lock:
            self._queue.append(item)

    def pending(self) -> int:
        return len(self._queue)

    # --- inspection ------------------------------------------------------------------------------------

    def chat_requests(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def last_chat(self) -> dict:
        chats = self.chat_requests()
        assert chats, "no chat request was made"
        return chats[-1]

    def sent_text(self) -> str:
        """Everything clients sent, as one string: assert other customers' data is not in it."""
        return "\n".join(json.dumps(r["body"], ensure_ascii=False) for r in self.requests)

    # --- answers ---------------------------------------------------------------------------------------

    def _next_chat(self, body: dict) -> tuple[int, bytes, str]:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            if self.default is not None:
                return 200, json.dumps(self.default(body)).encode(), "application/json"
            item = ("chat", {"role": "assistant", "content": "OK"}, "stop")
        if item[0] == "hang":
            self._stopping.wait(item[1])
            item = ("chat", {"role": "assistant", "content": item[2]}, "stop")
        if item[0] == "body":
            return item[2], item[1], item[3]
        _, message, reason = item
        response = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": reason}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return 200, json.dumps(response, ensure_ascii=False).encode(), "application/json"

    def _embeddings(self, body: dict) -> tuple[int, bytes, str]:
        with self._lock:
            failure = self._embedding_failures.popleft() if self._embedding_failures else None
        if failure:
            return failure, b'{"error": {"message": "embeddings failed"}}', "application/json"
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        vectors = self.embed(texts) if self.embed else [hash_vector(t, self.dim) for t in texts]
        response = {
            "object": "list",
            "model": body.get("model", "fake"),
            "data": [
                {"object": "embedding", "index": i, "embedding": list(map(float, v))}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        return 200, json.dumps(response).encode(), "application/json"


def hash_vector(text: str, dim: int = 384) -> list[float]:
    """A deterministic unit vector for `text` (same text → same vector; different texts ≈ orthogonal)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim)
    return list(vector / np.linalg.norm(vector))


def _handler(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._send(400, b'{"error": {"message": "body is not JSON"}}', "application/json")
            fake.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
            if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._send(401, b'{"error": {"message": "bad key"}}', "application/json")
            if self.path.endswith("/chat/completions"):
                return self._send(*fake._next_chat(body))
            if self.path.endswith("/embeddings"):
                return self._send(*fake._embeddings(body))
            return self._send(404, b'{"error": {"message": "not found"}}', "application/json")

        def _send(self, status: int, payload: bytes, content_type: str):
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


@pytest.fixture
def fake_openai():
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
