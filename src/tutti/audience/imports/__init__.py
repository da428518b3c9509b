"""Imports of members and orders from CSV and Excel files.

The flow: `create_import` reads the file, guesses what each column is and stores the file on an ImportJob;
`preview` checks every row against a (possibly edited) mapping and changes nothing; `start` queues the
job; `run` is the job body. Checking is a pure function of the file, the mapping and the workspace's
settings, so any worker can redo it and get the same answer. Rows are then written in chunks, each
chunk's writes and its checkpoint (`processed_rows`, counts, errors) in one transaction: a crash anywhere
resumes at the last committed chunk, and nothing is written twice. Bad rows are reported with the row
number a person sees in the file, the column and the reason (in English and zh-TW), and skipped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session

from tutti.audience import attributes as attrs
from tutti.audience import commerce, contacts, tags
from tutti.audience.consent import ALIASES as CONSENT_ALIASES
from tutti.audience.consent import ALLOWED as CONSENT_ALLOWED
from tutti.audience.filereader import Table, read_table
from tutti.audience.identities import halfwidth, normalise
from tutti.audience.models import (
    IDENTITY_KINDS,
    ORDER_STATUSES,
    Consent,
    ConsentChange,
    Contact,
    Identity,
    ImportJob,
)
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import Database, get_database, utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.models import Workspace
from tutti.platform.sql import insert_ignore, upsert_rows

KINDS = ("members", "orders")
CHUNK_SIZE = 1000
STALE_AFTER = timedelta(minutes=2)
MAX_STORED_ERRORS = 10_000
ATTRIBUTE_PREFIX = "attribute:"
IGNORE = "ignore"

MEMBER_FIELDS = ("external_id", "email", "phone", "line_uid", "name", "gender", "birthday", "city", "locale", "tags",
                 "consent_email", "consent_sms", "consent_line")
ORDER_FIELDS = ("order_id", "external_id", "email", "phone", "placed_at", "total", "status", "currency", "channel",
                "sku", "product_name", "category", "quantity", "unit_price")
MEMBER_IDENTITY_FIELDS = ("external_id", "line_uid", "email", "phone")
ORDER_IDENTITY_FIELDS = ("external_id", "email", "phone")
ORDER_LEVEL_FIELDS = ("external_id", "email", "phone", "placed_at", "total", "status", "currency", "channel")
EXCLUSIVE = contacts.EXCLUSIVE_KINDS

FIELD_LABELS: dict[str, tuple[str, str]] = {  # field: (English, zh-TW)
    "external_id": ("Customer id", "會員編號"),
    "email": ("E-mail", "電子郵件"),
    "phone": ("Mobile phone", "手機"),
    "line_uid": ("LINE user id", "LINE 使用者 ID"),
    "name": ("Name", "姓名"),
    "gender": ("Gender", "性別"),
    "birthday": ("Birthday", "生日"),
    "city": ("City", "縣市"),
    "locale": ("Language", "語言"),
    "tags": ("Tags (comma-separated)", "標籤（以逗號分隔）"),
    "consent_email": ("E-mail subscription", "電子報訂閱"),
    "consent_sms": ("SMS subscription", "簡訊訂閱"),
    "consent_line": ("LINE friend", "LINE 好友狀態"),
    "order_id": ("Order id", "訂單編號"),
    "placed_at": ("Order date", "下單時間"),
    "total": ("Order total", "訂單金額"),
    "status": ("Order status", "訂單狀態"),
    "currency": ("Currency", "幣別"),
    "channel": ("Sales channel", "銷售通路"),
    "sku": ("Product id (SKU)", "商品編號"),
    "product_name": ("Product", "商品名稱"),
    "category": ("Category", "商品分類"),
    "quantity": ("Quantity", "數量"),
    "unit_price": ("Unit price", "單價"),
    "ignore": ("Do not import", "不匯入"),
    "attribute": ("Custom attribute", "自訂屬性"),
}

# Reasons a row is skipped: code -> (English, zh-TW). Both are stored on every error.
REASONS: dict[str, tuple[str, str]] = {
    "bad_email": ("'{value}' is not an e-mail address", "「{value}」不是有效的電子郵件地址"),
    "bad_phone": ("'{value}' is not a valid phone number", "「{value}」不是有效的電話號碼"),
    "bad_line_uid": ("'{value}' is not a LINE user id (U followed by 32 hex digits)", "「{value}」不是 LINE 使用者 ID（U 加 32 個十六進位字元）"),
    "bad_external_id": ("the customer id is longer than 200 characters", "會員編號超過 200 個字元"),
    "bad_date": ("'{value}' is not a date", "「{value}」不是日期"),
    "ambiguous_date": ("'{value}' could be month/day or day/month; write it as YYYY-MM-DD", "「{value}」無法判斷月日順序，請寫成 YYYY-MM-DD"),
    "bad_birthday": ("'{value}' is not a plausible birthday", "「{value}」不是合理的生日"),
    "bad_gender": ("'{value}' is not a gender (female, male, other; 女, 男, 其他)", "「{value}」不是可辨識的性別（女、男、其他）"),
    "bad_consent": ("'{value}' is not a {channel} subscription value (use {allowed})", "「{value}」不是可辨識的{channel_zh}訂閱狀態（請用 {allowed}）"),
    "bad_tag": ("tag '{value}' is longer than 100 characters", "標籤「{value}」超過 100 個字元"),
    "bad_attribute": ("'{value}' is not a {type}", "「{value}」不是{type_zh}"),
    "too_long": ("the value is longer than {limit} characters", "內容超過 {limit} 個字元"),
    "no_identity": ("the row has no customer id, e-mail, phone or LINE id", "此列沒有會員編號、電子郵件、手機或 LINE ID"),
    "duplicate": ("same {kind} as row {other}; this row is skipped", "與第 {other} 列的{kind_zh}相同，此列略過"),
    "missing_order_id": ("the order id is empty", "訂單編號是空的"),
    "bad_amount": ("'{value}' is not an amount", "「{value}」不是金額"),
    "bad_quantity": ("'{value}' is not a whole number of items", "「{value}」不是有效的數量"),
    "bad_status": ("'{value}' is not an order status", "「{value}」不是可辨識的訂單狀態"),
    "bad_currency": ("'{value}' is not a 3-letter currency code", "「{value}」不是三個字母的幣別代碼"),
    "order_conflict": ("'{value}' differs from '{earlier}' on row {other} of the same order", "「{value}」與同一張訂單第 {other} 列的「{earlier}」不同"),
    "missing_customer": ("order {order} has no customer id, e-mail or phone", "訂單 {order} 沒有會員編號、電子郵件或手機"),
    "missing_date": ("order {order} has no order date", "訂單 {order} 沒有下單時間"),
    "missing_total": ("order {order} has no total and no unit prices", "訂單 {order} 沒有訂單金額也沒有單價"),
    "duplicate_line": ("same order line as row {other}; this row is skipped", "與第 {other} 列的訂單明細相同，此列略過"),
}
_TYPE_ZH = {"number": "數字", "date": "日期", "boolean": "是/否", "string": "文字", "list": "清單"}
_CHANNEL_ZH = {"email": "電子報", "sms": "簡訊", "line": "LINE"}


def _reason(code: str, **params) -> tuple[str, str]:
    english, chinese = REASONS[code]
    params = {k: (str(v)[:80] if isinstance(v, str) else v) for k, v in params.items()}
    if "kind" in params:
        params.setdefault("kind_zh", FIELD_LABELS.get(params["kind"], ("", params["kind"]))[1])
        params["kind"] = FIELD_LABELS.get(params["kind"], (params["kind"], ""))[0].lower()
    if "type" in params:
        params.setdefault("type_zh", _TYPE_ZH.get(params["type"], params["type"]))
    if "channel" in params:
        params.setdefault("channel_zh", _CHANNEL_ZH.get(params["channel"], params["channel"]))
    return english.format(**params), chinese.format(**params)


class RowError(Exception):
    """A cell that cannot be used; becomes one entry of the import's error list."""

    def __init__(self, code: str, **params):
        super().__init__(code)
        self.code = code
        self.params = params


