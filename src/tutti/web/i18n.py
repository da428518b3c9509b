"""Translations of the web UI: zh-TW and English, one flat JSON file of dotted keys per language.

Templates call `t("key", name=...)`; the locale of a request comes from the `tutti_locale` cookie, else
the signed-in user's locale, else the browser's Accept-Language, else `settings.default_locale`.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LOCALES = ("zh-TW", "en")
LOCALE_COOKIE = "tutti_locale"
LOCALE_NAMES = {"zh-TW": "繁體中文", "en": "English"}
LOCALES_DIR = Path(__file__).parent / "locales"


@cache
def catalog(locale: str) -> dict[str, str]:
    """The shared file plus each part's own (locales/<part>/<locale>.json), so parts never edit one file."""
    merged = json.loads((LOCALES_DIR / f"{locale}.json").read_text(encoding="utf-8"))
    for part_file in sorted(LOCALES_DIR.glob(f"*/{locale}.json")):
        merged.update(json.loads(part_file.read_text(encoding="utf-8")))
    return merged


def translate(locale: str, key: str, **kwargs) -> str:
    """The text for `key`; a missing key shows itself (and a unit test keeps that from shipping)."""
    text = catalog(locale if locale in LOCALES else LOCALES[0]).get(key)
    if text is None:
        text = catalog("en").get(key, key)
    if kwargs:
        try:
            return text.format(**kwargs)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def known(locale: str | None) -> str | None:
    """The supported locale a code stands for: 'zh-tw', 'zh_Hant', 'zh' -> zh-TW; 'en-US' -> en."""
    if not locale:
        return None
    code = locale.strip().replace("_", "-").lower()
    if code.startswith("zh"):
        return "zh-TW"  # only Traditional Chinese is offered; Simplified readers still read it best
    if code.startswith("en"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The best supported locale in an Accept-Language header, by q-value then order."""
    if not header:
        return None
    choices = []
    for position, part in enumerate(header.split(",")):
        code, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        choices.append((-quality, position, code))
    for _, _, code in sorted(choices):
        locale = known(code)
        if locale:
            return locale
    return None


def negotiate(*, cookie: str | None, user_locale: str | None, accept_language: str | None, default: str) -> str:
    return known(cookie) or known(user_locale) or from_accept_language(accept_language) or default
