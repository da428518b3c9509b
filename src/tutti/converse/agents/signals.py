"""What a customer's message says, read with rules that work offline: a request for a person, how
negative it is, which tool it asks for, yes or no, an order number, an e-mail address.

The rules are deliberately plain (phrase lists, regular expressions over OpenCC/width-normalised text):
each decision they cause is recorded with the phrase that caused it, so a support lead can see why."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


def fold(text: str) -> str:
    """Width- and case-folded text (full-width ｏｒｄｅｒ → order) with Simplified → Traditional when OpenCC is there."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    try:
        from tutti.ai.text import normalise

        return normalise(text)
    except Exception:  # noqa: BLE001 - the ai module is optional here; NFKC is enough for the rules
        return text


# --- asking for a person -------------------------------------------------------------------------------

_PERSON = [
    r"(找|要|轉|接|換|給我|請|跟|和|與|需要|想).{0,4}(真人|客服人員|客服專員|專人|人工|真的人|活人)", r"真人客服", r"人工客服",
    r"^\W*(真人|客服|人工客服|專人|客服人員)\W*$", r"找(個)?人(來)?.{0,3}(處理|幫|回|說|談|聊)", r"^\W*找人\W*$", r"(找|要|給我)(一個)?客服",
    r"轉(接)?(給)?(真人|客服|專人|人工)", r"(跟|和|與)(真的)?人(說話|講話|談|聊)",
    r"\bhuman\b", r"\breal person\b", r"\b(a|an|to|your|live|human) (agent|representative|rep|operator)\b",
    r"\bagent please\b", r"^\s*agent\s*[.!?]*\s*$", r"\brepresentative\b", r"\b(talk|speak|chat) (to|with) (a |an |some)?(person|someone|somebody|human|people|staff|manager)\b",
    r"\bcustomer (service|support) (agent|person|staff|team)\b", r"\b(a|the|your|to) (manager|supervisor)\b(?!')", r"\b(an|the|to) operator\b",
]
_PERSON_RE = re.compile("|".join(_PERSON))


# "are you a real person?" asks about the bot, not for a person: it is taken out before the search, so
# only a request around it ("are you human? let me talk to someone") hands off
_ABOUT_THE_BOT_RE = re.compile(
    r"\b((are|r) (you|u)( really)?|am i (talking|speaking|chatting) (to|with)) (a |an )?(real |live |actual )?"
    r"(person|human|bot|robot|ai|machine|computer)( or (a |an )?(real )?(person|human|bot|robot|ai|machine|computer))?\b"
    r"|\b(you are|you're|you re|u r)( not)? (a |an )?(real |live |actual )?(person|human|bot|robot|ai|machine|computer)\b"
    r"|\b(person|human)( being)?\b.{0,30}\bor\b.{0,30}\b(bot|robot|ai|machine|computer)\b"
    r"|\b(bot|robot|ai|machine|computer)\b.{0,30}\bor\b.{0,30}\b(real )?(person|human)( being)?\b"
    r"|你是(不是)?(真人|機器人|ai|人類|真的人)|是(真人|機器人)(嗎|還是)"
)


def asks_for_person(text: str) -> str | None:
    """The phrase with which the customer asks for a person, or None."""
    match = _PERSON_RE.search(_ABOUT_THE_BOT_RE.sub(" ", fold(text)))
    return match.group(0).strip() if match else None


# --- negative sentiment ------------------------------------------------------------------------------

# word -> intensity 1..3; a small lexicon on purpose: the aim is catching anger, not scoring moods. Words
# that are also plain nouns or names ("sue", "garbage") count only in the phrases that make them angry.
_NEGATIVE_ZH = {
    "垃圾": 3, "爛透": 3, "氣死": 3, "憤怒": 3, "詐騙": 3, "騙子": 3, "騙人": 3, "噁心": 3, "投訴": 3, "客訴": 3, "消保官": 3,
    "消基會": 3, "告你": 3, "提告": 3, "報警": 3, "最爛": 3, "去死": 3, "很爛": 3, "超爛": 3, "爛": 2, "生氣": 2, "火大": 2,
    "不爽": 2, "失望": 2, "很差": 2, "太差": 2, "糟糕": 2, "糟透": 3, "受不了": 2, "離譜": 2, "誇張": 1, "扯": 1, "傻眼": 2,
    "無言": 1, "差勁": 2, "可惡": 2, "惡劣": 3, "不負責": 2, "騙": 2, "退錢": 2, "再也不買": 3, "黑心": 3, "白癡": 3, "廢物": 3,
}
_NEGATIVE_EN = {
    "terrible": 2, "awful": 2, "worst": 3, "angry": 2, "furious": 3, "scam": 3, "fraud": 3, "ridiculous": 2, "disgusting": 3,
    "unacceptable": 3, "hate": 2, "useless": 2, "complaint": 2, "lawyer": 3, "lawsuit": 3, "sue you": 3, "sue your": 3, "sue u": 3,
    "pathetic": 3, "horrible": 2, "rubbish": 2, "is garbage": 3, "are garbage": 3, "such garbage": 3, "total garbage": 3, "incompetent": 3, "never again": 3, "liar": 3, "lied": 2, "cheated": 3,
    "annoyed": 1, "disappointed": 2, "upset": 1, "ripped off": 3, "fed up": 2, "waste of money": 3, "wtf": 3,
}
_INTENSIFIERS_ZH = ("非常", "超級", "超", "太", "很", "真的", "爆", "極")
_INTENSIFIERS_EN = ("very", "so", "extremely", "really", "totally", "absolutely", "fucking")
_NEGATIONS_ZH = ("不", "沒", "別")
_NEGATIONS_EN = ("not", "no", "never", "isn't", "wasn't", "don't")


