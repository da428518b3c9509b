"""A real SMTP server for tests (aiosmtpd on a free loopback port) that keeps what it received.

Addresses starting with `bounce` are refused at RCPT with 550, `later` with 451 (try again later).
"""

from __future__ import annotations

import email
import email.policy
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage


@dataclass
class Recorder:
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.startswith("later"):
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(*, password: str | None = None):
    """Yields (host, port, recorder). With a password, AUTH is required (user "tutti")."""
    recorder = Recorder()
    kwargs = {}
    if password is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == b"tutti" and auth_data.password == password.encode()
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        kwargs = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield controller.hostname, controller.port, recorder
    finally:
        controller.stop()
