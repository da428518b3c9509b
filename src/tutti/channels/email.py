"""E-mail over SMTP (smtplib).

One SMTP connection is opened on first use and reused for every message of a `send()` call and across
calls, until `close()` (or the server drops it: then it is reopened once and the message tried again).
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
        self._smtp: smtplib.SMTP | None = None
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

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

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
            pooled = self._smtp is not None
            try:
                refused = self._connection().send_message(mail, from_addr=self.from_address, to_addrs=[message.to])
            except smtplib.SMTPRecipientsRefused as error:
                code, text = error.recipients.get(message.to, next(iter(error.recipients.values()), (550, b"refused")))
                return self._refused(message.key, code, text)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
                self._reset()
                return self._refused(message.key, error.smtp_code, error.smtp_error)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as error:
                self._drop()
                if attempt == 2 or not pooled:
                    return Outcome(key=message.key, status="retry", reason=f"the SMTP connection failed: {error}"[:500], code="network")
                continue  # a pooled connection the server (or a NAT) dropped: open a fresh one once
            except smtplib.SMTPResponseException as error:
                self._drop()
                return self._refused(message.key, error.smtp_code, error.smtp_error)
            except (smtplib.SMTPException, OSError) as error:
                self._drop()
                return Outcome(key=message.key, status="retry", reason=f"cannot reach {self.host}:{self.port}: {error}"[:500], code="network")
            if refused:
                code, text = refused.get(message.to, (550, b"refused"))
                return self._refused(message.key, code, text)
            return Outcome(key=message.key, status="sent", provider_id=self.message_id(message.key), code="250")
        raise AssertionError("unreachable")

    def _refused(self, key: str, code: int, text) -> Outcome:
        reason = f"{code} {_decode(text)}".strip()[:500]
        status = "failed" if 500 <= int(code) < 600 else "retry"
        return Outcome(key=key, status=status, reason=reason, code=str(code))

    def _reset(self) -> None:
        """After a refused transaction the connection stays usable once RSET clears it."""
        if self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

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