# --- mapping ---------------------------------------------------------------------------------------


def fields_for(kind: str) -> list[str]:
    """The fields a column can be mapped to. Members (and order properties) also accept 'attribute:<key>'."""
    return [*_fields(kind), IGNORE]


def field_labels(kind: str, locale: str = "zh-TW") -> dict[str, str]:
    """What to call each field in the mapping step, in zh-TW or English."""
    column = 1 if locale.lower().startswith("zh") else 0
    return {f: FIELD_LABELS[f][column] for f in fields_for(kind)}


def _fields(kind: str) -> tuple[str, ...]:
    if kind == "members":
        return MEMBER_FIELDS
    if kind == "orders":
        return ORDER_FIELDS
    raise InvalidInput(f"unknown import kind '{kind}'; use members or orders", field="kind")


def _key(header: str) -> str:
    text = unicodedata.normalize("NFKC", header).lower().replace("\ufeff", "")
    return re.sub(r"[\s_\-.:：()（）\[\]【】/#＃*＊'\"]", "", text)


_MEMBER_SYNONYMS = {
    "external_id": ["會員編號", "會員id", "會員代號", "會員號碼", "會員卡號", "客戶編號", "客戶id", "客戶代號", "顧客編號", "顧客id",
                    "customerid", "customerno", "customernumber", "memberid", "memberno", "membernumber", "externalid",
                    "userid", "id", "會員番号", "顧客番号", "顧客id"],
    "email": ["email", "電子郵件", "電子信箱", "電子郵件地址", "信箱", "郵件", "mail", "emailaddress", "メール", "メールアドレス", "อีเมล"],
    "phone": ["手機", "手機號碼", "手機號", "電話", "行動電話", "聯絡電話", "電話號碼", "mobile", "phone", "phonenumber", "mobilephone",
              "mobilenumber", "tel", "telephone", "cellphone", "cell", "電話番号", "携帯", "携帯番号", "เบอร์โทร"],
    "line_uid": ["lineid", "lineuid", "lineuserid", "line用戶id", "line使用者id", "line帳號", "line"],
    "name": ["姓名", "名字", "會員姓名", "顧客姓名", "客戶姓名", "客戶名稱", "name", "fullname", "membername", "customername",
             "氏名", "名前", "お名前", "ชื่อ"],
    "gender": ["性別", "gender", "sex", "性別男女"],
    "birthday": ["生日", "出生日期", "生日日期", "出生年月日", "birthday", "birthdate", "dateofbirth", "dob", "誕生日", "生年月日", "วันเกิด"],
    "city": ["城市", "縣市", "居住縣市", "居住城市", "city", "都道府県", "จังหวัด"],
    "locale": ["語言", "偏好語言", "locale", "language", "言語"],
    "tags": ["標籤", "會員標籤", "tags", "tag", "タグ"],
    "consent_email": ["電子報", "訂閱電子報", "接收電子報", "電子報訂閱", "email訂閱", "訂閱email", "emailconsent", "newsletter",
                      "emailoptin", "acceptsemail", "acceptsemailmarketing", "emailsubscription", "同意接收電子報"],
    "consent_sms": ["簡訊", "訂閱簡訊", "接收簡訊", "簡訊訂閱", "smsconsent", "smsoptin", "acceptssms", "acceptssmsmarketing",
                    "smssubscription", "同意接收簡訊"],
    "consent_line": ["line好友", "line好友狀態", "好友狀態", "lineconsent", "linefollow", "linefriend", "linefollower"],
}
_MEMBER_CONTAINS = [("電子報", "consent_email"), ("newsletter", "consent_email"), ("簡訊", "consent_sms"), ("好友", "consent_line"),
                    ("會員編號", "external_id"), ("customerid", "external_id"), ("memberid", "external_id"),
                    ("手機", "phone"), ("電話", "phone"), ("phone", "phone"), ("mobile", "phone"),
                    ("mail", "email"), ("郵件", "email"), ("信箱", "email"), ("lineuid", "line_uid"), ("lineid", "line_uid"),
                    ("生日", "birthday"), ("出生", "birthday"), ("birth", "birthday"), ("姓名", "name"), ("性別", "gender"),
                    ("縣市", "city"), ("城市", "city"), ("標籤", "tags")]
# Common columns without a built-in field: kept as custom attributes under a readable key.
_MEMBER_ATTRIBUTES = {"會員等級": "tier", "等級": "tier", "會員級別": "tier", "vip等級": "tier", "點數": "points", "紅利點數": "points",
                      "紅利": "points", "積分": "points", "會員點數": "points", "註冊日期": "signup_date", "加入日期": "signup_date",
                      "入會日期": "signup_date", "註冊時間": "signup_date", "地址": "address", "通訊地址": "address",
                      "郵遞區號": "zip_code", "備註": "note", "職業": "occupation", "來源": "source", "會員來源": "source"}
_IGNORED = {"序號", "項次", "no", "#", "編號", "流水號", "rownumber", "row"}

