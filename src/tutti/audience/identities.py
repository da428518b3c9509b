"""Normalising identities, so the same person written two ways is recognised as one."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from tutti.audience.models import IDENTITY_KINDS
from tutti.platform.errors import InvalidInput

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
LINE_UID_RE = re.compile(r"^U[0-9a-f]{32}$")
MAX_ID_LENGTH = 200


def halfwidth(text: str) -> str:
    """Full-width digits, letters and symbols (０９１２, ＠) become their ASCII forms."""
    return unicodedata.normalize("NFKC", text)


def normalise_phone(value: str, region: str = "TW") -> str:
    """E.164, with `region` (the workspace's, Taiwan by default) for numbers written without a country code."""
    text = halfwidth(str(value)).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = re.sub(r"[^\d+]", "", text)
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"'{value}' is not a phone number", field="phone") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"'{value}' is not a valid phone number (region {region})", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(value: str) -> str:
    text = halfwidth(str(value)).strip().lower()
    if not EMAIL_RE.match(text) or len(text) > 320:
        raise InvalidInput(f"'{value}' is not an e-mail address", field="email")
    return text


def normalise(kind: str, value: object, *, region: str = "TW") -> str:
    """The canonical form of an identity value; raises InvalidInput naming the kind when it is not one."""
    if kind not in IDENTITY_KINDS:
        raise InvalidInput(f"unknown identity kind '{kind}'; use one of {', '.join(IDENTITY_KINDS)}", field="kind")
    if value is None or str(value).strip() == "":
        raise InvalidInput(f"{kind} is empty", field=kind)
    if kind == "email":
        return normalise_email(str(value))
    if kind == "phone":
        return normalise_phone(str(value), region)
    text = str(value).strip()
    if kind == "line_uid" and not LINE_UID_RE.match(text):
        raise InvalidInput(f"'{text}' is not a LINE user id (U followed by 32 hex digits)", field=kind)
    if len(text) > MAX_ID_LENGTH:
        raise InvalidInput(f"{kind} is longer than {MAX_ID_LENGTH} characters", field=kind)
    return text


def normalise_all(identities: dict[str, object] | list[tuple[str, object]], *, region: str = "TW") -> list[tuple[str, str]]:
    """Normalise several identities, dropping empty ones and repeats, strongest kind first."""
    pairs = identities.items() if isinstance(identities, dict) else identities
    seen: dict[tuple[str, str], None] = {}
    for kind, value in pairs:
        if value is None or str(value).strip() == "":
            continue
        seen[(kind, normalise(kind, value, region=region))] = None
    return sorted(seen, key=lambda pair: IDENTITY_KINDS.index(pair[0]))
