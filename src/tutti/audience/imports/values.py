"""The value of one cell of an import: text, gender, consent, money, quantity, order status, channel,
currency, identities, and custom attribute columns (whose type is judged on the whole column)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from tutti.audience import attributes as attrs
from tutti.audience.consent import ALIASES as CONSENT_ALIASES
from tutti.audience.consent import ALLOWED as CONSENT_ALLOWED
from tutti.audience.identities import halfwidth, normalise
from tutti.audience.imports.dates import _parse_when, parse_date
from tutti.audience.imports.reasons import RowError
from tutti.audience.models import ORDER_STATUSES
from tutti.platform.errors import InvalidInput


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def _limited(value: Any, limit: int) -> str | None:
    text = _text(value)
    if not text:
        return None
    if len(text) > limit:
        raise RowError("too_long", limit=limit)
    return text


_GENDERS = {**attrs.GENDERS, "女性": "female", "女生": "female", "小姐": "female", "woman": "female", "w": "female",
            "男性": "male", "男生": "male", "先生": "male", "man": "male", "其他": "other", "其它": "other", "非二元": "other",
            "nonbinary": "other", "non-binary": "other", "x": "other", "ชาย": "male", "หญิง": "female"}


def parse_gender(value: Any) -> str:
    gender = _GENDERS.get(_text(value).lower())
    if gender is None:
        raise RowError("bad_gender", value=value)
    return gender


_CONSENT_WORDS = {
    "是": "subscribed", "y": "subscribed", "v": "subscribed", "✓": "subscribed", "同意": "subscribed", "訂閱": "subscribed",
    "已訂閱": "subscribed", "接收": "subscribed", "好友": "subscribed", "已加入": "subscribed", "subscribe": "subscribed",
    "否": "unsubscribed", "n": "unsubscribed", "不同意": "unsubscribed", "取消訂閱": "unsubscribed", "未訂閱": "unsubscribed",
    "退訂": "unsubscribed", "不接收": "unsubscribed", "unsubscribe": "unsubscribed",
    "封鎖": "blocked", "已封鎖": "blocked", "block": "blocked", "退信": "bounced", "bounce": "bounced",
}


def parse_consent(value: Any, channel: str) -> str:
    word = _text(value).lower()
    status = _CONSENT_WORDS.get(word) or CONSENT_ALIASES.get(word, word)
    if status not in CONSENT_ALLOWED[channel]:
        raise RowError("bad_consent", value=value, channel=channel, allowed="/".join(sorted(CONSENT_ALLOWED[channel])))
    return status


_MONEY_NOISE = re.compile(r"(?i)nt\$|ntd|twd|us\$|usd|jpy|thb|[$¥￥฿元圓円,\s]")


def parse_money(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        try:
            number = float(_MONEY_NOISE.sub("", halfwidth(_text(value))))
        except ValueError:
            raise RowError("bad_amount", value=value) from None
    if number < 0 or number != number or number > 1e11:
        raise RowError("bad_amount", value=value)
    return round(number, 2)


def parse_quantity(value: Any) -> int:
    try:
        number = float(halfwidth(_text(value)).replace(",", ""))
    except ValueError:
        raise RowError("bad_quantity", value=value) from None
    if not number.is_integer() or not 0 < number < 1_000_000:
        raise RowError("bad_quantity", value=value)
    return int(number)


_STATUS_WORDS = {
    "完成": "completed", "已完成": "completed", "交易完成": "completed", "complete": "completed", "done": "completed",
    "已付款": "paid", "付款完成": "paid", "已付": "paid",
    "已出貨": "fulfilled", "出貨": "fulfilled", "已送達": "fulfilled", "配送中": "fulfilled", "shipped": "fulfilled",
    "delivered": "fulfilled",
    "已取消": "cancelled", "取消": "cancelled", "canceled": "cancelled", "cancel": "cancelled",
    "已退款": "refunded", "退款": "refunded", "refund": "refunded", "部分退款": "partially_refunded",
    "新訂單": "placed", "處理中": "placed", "待付款": "placed", "待出貨": "paid", "pending": "placed", "processing": "placed",
    "open": "placed",
}


def parse_status(value: Any) -> str:
    word = _text(value).lower().replace(" ", "_")
    status = _STATUS_WORDS.get(word, word)
    if status not in ORDER_STATUSES:
        raise RowError("bad_status", value=value)
    return status


_CHANNEL_WORDS = {"官網": "web", "網站": "web", "網路": "web", "線上": "web", "online": "web", "website": "web",
                  "門市": "store", "實體": "store", "店面": "store", "offline": "store", "shop": "store", "pos": "store",
                  "line": "line", "app": "app"}


def parse_channel(value: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    return _CHANNEL_WORDS.get(text.lower(), text.lower()[:32])


def parse_currency(value: Any) -> str:
    code = halfwidth(_text(value)).upper()
    code = {"NT$": "TWD", "NTD": "TWD", "NT": "TWD", "台幣": "TWD", "新台幣": "TWD", "日圓": "JPY", "日幣": "JPY", "泰銖": "THB",
            "美金": "USD", "美元": "USD"}.get(code, code)
    if len(code) != 3 or not code.isalpha():
        raise RowError("bad_currency", value=value)
    return code


def _identity(kind: str, value: Any, region: str) -> str:
    try:
        return normalise(kind, _text(value), region=region)
    except InvalidInput:
        raise RowError(f"bad_{kind}", value=value) from None


# --- attribute columns ---------------------------------------------------------------------------------

_BOOLEAN_WORDS = {"true", "false", "yes", "no", "y", "n", "是", "否"}


def _infer_column_type(values: list[Any]) -> str:
    """The type a column of a file holds, judged on all of its values (a CSV cell alone is always text)."""
    present = [v for v in values if _text(v)]
    if not present:
        return "string"

    def is_number(v):
        if isinstance(v, bool):
            return False
        if isinstance(v, (int, float)):
            return True
        text = halfwidth(_text(v)).replace(",", "")
        if re.fullmatch(r"0\d+", text):  # zip codes and ids keep their leading zeros as text
            return False
        try:
            float(text)
            return True
        except ValueError:
            return False

    def is_date(v):
        if isinstance(v, (date, datetime)):
            return True
        text = _text(v)
        if not re.search(r"\d{4}|年|民國", text):
            return False
        try:
            _parse_when(text)
            return True
        except RowError:
            return False

    if all(is_number(v) for v in present):
        return "number"
    if all(is_date(v) for v in present):
        return "date"
    if all(_text(v).lower() in _BOOLEAN_WORDS for v in present):
        return "boolean"
    return "string"


def _coerce_attribute(value: Any, type_: str, key: str) -> Any:
    if type_ == "date":
        return parse_date(value).isoformat()
    if type_ == "number" and not isinstance(value, (int, float)):
        value = halfwidth(_text(value))
    if type_ == "string":
        value = _text(value)[:1000]
    try:
        return attrs.coerce(value, type_, key=key)
    except InvalidInput:
        raise RowError("bad_attribute", value=value, type=type_) from None