_ORDER_SYNONYMS = {
    "order_id": ["訂單編號", "訂單號碼", "訂單號", "訂單id", "訂單代號", "orderid", "orderno", "ordernumber", "order", "注文番号", "注文id"],
    "external_id": _MEMBER_SYNONYMS["external_id"],
    "email": _MEMBER_SYNONYMS["email"],
    "phone": _MEMBER_SYNONYMS["phone"],
    "placed_at": ["下單時間", "下單日期", "訂單日期", "訂單時間", "訂購日期", "訂購時間", "購買日期", "購買時間", "交易時間", "交易日期",
                  "成立時間", "訂單成立時間", "orderdate", "orderedat", "placedat", "createdat", "date", "purchasedate", "日期", "時間",
                  "注文日", "注文日時"],
    "total": ["訂單金額", "訂單總額", "總金額", "總計", "金額", "實付金額", "付款金額", "合計", "total", "amount", "ordertotal",
              "grandtotal", "totalprice", "合計金額"],
    "status": ["狀態", "訂單狀態", "status", "orderstatus", "ステータス"],
    "currency": ["幣別", "幣種", "貨幣", "currency"],
    "channel": ["通路", "銷售通路", "渠道", "訂單來源", "channel", "saleschannel", "source"],
    "sku": ["商品編號", "商品代碼", "商品id", "貨號", "料號", "sku", "productid", "itemid", "productcode", "品番"],
    "product_name": ["商品", "商品名稱", "品名", "產品", "產品名稱", "product", "productname", "item", "itemname", "商品名"],
    "category": ["分類", "類別", "商品分類", "商品類別", "category", "productcategory", "カテゴリ"],
    "quantity": ["數量", "購買數量", "件數", "quantity", "qty", "數", "個数"],
    "unit_price": ["單價", "售價", "價格", "商品單價", "price", "unitprice", "itemprice", "単価", "価格"],
}
_ORDER_CONTAINS = [("訂單編號", "order_id"), ("訂單號", "order_id"), ("orderid", "order_id"), ("ordernumber", "order_id"),
                   ("會員編號", "external_id"), ("customerid", "external_id"), ("手機", "phone"), ("電話", "phone"),
                   ("phone", "phone"), ("mail", "email"), ("商品編號", "sku"), ("sku", "sku"), ("單價", "unit_price"),
                   ("數量", "quantity"), ("qty", "quantity"), ("金額", "total"), ("total", "total"), ("時間", "placed_at"),
                   ("日期", "placed_at"), ("date", "placed_at"), ("狀態", "status"), ("status", "status"),
                   ("通路", "channel"), ("分類", "category"), ("商品", "product_name"), ("品名", "product_name")]


def _synonym_table(synonyms: dict[str, list[str]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for field_name, words in synonyms.items():
        for word in words:
            table.setdefault(_key(word), field_name)
    return table


_MEMBER_EXACT = _synonym_table(_MEMBER_SYNONYMS)
_ORDER_EXACT = _synonym_table(_ORDER_SYNONYMS)


def _attribute_key(header: str) -> str | None:
    """A custom attribute key for an English-ish header ("Member Tier" -> member_tier), else None."""
    ascii_text = unicodedata.normalize("NFKC", header).encode("ascii", "ignore").decode().strip().lower()
    if not ascii_text or len(ascii_text) < len(header.strip()) * 0.8:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", ascii_text).strip("_")[:64]
    if not key or key[0].isdigit() or key in attrs.PROFILE_FIELDS:
        return None
    return key


def guess_mapping(headers: list[str], kind: str) -> dict[str, str]:
    """What each column probably is, from its header in zh-TW, English or Japanese. Each field is used
    once (the first matching column wins); the rest become custom attributes or are ignored."""
    fields = _fields(kind)
    exact = _MEMBER_EXACT if kind == "members" else _ORDER_EXACT
    contains = _MEMBER_CONTAINS if kind == "members" else _ORDER_CONTAINS
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        key = _key(header)
        guess = exact.get(key)
        if guess is None and key not in _IGNORED:
            guess = next((f for word, f in contains if word in key), None)
        if guess in used or guess not in fields:
            guess = None
        if guess is None:
            if kind == "members" and key in _MEMBER_ATTRIBUTES and f"{ATTRIBUTE_PREFIX}{_MEMBER_ATTRIBUTES[key]}" not in used:
                guess = ATTRIBUTE_PREFIX + _MEMBER_ATTRIBUTES[key]
            elif kind == "members" and key not in _IGNORED and (attr := _attribute_key(header)) and f"{ATTRIBUTE_PREFIX}{attr}" not in used:
                guess = ATTRIBUTE_PREFIX + attr
            else:
                guess = IGNORE
        if guess != IGNORE:
            used.add(guess)
        mapping[header] = guess
    return mapping


def check_mapping(mapping: dict, headers: list[str], kind: str) -> dict[str, str]:
    """The mapping, complete (unmapped columns ignored) and valid, or InvalidInput naming the column."""
    fields = _fields(kind)
    if not isinstance(mapping, dict):
        raise InvalidInput("mapping must be an object of {column header: field}", field="mapping")
    clean: dict[str, str] = {}
    taken: dict[str, str] = {}
    for header, target in mapping.items():
        if header not in headers:
            raise InvalidInput(f"mapping: the file has no column '{header}'", field="mapping")
        target = (str(target or IGNORE)).strip()
        if target.startswith(ATTRIBUTE_PREFIX):
            attribute = target[len(ATTRIBUTE_PREFIX):]
            if not attrs.KEY_RE.match(attribute) or attribute in attrs.PROFILE_FIELDS:
                raise InvalidInput(f"mapping: column '{header}': '{attribute}' is not a valid attribute key "
                                   "(letters, digits and _, not a built-in field)", field="mapping")
        elif target != IGNORE and target not in fields:
            raise InvalidInput(f"mapping: column '{header}': unknown field '{target}'; use one of {', '.join(fields)}, "
                               "attribute:<key> or ignore", field="mapping")
        if target != IGNORE:
            if target in taken:
                raise InvalidInput(f"mapping: columns '{taken[target]}' and '{header}' are both mapped to {target}", field="mapping")
            taken[target] = header
        clean[header] = target
    for header in headers:
        clean.setdefault(header, IGNORE)
    if kind == "members" and not any(f in taken for f in MEMBER_IDENTITY_FIELDS):
        raise InvalidInput("mapping: map at least one column to external_id, email, phone or line_uid, so members can be "
                           "recognised", field="mapping")
    if kind == "orders":
        for needed in ("order_id", "placed_at"):
            if needed not in taken:
                raise InvalidInput(f"mapping: map a column to {needed}", field="mapping")
        if not any(f in taken for f in ORDER_IDENTITY_FIELDS):
            raise InvalidInput("mapping: map a column to external_id, email or phone, to find each order's customer", field="mapping")
        if "total" not in taken and "unit_price" not in taken:
            raise InvalidInput("mapping: map a column to total or unit_price", field="mapping")
    return {h: clean[h] for h in headers}


# --- reading values -----------------------------------------------------------------------------------


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


_EXCEL_EPOCH = date(1899, 12, 30)
_TIME = r"(?:\s*(?:T|\s)\s*(?P<ampm1>上午|下午|am|pm)?\s*(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?\s*(?P<ampm2>am|pm|上午|下午)?\s*(?P<tz>z|[+-]\d{2}:?\d{2})?)?"
_YMD = re.compile(r"^(?P<roc>民國|民国)?\s*(?P<y>\d{2,4})\s*(?:年|/|-|\.)\s*(?P<m>\d{1,2})\s*(?:月|/|-|\.)\s*(?P<d>\d{1,2})\s*日?" + _TIME + r"$", re.I)
_MDY = re.compile(r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})" + _TIME + r"$", re.I)
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")


@dataclass(frozen=True)
class _When:
    day: date
    clock: time | None = None
    offset: timedelta | None = None


def _time_of(match: re.Match) -> tuple[time | None, timedelta | None]:
    if match.group("H") is None:
        return None, None
    hour, minute, second = int(match.group("H")), int(match.group("M")), int(match.group("S") or 0)
    marker = (match.group("ampm1") or match.group("ampm2") or "").lower()
    if marker in ("pm", "下午") and hour < 12:
        hour += 12
    elif marker in ("am", "上午") and hour == 12:
        hour = 0
    clock = time(hour, minute, second)
    zone = (match.group("tz") or "").lower()
    offset = None
    if zone == "z":
        offset = timedelta(0)
    elif zone:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:])) * (1 if zone[0] == "+" else -1)
    return clock, offset


