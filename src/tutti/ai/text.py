"""Text normalisation and tokens for matching: one written form for Chinese, plain words for English.

`normalise` folds the differences that should never change a match: full-width vs half-width forms
(NFKC), Simplified vs Traditional characters and mainland vs Taiwan vocabulary (OpenCC s2twp, so
软件 and 軟體 become the same word), case, and runs of white space. `tokens` cuts the normalised text into
words: jieba for Chinese, letters/digits for everything else, English lower-cased and lightly stemmed
(plural and -ing/-ed endings) so "refunds" finds "refund". Stop words are left in: BM25 weighs them down
by itself and short questions need every word they have.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

_lock = threading.Lock()
_converter = None
_jieba = None

_SPACE = re.compile(r"\s+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A run of Han characters, or a run of letters/digits (Latin and other alphabets), in normalised text.
_PIECES = re.compile(
    r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)|([^\W_\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)",
    re.UNICODE,
)


def _opencc():
    global _converter
    if _converter is None:
        with _lock:
            if _converter is None:
                import opencc

                _converter = opencc.OpenCC("s2twp")
    return _converter


def _tokenizer():
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _jieba = tokenizer
    return _jieba


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """One form of `text`: NFKC (full-width → half-width), Traditional Chinese with Taiwan vocabulary,
    lower case, single spaces, trimmed."""
    value = unicodedata.normalize("NFKC", text or "")
    if has_han(value):
        value = _opencc().convert(value)
    return _SPACE.sub(" ", value.lower()).strip()


def stem(word: str) -> str:
    """A light English stemmer: enough to join refund/refunds/refunded/refunding, never clever."""
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "es" and not word[:-2].endswith(("s", "x", "z", "ch", "sh")):
                continue  # "prices" → "price" via "s", not "pric"
            if suffix == "s" and word.endswith("ss"):
                return word
            base = word[: len(word) - len(suffix)] + keep
            if suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # shipped → ship
            return base
    return word


def tokens(text: str) -> list[str]:
    """Words of the normalised text: jieba words for Chinese, stemmed lower-case words otherwise.
    Punctuation and spaces are dropped."""
    return list(_tokens(normalise(text)))


@lru_cache(maxsize=65536)
def _tokens(normalised: str) -> tuple[str, ...]:
    out: list[str] = []
    for match in _PIECES.finditer(normalised):
        han, word = match.group(1), match.group(2)
        if han:
            out.extend(piece for piece in _tokenizer().lcut(han, HMM=True) if piece.strip())
        else:
            out.append(stem(word))
    return tuple(out)
