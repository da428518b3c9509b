"""Channel credentials at rest: a JSON object encrypted with Fernet (AES-128-CBC + HMAC-SHA256).

The Fernet key is derived (HKDF-SHA256) from the server's secret key, so a database dump alone does not
reveal access tokens or passwords. Changing TUTTI_SECRET_KEY makes stored credentials unreadable:
channels then show "credentials cannot be decrypted" and must be connected again.
"""

from __future__ import annotations

import base64
from functools import lru_cache

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tutti.platform.errors import InvalidInput


@lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tutti channel credentials v1").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    from tutti.platform.config import get_settings

    return _fernet(get_settings().resolved_secret_key())


def encrypt(values: dict) -> str:
    return _current().encrypt(orjson.dumps(values)).decode()


def decrypt(token: str) -> dict:
    if not token:
        return {}
    try:
        return orjson.loads(_current().decrypt(token.encode()))
    except InvalidToken:
        raise InvalidInput("the channel's credentials cannot be decrypted (was TUTTI_SECRET_KEY changed?); connect it again",
                           field="credentials") from None


def mask(value: str | None) -> str | None:
    """What the API shows of a secret: that it is set, and its last 4 characters when it is long enough
    for that to reveal nothing useful."""
    if not value:
        return None
    return "••••" + value[-4:] if len(value) >= 16 else "••••"
