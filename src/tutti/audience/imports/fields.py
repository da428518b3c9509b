"""The fields a column of an import can be mapped to, and what to call them in English and zh-TW."""

from __future__ import annotations

from tutti.audience import contacts
from tutti.platform.errors import InvalidInput

KINDS = ("members", "orders")
ATTRIBUTE_PREFIX = "attribute:"
IGNORE = "ignore"

MEMBER_FIELDS = ("external_id", "email", "phone", "line_uid", "name", "gender", "birthday", "city", "locale", "tags",
                 "consent_email", "consent_sms", "consent_line")
ORDER_FIELDS = ("order_id", "external_id", "email", "phone", "placed_at", "total", "status", "currency", "channel",
                "sku", "product_name", "category", "quantity", "unit_price")
MEMBER_IDENTITY_FIELDS = ("external_id", "line_uid", "email", "phone")
ORDER_IDENTITY_FIELDS = ("external_id", "email", "phone")
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


def fields_for(kind: str) -> list[str]:
    """The fields a column can be mapped to. Members (and order properties) also accept 'attribute:<key>'."""
    return [*_fields(kind), IGNORE]


def field_labels(kind: str, locale: str = "zh-TW") -> dict[str, str]:
    """What to call each field in the mapping step, in zh-TW or English."""
    column = 1 if locale.lower().startswith("zh") else 0
    return {f: FIELD_LABELS[f][column] for f in fields_for(kind)}


def _fields(kind: str) -> tuple[str, ...]:
    return MEMBER_FIELDS if _check_kind(kind) == "members" else ORDER_FIELDS


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown import kind '{kind}'; use members or orders", field="kind")
    return kind
