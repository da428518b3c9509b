"""Signed short codes: a link code carries (delivery id, link position), an open code the delivery id, an
unsubscribe token (workspace id, contact id). Each ends in a short MAC (keyed BLAKE2b, 6 base62 digits)
with a key derived from the server's secret key, so
codes cost no row per recipient and cannot be guessed or altered: one wrong character and it is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from tutti.platform.config import get_settings

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
MAC_LENGTH = 6  # 62^6 ≈ 5.7e10: guessing one valid code takes tens of billions of tries
MAX_POSITION = 255  # links per message; further URLs are left as they are
POSITION_BITS = 8
MAX_CODE_LENGTH = 40


_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # two digits per divmod: rendering calls this a lot


def base62(number: int) -> str:
    if number < 0:
        raise ValueError("negative")
    if number < 62:
        return ALPHABET[number]
    out = []
    while number:
        number, rest = divmod(number, 3844)
        out.append(_PAIRS[rest])
    text = "".join(reversed(out))
    return text[1:] if text[0] == "0" else text


def _fixed(number: int) -> str:
    """MAC_LENGTH (6) base62 digits, zero-padded."""
    high, low = divmod(number, 3844)
    middle, low_pair = divmod(high, 3844)
    return _PAIRS[middle % 3844] + _PAIRS[low_pair] + _PAIRS[low]


def unbase62(text: str) -> int | None:
    number = 0
    for char in text:
        value = _INDEX.get(char)
        if value is None:
            return None
        number = number * 62 + value
    return number


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"tutti-tracking:" + secret.encode()).digest()


def _sign(key: bytes, kind: bytes, body: str) -> str:
    # Keyed BLAKE2b is a MAC by design (it needs no HMAC construction around it) and one C call, several
    # times faster than hmac.new(...).copy() when a broadcast signs millions of links.
    digest = hashlib.blake2b(kind + body.encode(), key=key, digest_size=6).digest()
    return _fixed(int.from_bytes(digest, "big") % (62**MAC_LENGTH))


def _mac(kind: bytes, body: str) -> str:
    return _sign(_key(get_settings().resolved_secret_key()), kind, body)


def _verify(kind: bytes, code: str) -> str | None:
    """The body of a well-signed code, or None."""
    if not code or len(code) > MAX_CODE_LENGTH or len(code) <= MAC_LENGTH:
        return None
    body, mac = code[:-MAC_LENGTH], code[-MAC_LENGTH:]
    if not hmac.compare_digest(_mac(kind, body), mac):
        return None
    return body


class Signer:
    """Link codes for many recipients: the key is looked up once (rendering a broadcast calls this a lot)."""

    def __init__(self) -> None:
        self._key = _key(get_settings().resolved_secret_key())

    def _mac(self, kind: bytes, body: str) -> str:
        return _sign(self._key, kind, body)

    def link(self, delivery_id: int, position: int) -> str:
        body = base62((delivery_id << POSITION_BITS) | position)
        return body + self._mac(b"l", body)

    def open(self, delivery_id: int) -> str:
        body = base62(delivery_id)
        return body + self._mac(b"o", body)


def link_code(delivery_id: int, position: int) -> str:
    if not 0 <= position <= MAX_POSITION:
        raise ValueError("position out of range")
    return Signer().link(delivery_id, position)


def read_link_code(code: str) -> tuple[int, int] | None:
    """(delivery id, position) of a valid link code; None for anything else."""
    body = _verify(b"l", code)
    number = unbase62(body) if body else None
    if number is None:
        return None
    return number >> POSITION_BITS, number & MAX_POSITION


def open_code(delivery_id: int) -> str:
    return Signer().open(delivery_id)


def read_open_code(code: str) -> int | None:
    body = _verify(b"o", code)
    return unbase62(body) if body else None


def unsubscribe_token(workspace_id: int, contact_id: int) -> str:
    body = f"{base62(workspace_id)}-{base62(contact_id)}"
    return body + "-" + _mac(b"u", body)


def read_unsubscribe_token(token: str) -> tuple[int, int] | None:
    """(workspace id, contact id) of a valid unsubscribe token; None for anything else."""
    if not token or len(token) > MAX_CODE_LENGTH:
        return None
    body, _, mac = token.rpartition("-")
    if not body or len(mac) != MAC_LENGTH or not hmac.compare_digest(_mac(b"u", body), mac):
        return None
    workspace, _, contact = body.partition("-")
    workspace_id, contact_id = unbase62(workspace), unbase62(contact)
    if not workspace_id or not contact_id:
        return None
    return workspace_id, contact_id


def unsubscribe_url(workspace_id: int, contact_id: int) -> str:
    return f"{get_settings().public_url}/u/{unsubscribe_token(workspace_id, contact_id)}"
