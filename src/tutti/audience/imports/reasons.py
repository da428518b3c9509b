"""Why a row of an import is skipped: RowError, and its reason in English and zh-TW."""

from __future__ import annotations

from tutti.audience.imports.fields import FIELD_LABELS

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
