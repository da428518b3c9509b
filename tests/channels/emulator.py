"""The `line_emulator` fixture: a live LINE emulator on a free loopback port, reset before each test.

Other parts' tests use it with `from tests.channels.emulator import line_emulator  # noqa: F401` in their
conftest.py. The server starts once per test session (on first use); each test gets a fresh state with
LINE's default limits.

    def test_something(line_emulator):
        line_emulator.base_url, line_emulator.access_token, line_emulator.channel_secret
        line_emulator.messages(to="U…")          # what the emulator received for that user
        line_emulator.counts()                   # {user: messages received}
        line_emulator.configure(rates={"multicast": 5}, faults=[{"endpoint": "push", "status": 500}])
        line_emulator.send(webhook_url, user_id=..., text="hi")   # a customer writes to Tutti
"""

from __future__ import annotations

import atexit
import secrets
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from tutti.channels import line_emulator as emulator_module

_running: dict = {}


@dataclass
class LineEmulator:
    base_url: str
    emulator: emulator_module.Emulator  # the state itself (same process)
    access_token: str = emulator_module.DEFAULT_ACCESS_TOKEN
    channel_secret: str = emulator_module.DEFAULT_CHANNEL_SECRET
    bot_user_id: str = emulator_module.DEFAULT_BOT_USER_ID

    def _get(self, path: str, **params) -> dict:
        answer = httpx.get(self.base_url + path, params={k: v for k, v in params.items() if v is not None}, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def messages(self, to: str | None = None, *, limit: int = 0, endpoint: str | None = None) -> list[dict]:
        return self.emulator.messages_for(to, limit=limit, endpoint=endpoint)

    def texts(self, to: str) -> list[str]:
        return [m["message"].get("text") for m in self.messages(to) if m["from"] == "bot"]

    def counts(self) -> dict[str, int]:
        return self._get("/_emulator/counts")["counts"]

    def stats(self) -> dict:
        return self._get("/_emulator/stats")

    def reset(self) -> None:
        self.emulator.reset()

    def configure(self, **settings) -> None:
        httpx.post(self.base_url + "/_emulator/config", json=settings, timeout=30).raise_for_status()

    def send(self, webhook_url: str, *, user_id: str | None = None, channel_secret: str | None = None, **event) -> dict:
        """Act as a customer: text="…", sticker=True, follow=True, unfollow=True or postback="data=…"."""
        body = {"to_webhook_url": webhook_url, "channel_secret": channel_secret or self.channel_secret, "user_id": user_id, **event}
        answer = httpx.post(self.base_url + "/_emulator/send", json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()

    @staticmethod
    def new_user_id() -> str:
        return "U" + secrets.token_hex(16)


def _start() -> LineEmulator:
    if "emulator" not in _running:
        from tests.conftest import serving

        state = emulator_module.Emulator()
        stack = ExitStack()
        url = stack.enter_context(serving(emulator_module.create_app(emulator=state)))
        atexit.register(stack.close)
        _running["emulator"] = LineEmulator(base_url=url, emulator=state)
    return _running["emulator"]


@pytest.fixture
def line_emulator() -> LineEmulator:
    emulator = _start()
    emulator.reset()
    yield emulator
    emulator.reset()