@dataclass
class Sentiment:
    score: float  # 0 = neutral; larger = angrier
    words: list[str]


def negativity(text: str) -> Sentiment:
    """How negative the text is: lexicon intensities, raised by intensifiers, shouting and !!!, cancelled by a negation."""
    raw = text or ""
    folded = fold(raw)
    score, found = 0.0, []
    for word, weight in _NEGATIVE_ZH.items():
        at = folded.find(word)
        if at < 0 or any(w in found and word in w for w in found):
            continue
        before = folded[max(0, at - 2):at]
        if any(before.endswith(n) for n in _NEGATIONS_ZH) and weight < 3:
            continue
        bonus = 1 if any(before.endswith(i) for i in _INTENSIFIERS_ZH) else 0
        score += weight + bonus
        found.append(word)
    words = re.findall(r"[a-z']+", folded)
    joined = " ".join(words)
    for word, weight in _NEGATIVE_EN.items():
        match = re.search(rf"\b{re.escape(word)}\b", joined)
        if not match:
            continue
        before = joined[:match.start()].split()[-2:]
        if any(b in _NEGATIONS_EN for b in before) and weight < 3:
            continue
        score += weight + (1 if any(b in _INTENSIFIERS_EN for b in before) else 0)
        found.append(word)
    if found:
        if re.search(r"[!！]{2,}", raw):
            score += 1
        letters = [c for c in raw if c.isascii() and c.isalpha()]
        if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
            score += 1
    return Sentiment(score=score, words=found)


# --- tool intents ------------------------------------------------------------------------------------

# (intent, strong patterns, weak patterns). Strong: the customer plainly asks about THEIR OWN data or
# account ("我的訂單…", "where is my order", "unsubscribe me") — a tool answers unless it is a question about
# how things work that the knowledge base can answer. Weak: the words suggest a tool ("推薦", "等級",
# "什麼時候到") but as often belong to a policy question — a tool answers only when the knowledge base has
# nothing in scope.
_INTENTS: list[tuple[str, list[str], list[str]]] = [
    ("unsubscribe", [r"取消訂閱", r"退訂", r"不(要|想)再(收到|寄|傳|發|接收)", r"別再(寄|傳|發)", r"取消(電子報|簡訊|通知)",
                     r"\bunsubscribe\b", r"\bopt(-| )?out\b", r"\bstop (sending|emailing|texting|messaging)\b",
                     r"\b(no|don't send) more (emails|messages|newsletters)\b", r"\bremove me from\b"], []),
    ("update_email", [r"(改|更新|變更|修改|換).{0,5}(email|e-mail|電子郵件|信箱|電郵|mail)",
                      r"(email|e-mail|電子郵件|信箱|電郵).{0,3}(改|更新|變更|換)",
                      r"\b(change|update|new|correct|edit) (my )?(e-?mail|email address)\b", r"\bmy new e-?mail\b"], []),
    ("order_status", [r"我的(訂單|包裹|貨|東西).{0,8}(到|寄|出貨|狀態|進度|哪|物流|配送|送達)", r"查(詢)?(一下)?我的訂單",
                      r"\bwhere('s| is) my (order|package|parcel|stuff)\b", r"\btrack(ing)? my (order|package|parcel)\b",
                      r"\bwhen (will|does|is) my (order|package|parcel)\b", r"\bhas my (order|package) (shipped|arrived|been sent)\b",
                      r"\bstatus of my order\b", r"\bmy order\b.{0,30}\b(arrive|ship|deliver|status)"],
                     [r"訂單.{0,8}(到|寄|出貨|狀態|進度|哪|物流|配送|送達)", r"(包裹|貨|東西|商品).{0,6}(到了|到哪|寄出|出貨|什麼時候到|送達|還沒到)",
                      r"什麼時候(會)?(到|寄|出貨|送達)", r"(出貨|寄出|到貨)了(嗎|沒)", r"物流(狀態|進度)", r"查(詢)?(一下)?訂單",
                      r"\border status\b", r"\btrack(ing)? (an |the )?(order|package|parcel)\b", r"\bstatus of (the |an )?order\b",
                      r"\border\b[^.?!]{0,25}\b(status|arrived?|shipped|delivered)\b", r"\bwhere is order\b"]),
    ("order_list", [r"我的訂單(紀錄|記錄|列表|清單|明細)", r"我(之前|以前|最近)買(過)?(了)?(什麼|哪些)", r"\b(list|show) (me )?my (orders|purchases)\b",
                    r"\bmy (orders|order history|purchases|past orders)\b", r"\bwhat (did|have) i (buy|bought|ordered)\b"],
                   [r"訂單(紀錄|記錄|列表|清單|明細)", r"(所有|全部|過去)的?訂單", r"\border history\b", r"\bpast orders\b"]),
    ("my_profile", [r"我的(會員)?(等級|級別|點數|積分|紅利|標籤)", r"我(現在)?是(什麼|哪個|哪一)(等級|級)", r"(我|我還)(有|剩)(多少|幾)(點|積分)",
                    r"\bmy (tier|level|points|membership|loyalty|status level|rewards)\b", r"\bhow many points do i\b"],
                   [r"(會員)?(等級|級別)", r"(剩|還有|查).{0,4}(點數|積分|紅利)", r"(點數|積分|紅利)(有|剩)?(多少|幾)",
                    r"\bhow many points\b", r"\bmembership (tier|level)\b", r"\bpoints balance\b"]),
    ("product_search", [], [r"推薦", r"有(沒有)?(在)?賣", r"有賣(嗎)?", r"想(買|找).{0,10}(商品|產品|東西|禮物)", r"(適合|建議).{0,10}(產品|商品|買)",
                            r"\brecommend\b", r"\bsuggest(ion)?s?\b.{0,20}\b(product|gift|buy)\b", r"\bdo you (sell|have|carry)\b",
                            r"\blooking for (a|an|some)\b", r"\bwhat should i buy\b", r"\bany (good )?(products|gifts)\b"]),
]


