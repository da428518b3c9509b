"""The customer's language (zh-TW or English, told apart simply) and the agent's own sentences in both."""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_LINK = re.compile(r"(https?://|www\.)\S+|\S+@\S+")


def detect(text: str, default: str = "zh-TW") -> str:
    """zh-TW when the text has Chinese characters, English when it has Latin letters and none, else default."""
    text = text or ""
    if _HAN.search(text):
        return "zh-TW"
    if _LATIN.search(text):
        return "en"
    return default


def in_language(answer: str, language: str) -> str:
    """A bilingual answer (its Chinese lines and its English lines, as the knowledge base writes items in
    both languages) cut to the customer's language; an answer in one language, or lines in neither (a
    link, a price), stay as they are."""
    lines = answer.splitlines()
    han = [bool(_HAN.search(line)) for line in lines]
    latin = [not h and bool(_LATIN.search(_LINK.sub('', line))) for h, line in zip(han, lines)]
    if not any(han) or not any(latin):
        return answer
    drop = latin if language == "zh-TW" else han
    kept = [line for line, dropped in zip(lines, drop) if not dropped]
    return "\n".join(kept).strip() or answer


_TITLE_SPLIT = re.compile(r"(?<=[\u3400-\u9fff\uff09)])\s+(?=[A-Za-z])")


def title_in(title: str, language: str) -> str:
    """A bilingual title ("運費與免運門檻 Shipping fee and free shipping") in the customer's language."""
    parts = _TITLE_SPLIT.split(title or "", maxsplit=1)
    if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
        return title
    return parts[0].strip() if language == "zh-TW" else parts[1].strip()


PHRASES: dict[str, dict[str, str]] = {
    "handoff": {
        "zh-TW": "好的，我請專人來協助您，請稍候，客服人員會在這裡回覆您。",
        "en": "Sure, I'm bringing in a person from our team. Please wait here; they will reply in this chat.",
    },
    "handoff_closed": {
        "zh-TW": "我們的客服人員目前不在線上，上班時間會盡快回覆您。",
        "en": "Our team is away right now; someone will reply here as soon as we are back.",
    },
    "order_status": {
        "zh-TW": "您的訂單 {order} 目前狀態：{status}（下單時間 {placed}，金額 {currency} {total}）。",
        "en": "Your order {order} is {status} (placed {placed}, {currency} {total}).",
    },
    "order_none": {
        "zh-TW": "我在您的帳號下找不到訂單。",
        "en": "I can't find any orders on your account.",
    },
    "order_not_found": {
        "zh-TW": "我在您的帳號下找不到訂單 {order}，請確認訂單編號。",
        "en": "I can't find order {order} on your account. Please check the order number.",
    },
    "order_list": {"zh-TW": "您最近的訂單：\n{lines}", "en": "Your recent orders:\n{lines}"},
    "order_line": {"zh-TW": "・{order}（{placed}）{status}，{currency} {total}", "en": "• {order} ({placed}) {status}, {currency} {total}"},
    "products": {"zh-TW": "為您推薦：\n{lines}", "en": "You might like:\n{lines}"},
    "product_line": {"zh-TW": "・{name}{price}", "en": "• {name}{price}"},
    "products_none": {"zh-TW": "目前找不到符合的商品。", "en": "I couldn't find a matching product."},
    "profile": {"zh-TW": "您的會員資料：{parts}。", "en": "Your membership: {parts}."},
    "profile_none": {"zh-TW": "您的帳號目前沒有會員等級或點數的紀錄。", "en": "I don't see a tier or points on your account yet."},
    "tier": {"zh-TW": "等級 {value}", "en": "tier {value}"},
    "points": {"zh-TW": "點數 {value}", "en": "{value} points"},
    "tags": {"zh-TW": "標籤 {value}", "en": "tags {value}"},
    "confirm_unsubscribe": {
        "zh-TW": "要幫您取消 {channels} 的行銷訊息訂閱嗎？請回覆「是」確認，或「否」取消。",
        "en": "Shall I unsubscribe you from marketing {channels}? Reply \"yes\" to confirm or \"no\" to cancel.",
    },
    "done_unsubscribe": {"zh-TW": "已為您取消 {channels} 的訂閱。", "en": "Done: you are unsubscribed from {channels}."},
    "nothing_to_unsubscribe": {"zh-TW": "您目前沒有訂閱任何電子郵件或簡訊。", "en": "You aren't subscribed to any e-mail or SMS."},
    "confirm_email": {
        "zh-TW": "要把您的電子郵件改成 {email} 嗎？請回覆「是」確認，或「否」取消。",
        "en": "Shall I change your e-mail to {email}? Reply \"yes\" to confirm or \"no\" to cancel.",
    },
    "ask_email": {"zh-TW": "請告訴我新的電子郵件地址。", "en": "Please tell me the new e-mail address."},
    "done_email": {"zh-TW": "已將您的電子郵件更新為 {email}。", "en": "Done: your e-mail is now {email}."},
    "cancelled": {"zh-TW": "好的，已取消，沒有做任何變更。", "en": "OK, cancelled; nothing was changed."},
    "need_contact": {"zh-TW": "這需要您的會員資料，請先登入或提供訂單資訊。", "en": "I need to know who you are for that; please sign in first."},
    "source": {"zh-TW": "（資料來源：{source}）", "en": "(Source: {source})"},
    "csat": {
        "zh-TW": "這次的服務您滿意嗎？請回覆 1 到 5 分（5 分最滿意）。",
        "en": "How did we do? Reply with a score from 1 to 5 (5 is best).",
    },
}

STATUS_WORDS = {
    "zh-TW": {"placed": "已下單", "paid": "已付款、準備出貨", "fulfilled": "已出貨", "completed": "已完成", "cancelled": "已取消",
              "refunded": "已退款", "partially_refunded": "部分退款"},
    "en": {"placed": "placed", "paid": "paid and being prepared", "fulfilled": "shipped", "completed": "completed",
           "cancelled": "cancelled", "refunded": "refunded", "partially_refunded": "partially refunded"},
}


def say(key: str, language: str, **values) -> str:
    phrases = PHRASES[key]
    return phrases.get(language, phrases["en"]).format(**values)
