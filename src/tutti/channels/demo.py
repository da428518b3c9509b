"""The demo brand's channels: LINE wired to the LINE emulator, and e-mail to a local SMTP address.

- LINE: API base URL `settings.line_emulator_url` (default http://127.0.0.1:8001) with the emulator's
  default access token and secret; `tutti demo` starts the emulator in its own process on that address
  when nothing answers there, with its webhook pointed back at this server, so the phone page
  (http://127.0.0.1:8001/_emulator/phone/<LINE user id>) shows what customers received and can write back.
- E-mail: SMTP at 127.0.0.1:1025 without TLS, from news@demo.tutti.local. Nothing listens there unless you
  start a catcher, e.g. `python -m aiosmtpd -n -l 127.0.0.1:1025` (prints every message); until then
  e-mail sends end as retries with "cannot reach 127.0.0.1:1025".
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select

from tutti.channels import line_emulator, service
from tutti.channels.models import Channel
from tutti.platform.audit import Actor
from tutti.platform.db import Database

log = logging.getLogger("tutti.channels.demo")

LINE_NAME = "好物生活 LINE 官方帳號（模擬器 emulator）"
EMAIL_NAME = "電子報 Newsletter (local SMTP)"
SMTP_HOST, SMTP_PORT = "127.0.0.1", 1025


def _emulator_url() -> str:
    from tutti.platform.config import get_settings

    return get_settings().line_emulator_url.rstrip("/")


def build_demo(database: Database, *, workspace_id: int, seed: int, today: date, contacts: int, report) -> None:
    label = "通路 channels"
    report(label, 0, 1)
    actor = Actor.cli()
    with database.session() as db:
        line = service.connect(db, workspace_id=workspace_id, kind="line", name=LINE_NAME, actor=actor,
                               config={"api_base_url": _emulator_url(), "channel_id": "demo-emulator"},
                               credentials={"channel_secret": line_emulator.DEFAULT_CHANNEL_SECRET,
                                            "access_token": line_emulator.DEFAULT_ACCESS_TOKEN})
        line.bot_user_id, line.basic_id = line_emulator.DEFAULT_BOT_USER_ID, "@tutti-emu"
        service.connect(db, workspace_id=workspace_id, kind="email", name=EMAIL_NAME, actor=actor,
                        config={"host": SMTP_HOST, "port": SMTP_PORT, "security": "none", "from_address": "news@demo.tutti.local",
                                "from_name": "好物生活 Tutti Demo"})
    report(label, 1, 1)


def demo_line_channel(database: Database, workspace_id: int) -> Channel | None:
    with database.read_session() as db:
        return db.scalars(select(Channel).where(Channel.workspace_id == workspace_id, Channel.kind == "line")
                          .order_by(Channel.id).limit(1)).first()


def _answering(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_emulator(*, tutti_url: str, channel_id: int | None, data_dir: Path) -> str | None:
    """Start the LINE emulator in this process (a background thread) at settings.line_emulator_url, unless
    something already answers there or the URL is not local. Returns its URL when started."""
    url = _emulator_url()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1") or _answering(host, port):
        return None
    import uvicorn

    config = line_emulator.Config(require_https=False,  # demo images may be served over http
                                  webhook_url=f"{tutti_url.rstrip('/')}/webhooks/line/{channel_id}" if channel_id else None)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = line_emulator.create_app(config, store=data_dir / "line-emulator.jsonl")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, log_config=None))
    thread = threading.Thread(target=server.run, name="line-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        log.warning("the LINE emulator did not start", extra={"url": url})
        return None
    return url