def _parse_when(value: Any) -> _When:
    """Dates as people and Excel write them: 1990-01-05, 1990/1/5, 1990年1月5日, 民國79年1月5日, 079/01/05,
    19900105, Excel serial numbers (33243), 1/25/1990 when the order is unambiguous; with an optional time."""
    if isinstance(value, datetime):
        return _When(value.date(), value.time() if value.time() != time(0) or value.tzinfo else None,
                     value.utcoffset() if value.tzinfo else None)
    if isinstance(value, date):
        return _When(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial(value, value)
    text = halfwidth(str(value)).strip()
    if re.fullmatch(r"\d{5}(\.\d+)?", text):
        return _serial(float(text), value)
    try:
        if match := _COMPACT.match(text):
            return _When(date(int(match["y"]), int(match["m"]), int(match["d"])))
        if match := _YMD.match(text):
            year = int(match["y"])
            if match["roc"] or len(match["y"]) == 3:
                year += 1911
            elif len(match["y"]) != 4:
                raise RowError("ambiguous_date", value=value)
            return _When(date(year, int(match["m"]), int(match["d"])), *_time_of(match))
        if match := _MDY.match(text):
            a, b = int(match["a"]), int(match["b"])
            if a > 12 >= b:
                month, day = b, a
            elif b > 12 >= a:
                month, day = a, b
            else:
                raise RowError("ambiguous_date", value=value)
            return _When(date(int(match["y"]), month, day), *_time_of(match))
        parsed = datetime.fromisoformat(text)
        return _parse_when(parsed)
    except ValueError:
        raise RowError("bad_date", value=value) from None


def _serial(number: float, original: Any) -> _When:
    if not 10_000 <= number <= 80_000:  # 1927 to 2119: anything else is not a date someone meant
        raise RowError("bad_date", value=original)
    moment = datetime.combine(_EXCEL_EPOCH, time(0)) + timedelta(days=float(number))
    moment = moment.replace(microsecond=0)
    return _When(moment.date(), moment.time() if moment.time() != time(0) else None)


def parse_date(value: Any) -> date:
    return _parse_when(value).day


def parse_datetime(value: Any, zone: ZoneInfo) -> datetime:
    """A moment in UTC; times written without a zone are in the workspace's time zone."""
    when = _parse_when(value)
    local = datetime.combine(when.day, when.clock or time(0))
    if when.offset is not None:
        from datetime import timezone as _tz

        return local.replace(tzinfo=_tz(when.offset)).astimezone(UTC)
    return local.replace(tzinfo=zone).astimezone(UTC)


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


# --- checking every row ----------------------------------------------------------------------------------


@dataclass
class MemberRecord:
    identities: list[tuple[str, str]]
    profile: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    consents: dict[str, str] = field(default_factory=dict)


@dataclass
class OrderRecord:
    order_id: str
    first_index: int
    first_row: int
    identities: list[tuple[str, str]] = field(default_factory=list)
    values: dict = field(default_factory=dict)  # order-level fields: placed_at, total, status, currency, channel
    value_rows: dict = field(default_factory=dict)  # field -> (row number, raw value) it came from
    properties: dict = field(default_factory=dict)
    lines: list[commerce.NewOrderLine] = field(default_factory=list)
    line_rows: dict = field(default_factory=dict)  # line key -> row number
    indexes: list[int] = field(default_factory=list)


@dataclass
class Settings:
    region: str = "TW"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Taipei"))
    currency: str = "TWD"
    attribute_types: dict[str, str] = field(default_factory=dict)  # declared attributes of the workspace


@dataclass
class Validation:
    kind: str
    total_rows: int
    records: dict[int, Any] = field(default_factory=dict)  # data row index -> MemberRecord (members) or order id
    errors: dict[int, list[dict]] = field(default_factory=dict)  # data row index -> errors
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    attribute_types: dict[str, str] = field(default_factory=dict)  # types of this file's attribute columns
    sample: list[dict] = field(default_factory=list)

    @property
    def error_rows(self) -> int:
        return len(self.errors)

    @property
    def ok_rows(self) -> int:
        return self.total_rows - len(self.errors)

    def error_list(self, start: int = 0, end: int | None = None) -> list[dict]:
        end = self.total_rows if end is None else end
        return [e for index in sorted(self.errors) if start <= index < end for e in self.errors[index]]


def _json_value(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def validate(table: Table, mapping: dict[str, str], kind: str, settings: Settings, *, sample_size: int = 20) -> Validation:
    """Check every row against the mapping. Pure: the same file, mapping and settings give the same answer."""
    columns = [(table.headers.index(h), h, f) for h, f in mapping.items() if f != IGNORE and h in table.headers]
    result = Validation(kind=kind, total_rows=table.total_rows)
    for position, header, target in columns:
        if target.startswith(ATTRIBUTE_PREFIX):
            key = target[len(ATTRIBUTE_PREFIX):]
            result.attribute_types[key] = settings.attribute_types.get(key) or _infer_column_type([c[position] for _, c in table.rows])

    def fail(index: int, row: int, header: str | None, error: RowError) -> None:
        english, chinese = _reason(error.code, **error.params)
        result.errors.setdefault(index, []).append(
            {"row": row, "column": header, "code": error.code, "reason": english, "reason_zh": chinese})

    (_validate_members if kind == "members" else _validate_orders)(table, columns, settings, result, fail)
    for index, (row, _) in enumerate(table.rows[:sample_size]):
        record = result.records.get(index)
        values: dict = {}
        if isinstance(record, MemberRecord):
            values = {kind_: value for kind_, value in record.identities}
            values.update({k: _json_value(v) for k, v in record.profile.items()})
            values.update({f"{ATTRIBUTE_PREFIX}{k}": v for k, v in record.attributes.items()})
            if record.tags:
                values["tags"] = record.tags
            values.update({f"consent_{c}": s for c, s in record.consents.items()})
        elif isinstance(record, tuple):
            values = record[1]
        result.sample.append({"row": row, "ok": index not in result.errors, "values": values,
                              "errors": result.errors.get(index, [])})
    return result


def _validate_members(table: Table, columns, settings: Settings, result: Validation, fail) -> None:
    identity_headers = ", ".join(h for _, h, f in columns if f in MEMBER_IDENTITY_FIELDS) or None
    seen: dict[tuple[str, str], tuple[int, dict]] = {}  # identity -> (row, exclusive identities of that row)
    for index, (row, cells) in enumerate(table.rows):
        record = MemberRecord(identities=[])
        header_of: dict[str, str] = {}
        bad = False
        for position, header, target in columns:
            value = cells[position]
            if not _text(value):
                continue
            try:
                if target in MEMBER_IDENTITY_FIELDS:
                    record.identities.append((target, _identity(target, value, settings.region)))
                    header_of[target] = header
                elif target == "name":
                    record.profile["name"] = _limited(value, 200)
                elif target == "city":
                    record.profile["city"] = _limited(value, 100)
                elif target == "locale":
                    record.profile["locale"] = _limited(value, 16)
                elif target == "gender":
                    record.profile["gender"] = parse_gender(value)
                elif target == "birthday":
                    born = parse_date(value)
                    if not date(1900, 1, 1) <= born <= date.today():
                        raise RowError("bad_birthday", value=value)
                    record.profile["birthday"] = born
                elif target == "tags":
                    for name in re.split(r"[,，、;；|]", _text(value)):
                        name = name.strip()
                        if len(name) > tags.MAX_TAG_LENGTH:
                            raise RowError("bad_tag", value=name)
                        if name and name not in record.tags:
                            record.tags.append(name)
                elif target.startswith("consent_"):
                    channel = target[len("consent_"):]
                    record.consents[channel] = parse_consent(value, channel)
                elif target.startswith(ATTRIBUTE_PREFIX):
                    key = target[len(ATTRIBUTE_PREFIX):]
                    record.attributes[key] = _coerce_attribute(value, result.attribute_types[key], key)
            except RowError as error:
                fail(index, row, header, error)
                bad = True
        if bad:
            continue
        if not record.identities:
            fail(index, row, identity_headers, RowError("no_identity"))
            continue
        record.identities.sort(key=lambda pair: IDENTITY_KINDS.index(pair[0]))
        exclusive = {k: v for k, v in record.identities if k in EXCLUSIVE}
        duplicate = None
        for pair in record.identities:
            if pair in seen:
                other_row, other_exclusive = seen[pair]
                if all(other_exclusive.get(k, v) == v for k, v in exclusive.items()):
                    duplicate = (pair, other_row)
                    break
        if duplicate:
            (kind, _), other_row = duplicate
            fail(index, row, header_of[kind], RowError("duplicate", kind=kind, other=other_row))
            continue
        for pair in record.identities:
            seen.setdefault(pair, (row, exclusive))
        result.records[index] = record


def _validate_orders(table: Table, columns, settings: Settings, result: Validation, fail) -> None:
    order_header = next(h for _, h, f in columns if f == "order_id")
    header_of = {f: h for _, h, f in columns}
    for index, (row, cells) in enumerate(table.rows):
        values: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        identities: list[tuple[str, str]] = []
        properties: dict = {}
        bad = False
        for position, header, target in columns:
            value = cells[position]
            if not _text(value):
                continue
            raw[target] = _text(value)
            try:
                if target == "order_id":
                    values["order_id"] = _limited(value, 100)
                elif target in ORDER_IDENTITY_FIELDS:
                    identities.append((target, _identity(target, value, settings.region)))
                elif target == "placed_at":
                    values["placed_at"] = parse_datetime(value, settings.zone)
                elif target in ("total", "unit_price"):
                    values[target] = parse_money(value)
                elif target == "quantity":
                    values["quantity"] = parse_quantity(value)
                elif target == "status":
                    values["status"] = parse_status(value)
                elif target == "currency":
                    values["currency"] = parse_currency(value)
                elif target == "channel":
                    values["channel"] = parse_channel(value)
                elif target == "sku":
                    values["sku"] = _limited(value, 100)
                elif target == "product_name":
                    values["product_name"] = _limited(value, 300)
                elif target == "category":
                    values["category"] = _limited(value, 200)
                elif target.startswith(ATTRIBUTE_PREFIX):
                    key = target[len(ATTRIBUTE_PREFIX):]
                    properties[key] = _coerce_attribute(value, result.attribute_types[key], key)
            except RowError as error:
                fail(index, row, header, error)
                bad = True
        if "order_id" not in values and not bad:
            fail(index, row, order_header, RowError("missing_order_id"))
            continue
        if bad:
            continue
        identities.sort(key=lambda pair: IDENTITY_KINDS.index(pair[0]))
        order_id = values["order_id"]
        order = result.orders.get(order_id)
        if order is None:
            order = result.orders[order_id] = OrderRecord(order_id=order_id, first_index=index, first_row=row)
        # order-level values may be repeated on every line or written on the first line only; never different
        conflict = None
        if identities and order.identities and identities != order.identities:
            differing = next((k for k, v in identities if dict(order.identities).get(k, v) != v), identities[0][0])
            conflict = (differing, raw.get(differing), order.value_rows.get("identities", (order.first_row, ""))[1],
                        order.value_rows.get("identities", (order.first_row,))[0])
        for key in ("placed_at", "total", "status", "currency", "channel"):
            if conflict is None and key in values and key in order.values and values[key] != order.values[key]:
                conflict = (key, raw.get(key), order.value_rows[key][1], order.value_rows[key][0])
        if conflict:
            key, value, earlier, other_row = conflict
            fail(index, row, header_of.get(key), RowError("order_conflict", value=value, earlier=earlier, other=other_row))
            continue
        line_key = (values.get("sku"), values.get("product_name"), values.get("quantity"), values.get("unit_price"))
        has_line = bool(values.get("sku") or values.get("product_name"))
        if has_line and line_key in order.line_rows or (not has_line and order.indexes):
            other = order.line_rows.get(line_key, order.first_row)
            fail(index, row, order_header if not has_line else header_of.get("sku") or header_of.get("product_name"),
                 RowError("duplicate_line", other=other))
            continue
        if identities and not order.identities:
            order.identities = identities
            order.value_rows["identities"] = (row, ", ".join(v for _, v in identities))
        for key in ("placed_at", "total", "status", "currency", "channel"):
            if key in values and key not in order.values:
                order.values[key] = values[key]
                order.value_rows[key] = (row, raw.get(key))
        order.properties.update({k: v for k, v in properties.items() if k not in order.properties})
        if has_line:
            order.lines.append(commerce.NewOrderLine(sku=values.get("sku"), name=values.get("product_name"),
                                                     category=values.get("category"), quantity=values.get("quantity", 1),
                                                     unit_price=values.get("unit_price", 0.0)))
            order.line_rows[line_key] = row
        order.indexes.append(index)
        result.records[index] = (order_id, {k: _json_value(v) for k, v in {**dict(identities), **values}.items()})
    # an order is complete only with a customer, a date and an amount; otherwise all its rows are skipped
    for order in result.orders.values():
        problem = None
        if not order.identities:
            problem = (header_of.get("external_id") or header_of.get("email") or header_of.get("phone"), "missing_customer")
        elif "placed_at" not in order.values:
            problem = (header_of.get("placed_at"), "missing_date")
        elif "total" not in order.values and not any(line.unit_price for line in order.lines):
            problem = (header_of.get("total") or header_of.get("unit_price"), "missing_total")
        if problem:
            column, code = problem
            for index in order.indexes:
                fail(index, table.rows[index][0], column, RowError(code, order=order.order_id))
                result.records.pop(index, None)
            order.indexes = []


# --- the service ------------------------------------------------------------------------------------------


def _settings(db: Session, workspace_id: int) -> Settings:
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound(f"no workspace with id {workspace_id}")
    try:
        zone = ZoneInfo(workspace.timezone or "Asia/Taipei")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Asia/Taipei")
    types = {key: d.type for key, d in attrs.definitions(db, workspace_id=workspace_id).items()}
    return Settings(region=workspace.default_region or "TW", zone=zone, currency=workspace.currency or "TWD", attribute_types=types)


def _read(job: ImportJob) -> Table:
    return read_table(job.content, job.filename, file_format=job.file_format, encoding=job.encoding,
                      delimiter=job.delimiter, header_row=job.header_row)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown import kind '{kind}'; use members or orders", field="kind")
    return kind


def create_import(db: Session, *, workspace_id: int, kind: str, filename: str, content: bytes, actor: Actor) -> ImportJob:
    """Store an uploaded file as an import, with what was detected about it and a guessed mapping."""
    _check_kind(kind)
    filename = Path(filename or "upload").name[:300] or "upload"
    table = read_table(content, filename)
    if table.total_rows == 0:
        raise InvalidInput("the file has a header but no data rows", field="file")
    job = ImportJob(
        workspace_id=workspace_id, kind=kind, filename=filename, content=content, encoding=table.encoding,
        file_format=table.file_format, delimiter=table.delimiter, header_row=table.header_row, headers=table.headers,
        mapping=guess_mapping(table.headers, kind), status="uploaded", total_rows=table.total_rows, errors=[],
        created_by=actor.id if actor.kind == "user" else None,
    )
    db.add(job)
    db.flush()
    audit.record(db, workspace_id=workspace_id, actor=actor, action="import.create", target_kind="import", target_id=job.id,
                 detail={"kind": kind, "filename": filename, "rows": table.total_rows})
    return job


def get_import(db: Session, *, workspace_id: int, import_id: int) -> ImportJob:
    job = db.get(ImportJob, import_id)
    if job is None or job.workspace_id != workspace_id:
        raise NotFound(f"no import with id {import_id}")
    return job


def list_imports(db: Session, *, workspace_id: int, limit: int = 50) -> list[ImportJob]:
    return list(db.scalars(select(ImportJob).where(ImportJob.workspace_id == workspace_id)
                           .order_by(ImportJob.id.desc()).limit(limit)))


def as_dict(job: ImportJob, *, errors: int | None = 1000) -> dict:
    """The import as the API and the CLI show it (never the file itself)."""
    stored = job.errors or []
    return {
        "id": job.id, "kind": job.kind, "filename": job.filename, "status": job.status,
        "file_format": job.file_format, "encoding": job.encoding, "delimiter": job.delimiter, "header_row": job.header_row,
        "headers": job.headers or [], "mapping": job.mapping or {}, "fields": fields_for(job.kind),
        "total_rows": job.total_rows, "processed_rows": job.processed_rows, "ok_rows": job.ok_rows, "error_rows": job.error_rows,
        "progress": round(job.processed_rows / job.total_rows, 4) if job.total_rows else 0.0,
        "errors": stored if errors is None else stored[:errors], "errors_truncated": errors is not None and len(stored) > errors,
        "message": job.message, "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }


def preview(db: Session, *, workspace_id: int, import_id: int, mapping: dict | None = None, limit: int = 20) -> dict:
    """Check every row with the mapping (an edited one is saved on the import) and write no contacts."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    if not 0 <= limit <= 200:
        raise InvalidInput("limit must be between 0 and 200", field="limit")
    table = _read(job)
    clean = check_mapping(job.mapping if mapping is None else mapping, table.headers, job.kind)
    if clean != job.mapping:
        _check_mapping_may_change(job)
        job.mapping = clean
    result = validate(table, clean, job.kind, _settings(db, workspace_id), sample_size=limit)
    return _report(result, clean)


def save_mapping(db: Session, *, workspace_id: int, import_id: int, mapping: dict) -> ImportJob:
    """Check a mapping against the file's headers and keep it, without reading the rows (the preview does)."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    clean = check_mapping(mapping, job.headers or [], job.kind)
    if clean != job.mapping:
        _check_mapping_may_change(job)
        job.mapping = clean
    return job


def _check_mapping_may_change(job: ImportJob) -> None:
    if job.status not in ("uploaded", "failed"):
        raise Conflict(f"import {job.id} is {job.status}; its mapping can no longer change", field="mapping")
    if job.processed_rows:
        raise Conflict(f"import {job.id} has imported {job.processed_rows} rows with its mapping already; resume it as it "
                       "is, or upload the file again", field="mapping")


def _report(result: Validation, mapping: dict, *, max_errors: int = 1000) -> dict:
    errors = result.error_list()
    return {"total_rows": result.total_rows, "ok_rows": result.ok_rows, "error_rows": result.error_rows,
            "errors": errors[:max_errors], "errors_truncated": len(errors) > max_errors, "sample": result.sample,
            "mapping": mapping}


def start(db: Session, *, workspace_id: int, import_id: int, mapping: dict | None = None, actor: Actor) -> ImportJob:
    """Queue the import; the job runs once this transaction commits."""
    job = get_import(db, workspace_id=workspace_id, import_id=import_id)
    if job.status in ("queued", "running"):
        raise Conflict(f"import {import_id} is {job.status} already")
    if job.status == "done":
        raise Conflict(f"import {import_id} is done; upload the file again to import it again")
    if mapping is not None or job.status == "uploaded":
        clean = check_mapping(job.mapping if mapping is None else mapping, job.headers or _read(job).headers, job.kind)
        if clean != job.mapping:
            _check_mapping_may_change(job)
            job.mapping = clean
    job.status = "queued"
    job.heartbeat_at = utcnow()
    job.message = None
    audit.record(db, workspace_id=workspace_id, actor=actor, action="import.start", target_kind="import", target_id=job.id,
                 detail={"kind": job.kind, "filename": job.filename, "rows": job.total_rows, "resume_at": job.processed_rows})
    _after_commit(db, lambda: _enqueue(job.id))
    return job


def _enqueue(import_id: int) -> None:
    from tutti.audience.jobs import run_import

    run_import(import_id)


def _after_commit(db: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session commits: a worker must find the row it is told about."""
    event.listen(db, "after_commit", lambda _session: action(), once=True)


# --- the job ---------------------------------------------------------------------------------------------


class _Superseded(Exception):
    """Another worker has moved the checkpoint: this one stops without writing."""


def stalled_imports(db: Session, *, now: datetime | None = None) -> list[int]:
    """Imports queued or running whose worker has not been heard of for a while (it died, or the message was lost)."""
    cutoff = (now or utcnow()) - STALE_AFTER
    return list(db.scalars(select(ImportJob.id).where(ImportJob.status.in_(("queued", "running")),
                                                      (ImportJob.heartbeat_at.is_(None)) | (ImportJob.heartbeat_at < cutoff))
                           .order_by(ImportJob.id)))


def run(
    import_id: int,
    *,
    database: Database | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> dict | None:
    """The job body: resume the import at its checkpoint and write the rest chunk by chunk."""
    database = database or get_database()
    with database.session() as db:
        job = db.scalar(select(ImportJob).where(ImportJob.id == import_id).with_for_update())
        if job is None or job.status in ("uploaded", "done"):
            return None
        now = utcnow()
        if job.status == "running" and job.heartbeat_at and now - job.heartbeat_at < STALE_AFTER:
            return None  # a live worker has it
        job.status, job.heartbeat_at, job.message = "running", now, None
        job.started_at = job.started_at or now
        workspace_id, kind, mapping, start_at = job.workspace_id, job.kind, dict(job.mapping), job.processed_rows
        settings = _settings(db, workspace_id)
        table = _read(job)
    try:
        result = validate(table, mapping, kind, settings, sample_size=0)
        position = start_at
        if progress:
            progress(position, result.total_rows)
        while position < result.total_rows:
            end = min(position + chunk_size, result.total_rows)
            _commit_chunk(database, import_id, workspace_id, result, position, end, settings)
            position = end
            if progress:
                progress(position, result.total_rows)
        with database.session() as db:
            job = db.get(ImportJob, import_id)
            if job.status != "running" or job.processed_rows != result.total_rows:
                return None
            job.status, job.finished_at, job.heartbeat_at = "done", utcnow(), utcnow()
            job.message = f"{job.ok_rows} rows imported, {job.error_rows} skipped"
            audit.record(db, workspace_id=workspace_id, actor=Actor.system("import"), action="import.finish",
                         target_kind="import", target_id=import_id, detail={"ok_rows": job.ok_rows, "error_rows": job.error_rows})
            return as_dict(job, errors=None)
    except _Superseded:
        return None
    except Exception as error:
        with database.session() as db:
            job = db.get(ImportJob, import_id)
            if job is not None and job.status == "running":
                job.status = "failed"
                at = table.rows[job.processed_rows][0] if job.processed_rows < table.total_rows else table.header_row
                job.message = f"stopped at row {at}: {error.__class__.__name__}: {error}"[:2000]
        raise


def _commit_chunk(database: Database, import_id: int, workspace_id: int, result: Validation, start: int, end: int,
                  settings: Settings) -> None:
    """One chunk's writes and its checkpoint, in one transaction."""
    with database.session() as db:
        job = db.scalar(select(ImportJob).where(ImportJob.id == import_id).with_for_update())
        if job is None or job.status != "running" or job.processed_rows != start:
            raise _Superseded()
        _write_chunk(db, workspace_id, result, start, end, settings)
        new_errors = result.error_list(start, end)
        bad = sum(1 for index in result.errors if start <= index < end)
        stored = list(job.errors or [])
        stored.extend(new_errors[: max(0, MAX_STORED_ERRORS - len(stored))])
        changed = db.execute(
            update(ImportJob).where(ImportJob.id == import_id, ImportJob.processed_rows == start)
            .values(processed_rows=end, ok_rows=ImportJob.ok_rows + (end - start - bad), error_rows=ImportJob.error_rows + bad,
                    errors=stored, heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            raise _Superseded()


def _write_chunk(db: Session, workspace_id: int, result: Validation, start: int, end: int, settings: Settings) -> None:
    if result.kind == "members":
        _write_members(db, workspace_id, [result.records[i] for i in range(start, end) if i in result.records], result, settings)
    else:
        orders = [o for o in result.orders.values() if o.indexes and start <= o.indexes[0] < end]
        _write_orders(db, workspace_id, orders, settings)


def _create_contacts(db: Session, workspace_id: int, n: int, now: datetime) -> list[int]:
    """n new, empty contacts in one statement; their ids in order."""
    rows = [{"workspace_id": workspace_id, "attributes": {}, "created_at": now, "updated_at": now} for _ in range(n)]
    if db.get_bind().dialect.name == "sqlite":
        # SQLite cannot return ids of a multi-row insert in order, so SQLAlchemy would insert row by row. The write
        # transaction holds SQLite's only write lock (BEGIN IMMEDIATE), so the next ids are ours to take.
        first = (db.scalar(select(func.max(Contact.id))) or 0) + 1
        for offset, row in enumerate(rows):
            row["id"] = first + offset
        db.execute(insert(Contact), rows)
        return [row["id"] for row in rows]
    return list(db.execute(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), rows).scalars())


def _holders(db: Session, workspace_id: int, kind: str, values: list[str]):
    """(value, contact id) of the identities of one kind that exist, probing the unique index once per value.
    On PostgreSQL an IN list lets the planner scan every identity of the kind when its statistics are stale
    (as they are while an import fills the table); a LATERAL probe with LIMIT keeps one index lookup each."""
    if db.get_bind().dialect.name == "postgresql":
        return db.connection().exec_driver_sql(
            "SELECT v.value, i.contact_id FROM unnest(%s::text[]) AS v(value) CROSS JOIN LATERAL "
            "(SELECT contact_id FROM identity WHERE workspace_id = %s AND kind = %s AND value = v.value LIMIT 1) AS i",
            (list(values), workspace_id, kind)).all()
    return db.execute(select(Identity.value, Identity.contact_id).where(
        Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value.in_(values))).all()


def _resolve_contacts(db: Session, workspace_id: int, groups: list[list[tuple[str, str]]]) -> list[int]:
    """The contact of each group of normalised identities, creating the missing ones. Set-based for the
    common cases (all known on one contact, or all new); the rest go through identity resolution."""
    unique = list(dict.fromkeys(tuple(g) for g in groups))
    pairs = list({pair for group in unique for pair in group})
    owner: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in pairs:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        for offset in range(0, len(values), 900):
            owner.update({(kind, v): c for v, c in _holders(db, workspace_id, kind, values[offset: offset + 900])})
    uses: dict[tuple[str, str], int] = {}
    for group in unique:
        for pair in group:
            uses[pair] = uses.get(pair, 0) + 1
    found: dict[tuple, int] = {}
    new: list[tuple] = []
    slow: list[tuple] = []
    for group in unique:
        holders = {owner[p] for p in group if p in owner}
        missing = [p for p in group if p not in owner]
        if len(holders) == 1 and not missing:
            found[group] = holders.pop()
        elif not holders and all(uses[p] == 1 for p in group):
            new.append(group)
        else:
            slow.append(group)
    if new:
        now = utcnow()
        rows = []
        for group, contact_id in zip(new, _create_contacts(db, workspace_id, len(new), now), strict=True):
            found[group] = contact_id
            rows.extend({"workspace_id": workspace_id, "contact_id": contact_id, "kind": k, "value": v, "source": "import",
                         "created_at": now} for k, v in group)
        insert_ignore(db, Identity, rows, conflict=("workspace_id", "kind", "value"))
    merged_into: dict[int, int] = {}
    for group in slow:
        resolution = contacts.resolve(db, workspace_id=workspace_id, identities=list(group), source="import",
                                      actor=Actor.system("import"))
        found[group] = resolution.contact_id
        for loser in resolution.merged:
            merged_into[loser] = resolution.contact_id

    def live(contact_id: int) -> int:
        while contact_id in merged_into:
            contact_id = merged_into[contact_id]
        return contact_id

    return [live(found[tuple(g)]) for g in groups]


def _write_members(db: Session, workspace_id: int, records: list[MemberRecord], result: Validation, settings: Settings) -> None:
    if not records:
        return
    for key, type_ in result.attribute_types.items():
        if key not in settings.attribute_types:
            attrs.declare(db, workspace_id=workspace_id, key=key, type_=type_)
    ids = _resolve_contacts(db, workspace_id, [r.identities for r in records])
    people = {c.id: c for c in db.scalars(select(Contact).where(Contact.id.in_(set(ids))))}
    now = utcnow()
    by_tag: dict[str, list[int]] = {}
    consents: dict[tuple[int, str], str] = {}
    for record, contact_id in zip(records, ids, strict=True):
        contact = people[contact_id]
        for key, value in record.profile.items():
            setattr(contact, key, value)
        if record.attributes:
            contact.attributes = {**(contact.attributes or {}), **record.attributes}
        if record.profile or record.attributes:
            contact.updated_at = now
        for name in record.tags:
            by_tag.setdefault(name, []).append(contact_id)
        for channel, status in record.consents.items():
            consents[(contact_id, channel)] = status
    db.flush()
    for name, contact_ids in by_tag.items():
        tags.apply(db, workspace_id=workspace_id, contact_ids=contact_ids, tag=name, source="import", at=now)
    _write_consents(db, workspace_id, consents, now)


def _write_consents(db: Session, workspace_id: int, wanted: dict[tuple[int, str], str], now: datetime) -> None:
    """Consent in bulk, with the same history as consent.set_consent. An import never re-subscribes someone
    who unsubscribed, blocked or bounced: an old spreadsheet must not undo a person's later choice."""
    if not wanted:
        return
    held = {(c, ch): s for c, ch, s in db.execute(
        select(Consent.contact_id, Consent.channel, Consent.status).where(Consent.contact_id.in_({c for c, _ in wanted})))}
    states, changes = [], []
    for (contact_id, channel), status in wanted.items():
        current = held.get((contact_id, channel))
        if current == status or (current is not None and status == "subscribed"):
            continue
        states.append({"contact_id": contact_id, "channel": channel, "workspace_id": workspace_id, "status": status,
                       "source": "import", "updated_at": now})
        changes.append({"workspace_id": workspace_id, "contact_id": contact_id, "channel": channel, "status": status,
                        "source": "import", "at": now})
    upsert_rows(db, Consent, states, conflict=("contact_id", "channel"), update=("status", "source", "updated_at"))
    if changes:
        db.execute(ConsentChange.__table__.insert(), changes)


def _write_orders(db: Session, workspace_id: int, orders: list[OrderRecord], settings: Settings) -> None:
    if not orders:
        return
    ids = _resolve_contacts(db, workspace_id, [o.identities for o in orders])
    products = {}
    for order in orders:
        for line in order.lines:
            if line.sku and line.name:
                products[line.sku] = {"sku": line.sku, "name": line.name, "category": line.category,
                                      "price": line.unit_price or None}
    if products:
        commerce.upsert_products(db, workspace_id=workspace_id, products=list(products.values()))
    new_orders = []
    for order, contact_id in zip(orders, ids, strict=True):
        values = order.values
        total = values.get("total")
        if total is None:
            total = round(sum(line.quantity * line.unit_price for line in order.lines), 2)
        new_orders.append(commerce.NewOrder(
            contact_id=contact_id, external_id=order.order_id, placed_at=values["placed_at"], total=total,
            status=values.get("status", "completed"), currency=values.get("currency", settings.currency),
            channel=values.get("channel"), properties=order.properties, lines=order.lines))
    commerce.record_orders(db, workspace_id=workspace_id, orders=new_orders)


# --- the CLI ---------------------------------------------------------------------------------------------


def run_from_cli(db: Database, *, workspace_id: int, kind: str, path: Path | str, mapping: dict | None = None,
                 dry_run: bool = False) -> dict:
    """`tutti import`: the whole import in this process, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    _check_kind(kind)
    path = Path(path)
    content = path.read_bytes()
    if dry_run:
        table = read_table(content, path.name)
        with db.read_session() as session:
            settings = _settings(session, workspace_id)
        clean = check_mapping(mapping if mapping is not None else guess_mapping(table.headers, kind), table.headers, kind)
        return {"dry_run": True, "file": path.name, **_report(validate(table, clean, kind, settings, sample_size=5), clean)}
    with db.session() as session:
        job = create_import(session, workspace_id=workspace_id, kind=kind, filename=path.name, content=content, actor=Actor.cli())
        job.mapping = check_mapping(mapping if mapping is not None else job.mapping, job.headers, kind)
        job.status, job.heartbeat_at = "queued", utcnow()
        audit.record(session, workspace_id=workspace_id, actor=Actor.cli(), action="import.start", target_kind="import",
                     target_id=job.id, detail={"kind": kind, "filename": path.name, "rows": job.total_rows})
        import_id = job.id
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"{path.name}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        run(import_id, database=db, progress=advance)
    with db.read_session() as session:
        job = session.get(ImportJob, import_id)
        report = as_dict(job, errors=None)
    for key in ("fields", "headers", "progress", "errors_truncated"):
        report.pop(key, None)
    return {"import_id": import_id, **report}
