"""Helpers for the campaign tests: contacts made in bulk (rows, not one upsert each), a LINE channel on the
emulator, and a campaign ready to send."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

from sqlalchemy import insert, select

from tutti.audience.models import Consent, Contact, Identity
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow

ACTOR = Actor.cli()
RUN = f"{os.getpid()}-{time.time_ns()}"  # the emulator outlives a test's database: ids must not repeat
TEXT = {"messages": [{"type": "text", "text": "{{ first_name | default('朋友') }}，週年慶開跑！"}]}


def add_contacts(database, workspace_id: int, count: int, *, line: bool = True, line_status: str = "subscribed",
                 phone: bool = False, sms_status: str | None = None, email: bool = False, email_status: str | None = None,
                 prefix: str = "c", names: bool = True) -> list[int]:
    """`count` contacts with the identities and consents asked for; returns their ids in order."""
    now = utcnow() - timedelta(days=1)
    with database.session() as db:
        first = db.scalar(select(Contact.id).order_by(Contact.id.desc()).limit(1)) or 0
        rows = [{"workspace_id": workspace_id, "name": f"王小{i}" if names else None, "attributes": {}, "created_at": now,
                 "updated_at": now} for i in range(count)]
        db.execute(insert(Contact), rows)
        ids = list(db.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id, Contact.id > first).order_by(Contact.id)))
        identities, consents = [], []
        for contact_id in ids:
            if line:
                identities.append({"workspace_id": workspace_id, "contact_id": contact_id, "kind": "line_uid",
                                   "value": line_id(prefix, workspace_id, contact_id), "source": "test", "created_at": now})
                consents.append({"contact_id": contact_id, "channel": "line", "workspace_id": workspace_id, "status": line_status,
                                 "source": "test", "updated_at": now})
            if phone:
                identities.append({"workspace_id": workspace_id, "contact_id": contact_id, "kind": "phone",
                                   "value": f"+8869{workspace_id:02d}{contact_id:06d}", "source": "test", "created_at": now})
            if sms_status:
                consents.append({"contact_id": contact_id, "channel": "sms", "workspace_id": workspace_id, "status": sms_status,
                                 "source": "test", "updated_at": now})
            if email:
                identities.append({"workspace_id": workspace_id, "contact_id": contact_id, "kind": "email",
                                   "value": f"{prefix}{contact_id}@example.com", "source": "test", "created_at": now})
            if email_status:
                consents.append({"contact_id": contact_id, "channel": "email", "workspace_id": workspace_id, "status": email_status,
                                 "source": "test", "updated_at": now})
        if identities:
            db.execute(insert(Identity), identities)
        if consents:
            db.execute(insert(Consent), consents)
        return ids


def line_id(prefix: str, workspace_id: int, contact_id: int) -> str:
    """A LINE user id as LINE spells them (U + 32 hex digits), unique per test run."""
    return "U" + hashlib.md5(f"{RUN}-{prefix}-{workspace_id}-{contact_id}".encode()).hexdigest()


def line_uid(database, contact_id: int) -> str:
    with database.read_session() as db:
        return db.scalar(select(Identity.value).where(Identity.contact_id == contact_id, Identity.kind == "line_uid"))


def connect_line(database, workspace_id: int, emulator=None, *, base_url: str | None = None, multicast_rate: float = 200.0,
                 push_rate: float = 2000.0) -> int:
    from tutti.channels import service as channels
    from tutti.channels.line_emulator import DEFAULT_ACCESS_TOKEN, DEFAULT_CHANNEL_SECRET

    with database.session() as db:
        channel = channels.connect(db, workspace_id=workspace_id, kind="line", name="LINE OA",
                                   config={"api_base_url": base_url or emulator.base_url, "multicast_rate": multicast_rate,
                                           "push_rate": push_rate},
                                   credentials={"channel_secret": DEFAULT_CHANNEL_SECRET, "access_token": DEFAULT_ACCESS_TOKEN},
                                   actor=ACTOR)
        return channel.id


def connect_sms_and_email(database, workspace_id: int) -> dict:
    """Channels rows for sms and e-mail (not sent through in these tests: the audience only needs them to exist)."""
    from tutti.channels import service as channels

    with database.session() as db:
        sms = channels.connect(db, workspace_id=workspace_id, kind="sms", name="SMS", config={"url": "http://127.0.0.1:9/sms"},
                               credentials={}, actor=ACTOR)
        mail = channels.connect(db, workspace_id=workspace_id, kind="email", name="Mail",
                                config={"host": "127.0.0.1", "port": 9, "from_address": "shop@example.com", "security": "none"},
                                credentials={}, actor=ACTOR)
        return {"sms": sms.id, "email": mail.id}


def make_campaign(database, workspace_id: int, contact_ids: list[int], **data) -> int:
    from tutti.reach.campaigns import service

    body = {"name": "週年慶", "audience": {"contact_ids": contact_ids}, "channels": ["line"],
            "variants": [{"name": "A", "split_percent": 100, "content": {"line": TEXT}}], **data}
    with database.session() as db:
        return service.create(db, workspace_id=workspace_id, data=body, actor=ACTOR).id
