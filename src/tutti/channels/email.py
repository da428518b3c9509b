"""E-mail over SMTP (smtplib).

Connections are pooled: a message takes an idle connection (or opens one), and gives it back after, so
one connection serves every message of a `send()` call and later calls, and the send engine's threads
each get their own (an SMTP session is a conversation: two threads on one would interleave commands and
the server answers 503). `close()` quits them all; a pooled connection the server dropped is reopened
once and the message tried again.
STARTTLS (default, port 587), implicit TLS (`ssl`, port 465) or none (a local relay); AUTH when a
username is set.

Each message is multipart/alternative (text, then HTML); its Message-ID is derived from the delivery key
(`<key@sender-domain>`), so a resent delivery carries the same Message-ID and receiving systems can tell.
Headers from the payload (`List-Unsubscribe`, `List-Unsubscribe-Post`, …) are added as given.

Outcomes: accepted → sent (provider_id = the Message-ID); a permanent 5xx for the recipient → failed with
the server's words (`is_bounce(outcome)`; the caller then calls `mark_bounced`); 4xx, a dropped connection
or a network error → retry.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.channels.base import ChannelInfo, Outcome, Outgoing
from tutti.platform import ratelimit
from tutti.platform.errors import InvalidInput

log = logging.getLogger("tutti.channels.email")

# headers a template may not set: they are the adapter's (or would let a payload redirect mail)
RESERVED_HEADERS = {"from", "to", "cc", "bcc", "subject", "message-id", "date", "content-type", "mime-version",
                    "content-transfer-encoding", "sender", "return-path"}


def _decode(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value or "")


def is_bounce(outcome: Outcome) -> bool:
    """A permanent refusal of the address itself (5xx at RCPT or DATA)."""
    return outcome.status == "failed" and bool(outcome.code) and outcome.code.startswith("5") and outcome.code.isdigit()


class EmailAdapter:
    def __init__(self, *, channel_id: int | None, config: dict, secrets: dict, workspace_id: int | None = None):
        self.channel_id = channel_id
        self.host = config["host"]
        self.port = int(config.get("port") or 587)
        self.security = config.get("security") or "starttls"
        self.username = config.get("username")
        self.password = secrets.get("password")
        self.from_address = config["from_address"]
        self.from_name = config.get("from_name")
        self.reply_to = config.get("reply_to")
        self.rate = float(config.get("rate") or 20.0)
        self.timeout = float(config.get("timeout") or 30.0)
        self.domain = self.from_address.rsplit("@", 1)[-1]
        self.bucket = f"email:{self.host}:{self.port}:{self.username or self.from_address}"
        self.info = ChannelInfo(kind="email", max_batch=1)
        self._idle: list[smtplib.SMTP] = []  # connections no thread is using
        self._lock = threading.Lock()
        self.connections_opened = 0  # for tests and metrics: proves the connection is reused

    # --- connection --------------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        return smtp

    def _take(self) -> tuple[smtplib.SMTP, bool]:
        """An idle connection (pooled=True) or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(smtp)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    # --- messages ----------------------------------------------------------------------------------

    def message_id(self, key: str) -> str:
        return f"<{key}@{self.domain}>"

    def build(self, message: Outgoing) -> EmailMessage:
        payload = message.payload or {}
        mail = EmailMessage()
        mail["From"] = formataddr((self.from_name, self.from_address)) if self.from_name else self.from_address
        mail["To"] = message.to
        mail["Subject"] = payload.get("subject") or ""
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = self.message_id(message.key)
        if self.reply_to:
            mail["Reply-To"] = self.reply_to
        for name, value in (payload.get("headers") or {}).items():
            if name.lower() in RESERVED_HEADERS or "\n" in str(value) or "\r" in str(value):
                continue
            mail[name] = str(value)
        text, html = payload.get("text"), payload.get("html")
        mail.set_content(text or "")
        if html:
            mail.add_alternative(html, subtype="html")
        return mail

    def _send_one(self, message: Outgoing) -> Outcome:
        try:
            mail = self.build(message)
        except (ValueError, TypeError) as error:
            return Outcome(key=message.key, status="failed", reason=f"cannot build the e-mail: {error}"[:500], code="invalid")
        ratelimit.acquire(self.bucket, rate=self.rate, burst=max(1, int(self.rate)))
        for attempt in (1, 2):
            try:
                smtp, pooled = self._take()
            except (smtplib.SMTPException, OSError) as error:
                return Outcome(key=message.key, status="retry", reason=f"cannot reach {self.host}:{self.port}: {error}"[:500], code="network")
            outcome = self._transact(smtp, mail, message)
            if outcome is None:  # the connection broke: it is closed, not given back
                if attempt == 2 or not pooled:
                    return Outcome(key=message.key, status="retry", reason="the SMTP connection failed", code="network")
                continue  # a pooled connection the server (or a NAT) dropped: open a fresh one once
            return outcome
        raise AssertionError("unreachable")

    def _transact(self, smtp: smtplib.SMTP, mail: EmailMessage, message: Outgoing) -> Outcome | None:
        """One SMTP transaction on a connection this thread holds. The connection goes back to the pool when
        it is still usable; None means it broke."""
        try:
            refused = smtp.send_message(mail, from_addr=self.from_address, to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as error:  # smtplib has sent RSET already
            self._give_back(smtp)
            code, text = error.recipients.get(message.to, next(iter(error.recipients.values()), (550, b"refused")))
            return self._refused(message.key, code, text)
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            self._reset(smtp)
            return self._refused(message.key, error.smtp_code, error.smtp_error)
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            smtp.close()
            return None
        except smtplib.SMTPResponseException as error:
            smtp.close()
            return self._refused(message.key, error.smtp_code, error.smtp_error)
        except (smtplib.SMTPException, OSError) as error:
            smtp.close()
            return Outcome(key=message.key, status="retry", reason=f"cannot reach {self.host}:{self.port}: {error}"[:500], code="network")
        self._give_back(smtp)
        if refused:
            code, text = refused.get(message.to, (550, b"refused"))
            return self._refused(message.key, code, text)
        return Outcome(key=message.key, status="sent", provider_id=self.message_id(message.key), code="250")

    def _refused(self, key: str, code: int, text) -> Outcome:
        reason = f"{code} {_decode(text)}".strip()[:500]
        status = "failed" if 500 <= int(code) < 600 else "retry"
        return Outcome(key=key, status=status, reason=reason, code=str(code))

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """After a refused transaction the connection stays usable once RSET clears it."""
        try:
            smtp.rset()
        except (smtplib.SMTPException, OSError):
            smtp.close()
            return
        self._give_back(smtp)

    def send(self, messages: list[Outgoing]) -> list[Outcome]:
        return [self._send_one(message) for message in messages]

    def test_connection(self) -> dict:
        try:
            smtp = self._connect()
        except smtplib.SMTPAuthenticationError as error:
            raise InvalidInput(f"the SMTP server refused the login: {error.smtp_code} {_decode(error.smtp_error)}",
                               field="credentials.password") from None
        except smtplib.SMTPNotSupportedError as error:
            raise InvalidInput(f"the SMTP server does not support this: {error} (check security)", field="config.security") from None
        except (smtplib.SMTPException, OSError) as error:
            raise InvalidInput(f"cannot reach the SMTP server {self.host}:{self.port}: {error}", field="config.host") from None
        try:
            code, _ = smtp.noop()
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        return {"message": f"connected to {self.host}:{self.port} ({self.security}), answered {code}"}


def from_channel(*, channel_id: int | None, workspace_id: int | None = None, config: dict, secrets: dict) -> EmailAdapter:
    return EmailAdapter(channel_id=channel_id, workspace_id=workspace_id, config=config, secrets=secrets)


def mark_bounced(db: Session, *, workspace_id: int, address: str, reason: str) -> int | None:
    """Record that mail to this address bounced: the contact holding it gets e-mail consent `bounced`, and the
    server's reason goes to the audit log. Returns the contact id, or None when nobody holds the address."""
    from tutti.audience import consent
    from tutti.audience.identities import normalise_email
    from tutti.audience.models import Identity
    from tutti.platform import audit
    from tutti.platform.audit import Actor

    try:
        value = normalise_email(address)
    except Exception:  # noqa: BLE001 - an address we cannot even read has nobody to mark
        return None
    contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == "email",
                                                             Identity.value == value))
    if contact_id is None:
        return None
    if consent.set_consent(db, workspace_id=workspace_id, contact_id=contact_id, channel="email", status="bounced", source="smtp bounce"):
        audit.record(db, workspace_id=workspace_id, actor=Actor.system("smtp"), action="consent.bounced", target_kind="contact",
                     target_id=contact_id, detail={"address": value, "reason": reason[:500]})
    return contact_id
