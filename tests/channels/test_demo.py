"""The demo's channels: LINE wired to the emulator (started in-process when nothing answers), SMTP local."""

from __future__ import annotations

import socket
import uuid
from datetime import date

import httpx

from tutti.channels import demo, service
from tutti.channels.base import Outgoing
from tutti.platform.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_channels_talk_to_an_emulator_started_for_them(database, workspace_id, monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setattr("tutti.platform.config.get_settings", lambda: Settings(line_emulator_url=url, secret_key="test-secret-key-not-for-production"))
    demo.build_demo(database, workspace_id=workspace_id, seed=42, today=date(2026, 11, 25), contacts=10, report=lambda *a: None)
    with database.read_session() as db:
        kinds = {c.kind: c for c in service.list_channels(db, workspace_id=workspace_id)}
        assert set(kinds) == {"line", "email"}
        assert kinds["line"].config["api_base_url"] == url and kinds["email"].config["port"] == 1025
        line_id = kinds["line"].id

    started = demo.start_emulator(tutti_url="http://127.0.0.1:8000", channel_id=line_id, data_dir=tmp_path)
    assert started == url
    assert demo.start_emulator(tutti_url="http://127.0.0.1:8000", channel_id=line_id, data_dir=tmp_path) is None  # already answering

    with database.session() as db:
        assert service.test_channel(db, workspace_id=workspace_id, channel_id=line_id)["ok"]
        adapter = service.adapter_for(db, workspace_id=workspace_id, channel_id=line_id)
    user = "U" + uuid.uuid4().hex
    assert adapter.send([Outgoing(key=str(uuid.uuid4()), to=user, payload={"messages": [{"type": "text", "text": "歡迎光臨"}]})])[0].status == "sent"
    adapter.close()
    phone = httpx.get(f"{url}/_emulator/phone/{user}").text
    assert "歡迎光臨" in phone and 'name=text' in phone  # the customer can write back: the webhook URL is set
    assert (tmp_path / "line-emulator.jsonl").exists()
