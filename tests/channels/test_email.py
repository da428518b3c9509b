"""The SMTP adapter against a real aiosmtpd server."""

from __future__ import annotations

import socket
import uuid

from sqlalchemy import select

from tests.channels.smtp_server import smtp_server
from tutti.audience import contacts
from tutti.audience.models import Consent
from tutti.channels import email as email_channel
from tutti.channels import service
from tutti.channels.base import Outgoing
from tutti.platform.audit import Actor
from tutti.platform.models import AuditLog


def _adapter(host, port, **config):
    return email_channel.from_channel(channel_id=1, config={"host": host, "port": port, "security": "none",
                                                            "from_address": "news@shop.example", "from_name": "好物商店", **config},
                                      secrets={"password": config.pop("password", None)} if "password" in config else {})


def _mail(to: str, subject: str = "雙11 優惠", key: str | None = None) -> Outgoing:
    return Outgoing(key=key or str(uuid.uuid4()), to=to, payload={
        "subject": subject, "text": "全館 8 折 https://shop.example/sale", "html": "<p>全館 <b>8 折</b></p>",
        "headers": {"List-Unsubscribe": "<https://tutti.example/u/abc>, <mailto:unsubscribe@shop.example>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click", "Bcc": "spy@example.com"}})


def test_messages_are_multipart_with_headers_and_a_stable_message_id():
    with smtp_server() as (host, port, server):
        adapter = _adapter(host, port)
        key = str(uuid.uuid4())
        [outcome] = adapter.send([_mail("mei@example.com", key=key)])
        adapter.close()
    assert outcome.status == "sent" and outcome.provider_id == f"<{key}@shop.example>"
    [received] = server.messages
    assert received.recipients == ["mei@example.com"] and received.sender == "news@shop.example"
    mail = received.message
    assert mail["Message-ID"] == f"<{key}@shop.example>"
    assert mail["Subject"] == "雙11 優惠" and "好物商店" in mail["From"]
    assert mail["List-Unsubscribe"].strip().startswith("<https://tutti.example/u/abc>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Bcc"] is None  # a payload cannot add recipients
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().strip() == "全館 8 折 https://shop.example/sale"
    assert "<b>8 折</b>" in mail.get_body(("html",)).get_content()


def test_one_connection_for_many_messages_and_calls():
    with smtp_server() as (host, port, server):
        adapter = _adapter(host, port)
        first = adapter.send([_mail(f"a{i}@example.com") for i in range(5)])
        second = adapter.send([_mail("b@example.com")])
        adapter.close()
        assert {o.status for o in first + second} == {"sent"}
        assert adapter.connections_opened == 1 and server.sessions == 1
        assert len(server.messages) == 6


def test_bounce_is_failed_greylisting_is_retry_and_the_connection_survives():
    with smtp_server() as (host, port, server):
        adapter = _adapter(host, port)
        outcomes = adapter.send([_mail("bounce@example.com"), _mail("later@example.com"), _mail("ok@example.com")])
        adapter.close()
    bounced, later, ok = outcomes
    assert bounced.status == "failed" and bounced.code == "550" and "User unknown" in bounced.reason
    assert email_channel.is_bounce(bounced) and not email_channel.is_bounce(later)
    assert later.status == "retry" and later.code == "451"
    assert ok.status == "sent" and [m.recipients for m in server.messages] == [["ok@example.com"]]


def test_a_dropped_connection_is_reopened():
    with smtp_server() as (host, port, server):
        adapter = _adapter(host, port)
        assert adapter.send([_mail("x@example.com")])[0].status == "sent"
        adapter._idle[0].sock.shutdown(socket.SHUT_RDWR)  # the server (or a NAT) dropped the pooled connection
        assert adapter.send([_mail("y@example.com")])[0].status == "sent"
        adapter.close()
        assert adapter.connections_opened == 2 and len(server.messages) == 2


def test_threads_sharing_an_adapter_each_get_their_own_connection():
    # the send engine calls one adapter from several threads; on one shared SMTP session their commands would
    # interleave and the server would answer 503 to some of them
    from concurrent.futures import ThreadPoolExecutor

    with smtp_server() as (host, port, server):
        adapter = _adapter(host, port)
        addresses = [f"{'bounce' if i % 5 == 0 else 'fan'}{i}@example.com" for i in range(40)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(lambda a: adapter.send([_mail(a)])[0], addresses))
        adapter.close()
    codes = [o.code for o in outcomes]
    assert codes == ["550" if a.startswith("bounce") else "250" for a in addresses]
    assert sorted(r for m in server.messages for r in m.recipients) == sorted(a for a in addresses if a.startswith("fan"))
    assert adapter.connections_opened <= 4


def test_unreachable_server_is_retry():
    adapter = _adapter("127.0.0.1", 9)
    [outcome] = adapter.send([_mail("x@example.com")])
    assert outcome.status == "retry" and outcome.code == "network"


def test_auth_and_test_connection(database, workspace_id):
    with smtp_server(password="right") as (host, port, server):
        with database.session() as db:
            good = service.connect(db, workspace_id=workspace_id, kind="email", name="SMTP", actor=Actor.cli(),
                                   config={"host": host, "port": port, "security": "none", "username": "tutti", "from_address": "a@shop.example"},
                                   credentials={"password": "right"}).id
            bad = service.connect(db, workspace_id=workspace_id, kind="email", name="SMTP bad", actor=Actor.cli(),
                                  config={"host": host, "port": port, "security": "none", "username": "tutti", "from_address": "a@shop.example"},
                                  credentials={"password": "wrong"}).id
        with database.session() as db:
            assert service.test_channel(db, workspace_id=workspace_id, channel_id=good)["ok"]
            failed = service.test_channel(db, workspace_id=workspace_id, channel_id=bad)
            assert not failed["ok"] and "refused the login" in failed["message"]
            adapter = service.adapter_for(db, workspace_id=workspace_id, channel_id=good)
        assert adapter.send([_mail("mei@example.com")])[0].status == "sent"
        adapter.close()
        assert len(server.messages) == 1


def test_mark_bounced_sets_email_consent(database, workspace_id):
    with database.session() as db:
        contact, _ = contacts.upsert(db, workspace_id=workspace_id, identities={"email": "Mei@Example.com"})
        contact_id = contact.id
    with database.session() as db:
        assert service.mark_bounced(db, workspace_id=workspace_id, address="mei@example.com", reason="550 User unknown") == contact_id
        assert service.mark_bounced(db, workspace_id=workspace_id, address="nobody@example.com", reason="550") is None
    with database.read_session() as db:
        assert db.get(Consent, (contact_id, "email")).status == "bounced"
        entry = db.scalars(select(AuditLog).where(AuditLog.action == "consent.bounced")).one()
        assert entry.detail["reason"] == "550 User unknown"