def _compile(patterns: list[str]):
    return re.compile("|".join(patterns)) if patterns else None


_INTENT_RES = [(name, _compile(strong), _compile(weak)) for name, strong, weak in _INTENTS]
INTENTS = tuple(name for name, _, _ in _INTENTS)


@dataclass
class Intent:
    name: str
    phrase: str
    confidence: float
    strong: bool = True


def intent_of(text: str) -> Intent | None:
    """The tool this message asks for, by rules: a strong match first (actions before reads), else a weak one."""
    folded = fold(text)
    for name, strong, _ in _INTENT_RES:
        match = strong.search(folded) if strong else None
        if match:
            return Intent(name=name, phrase=match.group(0), confidence=0.9, strong=True)
    for name, _, weak in _INTENT_RES:
        match = weak.search(folded) if weak else None
        if match:
            return Intent(name=name, phrase=match.group(0), confidence=0.6, strong=False)
    return None


# --- replies to a question ---------------------------------------------------------------------------

_YES = re.compile(r"^\s*(是|是的|對|對的|好|好的|好啊|確定|確認|沒錯|可以|ok|okay|yes|yep|yeah|y|sure|confirm|please do|do it|correct)\s*[.!。！]*\s*$")
_NO = re.compile(r"^\s*(否|不|不要|不用|取消|算了|先不要|no|nope|n|cancel|don't|stop|never mind)\s*[.!。！]*\s*$")


def yes_or_no(text: str) -> bool | None:
    folded = fold(text)
    if _YES.match(folded):
        return True
    if _NO.match(folded):
        return False
    return None


_DIDNT_HELP = re.compile(r"沒(有)?(用|幫助|回答)|答非所問|不是(我要|這個)|看不懂|還是不懂|\bnot helpful\b|\bdidn'?t help\b|\bthat'?s not what i\b|\bdoesn'?t answer\b|\byou didn'?t answer\b")


def says_it_did_not_help(text: str) -> bool:
    return bool(_DIDNT_HELP.search(fold(text)))


_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_ORDER_REF = re.compile(r"#?\b([A-Za-z]{0,6}[-_]?\d[\w\-]{2,40})\b", re.ASCII)


def email_in(text: str) -> str | None:
    match = _EMAIL.search(unicodedata.normalize("NFKC", text or ""))
    return match.group(0) if match else None


def order_refs(text: str) -> list[str]:
    """Things in the text that could be order numbers (checked later against THIS contact's orders only)."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _EMAIL.sub(" ", text)
    return list(dict.fromkeys(m.group(1) for m in _ORDER_REF.finditer(text)))[:5]


def similar(a: str, b: str) -> float:
    """Overlap of character bigrams (Chinese) and words (English) of two folded questions, 0..1."""
    def grams(text: str) -> set[str]:
        text = re.sub(r"[\W_]+", " ", fold(text)).strip()
        words = set(text.split())
        han = re.sub(r"[^\u3400-\u9fff]", "", text)
        return words | {han[i:i + 2] for i in range(len(han) - 1)}

    left, right = grams(a), grams(b)
    if not left or not right:
        return 0.0
    shared = len(left & right)
    jaccard = shared / len(left | right)
    # a rephrasing that adds words ("所以…是誰付") still covers the shorter question; a very short one
    # ("退貨") covers too much by chance, so only questions of 4+ pieces count that way
    smaller = min(len(left), len(right))
    return max(jaccard, shared / smaller if smaller >= 4 else 0.0)
