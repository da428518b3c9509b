"""Which field each column of a file is: a guess from its header (zh-TW, English, Japanese), and the
check of a mapping a person edited."""

from __future__ import annotations

import re
import unicodedata

from tutti.audience import attributes as attrs
from tutti.audience.imports.fields import (
    ATTRIBUTE_PREFIX,
    IGNORE,
    MEMBER_IDENTITY_FIELDS,
    ORDER_IDENTITY_FIELDS,
    _fields,
)
from tutti.platform.errors import InvalidInput


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
