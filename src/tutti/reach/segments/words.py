"""Describe a segment in words (zh-TW or English) → a rule tree, with what was and was not understood.

With an LLM configured (tutti.ai.llm), the model is asked for a rule tree through a JSON schema and the
answer is validated like any rules; an unusable answer falls back to the built-in parser, saying so.
The built-in parser works offline on the common phrasings: the text is normalised (NFKC, OpenCC to
Taiwan Traditional, lower case), cut into clauses (，、; and 但 but …), and each clause is matched
against patterns (time windows, purchases, spending, channels, gender, cities, tags, product categories
and events of this workspace). Whatever is left of a clause that is not filler is returned in
`not_understood` — never silently dropped. Nothing is saved: the user sees the rules first.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutti.audience.models import Contact, Product, Tag
from tutti.platform.errors import InvalidInput
from tutti.reach.segments import schema as s

log = logging.getLogger(__name__)

CN_NUMBERS = {"一": 1, "兩": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
EN_NUMBERS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
NUM = r"(\d[\d,]*(?:\.\d+)?|[一兩二三四五六七八九十]+|once|twice|one|two|three|four|five|six|ten)"
CITIES = {  # normalised spellings → the usual stored name
    "臺北": "台北市", "台北": "台北市", "taipei": "台北市", "新北": "新北市", "new taipei": "新北市", "桃園": "桃園市",
    "taoyuan": "桃園市", "臺中": "台中市", "台中": "台中市", "taichung": "台中市", "臺南": "台南市", "台南": "台南市",
    "tainan": "台南市", "高雄": "高雄市", "kaohsiung": "高雄市", "新竹": "新竹市", "hsinchu": "新竹市", "基隆": "基隆市",
    "keelung": "基隆市", "宜蘭": "宜蘭縣", "yilan": "宜蘭縣", "花蓮": "花蓮縣", "hualien": "花蓮縣",
}
# the usual retail categories in both languages: a workspace's category stored in one language is also
# found by its names in the other ("bought skincare" finds 保養, 「買過彩妝」 finds "Makeup")
CATEGORY_NAMES = [
    ("保養", "保養品", "skincare", "skin care"), ("彩妝", "化妝品", "makeup", "cosmetics"), ("美妝", "beauty"),
    ("香水", "香氛", "perfume", "fragrance"), ("髮品", "洗髮", "haircare", "hair care"), ("保健", "保健食品", "supplements", "health"),
    ("服飾", "衣服", "clothing", "apparel", "fashion"), ("鞋", "鞋子", "shoes", "footwear"), ("包包", "bags", "handbags"),
    ("配件", "accessories"), ("飾品", "珠寶", "jewelry", "jewellery"), ("食品", "food", "groceries"), ("零食", "snacks"),
    ("飲料", "飲品", "drinks", "beverages"), ("茶", "茶葉", "tea"), ("咖啡", "coffee"), ("家電", "appliances"),
    ("3c", "電子", "electronics", "gadgets"), ("母嬰", "嬰兒", "baby", "maternity"), ("寵物", "pets", "pet supplies"),
    ("居家", "家居", "home", "homeware"), ("廚房", "廚具", "kitchen", "kitchenware"), ("文具", "stationery"),
    ("玩具", "toys"), ("書籍", "books"), ("運動", "運動用品", "sports", "sportswear"), ("戶外", "outdoor"),
]
EVENTS = [  # (pattern, event name)
    (r"加入購物車|加購物車|放入購物車|add(?:ed|s)? (?:\w+ )?to (?:the )?cart|cart add", "Product Added"),
    (r"結帳|checkout|checked out|started checkout", "Checkout Started"),
    (r"瀏覽|看過|逛過|view(?:ed)?|browsed?|looked at", "Product Viewed"),
    (r"打開app|開啟app|opened the app|app open", "Application Opened"),
]
NEGATION = r"(沒有|沒|未|不曾|從未|不是|非|排除|除了|not|never|no|without|haven't|hasn't|didn't|did not|has not|have not|excluding|except)"
FILLER = re.compile(
    r"(的|了|過|人|商品|產品|顧客|客人|會員|用戶|使用者|消費者|們|有|是|且|並|中|內|在|裡|給我|找出|找|列出|所有|名單|標籤|貼標|"
    r"\b(?:those|people|customers?|members?|users?|contacts?|who|that|which|have|has|had|are|is|were|was|the|a|an|in|on|of|"
    r"with|and|or|all|any|ones?|last|past|within|days?|find|show|me|segment|list|products?|items?|tag|tagged|labell?ed|times?)\b|"
    r"\d+|[\s,.;:!?，。、；：！？()（）\-])+")
CLAUSE_SPLIT = re.compile(r"[，、;；。/]|(?<!\d),|,(?!\d)|\s+and\s+|\s+but\s+|\s+with\s+|\s+who\s+|並且|而且|但是|但|且|和|及|以及|跟|同時")


@dataclass
class ParseResult:
    rules: dict | None
    understood: list[str] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    source: str = "parser"
    note: str | None = None

    def __iter__(self):  # unpacks as (rules, understood, not_understood)
        return iter((self.rules, self.understood, self.not_understood))


@dataclass
class Vocabulary:
    tags: dict[str, str]  # normalised → stored name
    categories: dict[str, str]
    cities: dict[str, str]


def vocabulary(db: Session, *, workspace_id: int) -> Vocabulary:
    from tutti.ai.text import normalise

    tags = {normalise(n): n for n in db.scalars(select(Tag.name).where(Tag.workspace_id == workspace_id))}
    categories = {normalise(n): n for n in db.scalars(select(Product.category).distinct().where(
        Product.workspace_id == workspace_id, Product.category.is_not(None)).limit(500))}
    for names in CATEGORY_NAMES:  # the other language's names of a stored category (the stored spelling wins)
        stored_as = next((categories[normalise(n)] for n in names if normalise(n) in categories), None)
        if stored_as:
            for name in names:
                categories.setdefault(normalise(name), stored_as)
    # the workspace's own spellings of cities first, so "台北" finds "台北市" or "臺北市" as stored
    stored = db.scalars(select(Contact.city).where(Contact.workspace_id == workspace_id, Contact.city.is_not(None))
                        .group_by(Contact.city).order_by(func.count().desc()).limit(50))
    cities = dict(CITIES)
    by_normal = {normalise(c): c for c in stored}
    for key, value in list(cities.items()):
        if normalise(value) in by_normal:
            cities[key] = by_normal[normalise(value)]
    for normal, value in by_normal.items():
        cities.setdefault(normal, value)
    return Vocabulary(tags=tags, categories=categories, cities=cities)


def _number(text: str) -> float:
    text = text.replace(",", "")
    if text in EN_NUMBERS:
        return EN_NUMBERS[text]
    if all(ch in CN_NUMBERS for ch in text):
        if text == "十":
            return 10
        if text.startswith("十"):
            return 10 + CN_NUMBERS[text[1]]
        if "十" in text:
            tens, _, ones = text.partition("十")
            return CN_NUMBERS[tens] * 10 + (CN_NUMBERS[ones] if ones else 0)
        return CN_NUMBERS[text]
    return float(text)


def _int(text: str) -> int:
    return int(_number(text))


class _Clause:
    def __init__(self, text: str):
        self.text = text
        self.used: list[tuple[int, int]] = []

    def find(self, pattern: str):
        for match in re.finditer(pattern, self.text):
            if not any(a < match.end() and match.start() < b for a, b in self.used):
                return match
        return None

    def take(self, match) -> str:
        self.used.append(match.span())
        return match.group(0)

    def rest(self) -> str:
        chars = list(self.text)
        for a, b in self.used:
            for i in range(a, b):
                chars[i] = " "
        return "".join(chars)


def _window(clause: _Clause) -> tuple[int | None, str | None]:
    patterns = [
        (rf"(?:過去|近|最近|前)?\s*{NUM}\s*(?:天|日)(?:內|之內|以內)?", 1),
        (rf"(?:過去|近|最近)\s*{NUM}\s*(?:個)?月(?:內|之內|以內)?", 30),
        (rf"{NUM}\s*個月(?:內|之內|以內)", 30),
        (rf"(?:in |within |over )?(?:the )?(?:last|past)\s+{NUM}\s+days?", 1),
        (rf"(?:in |within |over )?(?:the )?(?:last|past)\s+{NUM}\s+months?", 30),
        (r"(?:in |within )?(?:the )?(?:last|past) (week)", 7),
        (r"(?:in |within )?(?:the )?(?:last|past) (month)", 30),
        (r"(?:in |within )?(?:the )?(?:last|past) (year)", 365),
        (r"(?:過去|近|最近)?(半年)(?:內)?", 180), (r"(?:過去|近|最近)?(一年)(?:內)?|(今年)", 365), (r"(上個月|這個月|本月)", 30), (r"(一週|一周|這週|本週)(?:內)?", 7),
    ]
    for pattern, unit in patterns:
        match = clause.find(pattern)
        if match:
            clause.take(match)
            token = next((g for g in match.groups() if g), "1")
            days = unit if not re.fullmatch(NUM, token) else _int(token) * unit
            return max(1, min(days, 3650)), match.group(0).strip()
    return None, None


def _conditions(clause: _Clause, days: int | None, vocab: Vocabulary, locale: str) -> list[tuple[dict, str]]:
    """(condition, the words it came from) for everything recognised in the clause."""
    out: list[tuple[dict, str]] = []
    t = clause.text

    def add(condition: dict, match_text: str) -> None:
        out.append((condition, match_text))

    def negated(match) -> bool:
        """A negation word right before the match (沒有買 / not bought / 非VIP); its words count as used."""
        start = max(0, match.start() - 14)
        neg = re.search(NEGATION + r"\s*(?:有|過|曾|是|in|been|yet)?\s*$", t[start:match.start()])
        if neg:
            clause.used.append((start + neg.start(), match.start()))
        return bool(neg)

    # spending: 消費超過3000 / spent over 3,000 / 消費3000以上
    m = clause.find(rf"(?:消費|花費|花了|累積消費|總消費|spent|spend|spending)\s*(?:金額)?\s*(超過|大於|高於|多於|over|more than|above|at least|under|less than|below|低於|少於|不到)?\s*(?:nt\$|\$|ntd)?\s*{NUM}\s*(?:元|塊)?\s*(以上|以下|or more|or less)?")
    if m:
        word, amount, tail = m.group(1) or "", _number(m.group(2)), m.group(3) or ""
        op = "gt" if word in ("超過", "大於", "高於", "多於", "over", "more than", "above") else "gte" if word == "at least" or tail in ("以上", "or more") \
            else "lt" if word in ("under", "less than", "below", "低於", "少於", "不到") else "lte" if tail in ("以下", "or less") else "gte"
        add({"kind": "orders", "measure": "total_spent", "op": op, "value": amount, **({"days": days} if days else {})}, clause.take(m))

    # purchase counts: 買過兩次 / 購買3次以上 / bought twice / at least 2 orders / 2+ orders
    m = (clause.find(rf"(?:買過|購買過?|買了|下單|消費|回購)\s*{NUM}\s*次(以上|或以上|以下)?")
         or clause.find(rf"(?:bought|purchased|ordered|buy|order)\s+(?:at least\s+)?{NUM}(?:\s+(?:times|orders|purchases))?(\s+or more)?")
         or clause.find(rf"(?:at least\s+)?{NUM}\s*\+?\s*(?:or more\s+)?(?:orders|purchases)"))
    if m:
        n = _int(m.group(1))
        tail = (m.group(2) if m.lastindex and m.lastindex >= 2 else None) or ""
        op = "lte" if "以下" in tail else "gte"
        add({"kind": "orders", "measure": "count", "op": op, "value": n, **({"days": days} if days else {})}, clause.take(m))

    # categories: 買過保養 / bought skincare (a category of this workspace)
    for normal, stored in sorted(vocab.categories.items(), key=lambda kv: -len(kv[0])):
        m = clause.find(re.escape(normal))
        if m:
            neg = negated(m)
            condition = {"kind": "bought", "category": stored, **({"days": days} if days else {})}
            if neg:
                condition = {"kind": "group", "op": "and", "negate": True, "children": [condition]}
            add(condition, clause.take(m))
            for verb in (r"買過|購買過?|買了|bought|purchased|buy", ):
                v = clause.find(verb)
                if v:
                    clause.take(v)

    # events: 加入購物車 / viewed / checkout
    for pattern, name in EVENTS:
        m = clause.find(pattern)
        if m:
            neg = negated(m)
            times = clause.find(rf"{NUM}\s*(?:次|times)(以上|or more)?")
            condition = {"kind": "event", "name": name, "op": "not_performed" if neg else "performed", **({"days": days} if days else {})}
            if times and not neg:
                condition.update(op="at_least", times=_int(times.group(1)))
                clause.take(times)
            add(condition, clause.take(m))

    # bought / not bought at all
    if not any(c["kind"] in ("orders", "bought") for c, _ in out):
        m = clause.find(r"買過|有買|購買過?|消費過|有消費|下過單|買東西|buyers?|bought|purchased|ordered|customers who (?:bought|purchased)|made a purchase")
        if m:
            neg = negated(m)
            if neg:
                add({"kind": "orders", "measure": "count", "op": "equals", "value": 0, **({"days": days} if days else {})}, clause.take(m))
            else:
                add({"kind": "orders", "measure": "count", "op": "gte", "value": 1, **({"days": days} if days else {})}, clause.take(m))

    # channels
    m = clause.find(r"可收\s*line|可以收\s*line|line\s*可達|reachable on line|can receive line|line\s*(?:好友|friends?|followers?)|follow(?:s|ing)? (?:us on )?line")
    if m:
        neg = negated(m)
        add({"kind": "reachable", "channel": "line", "value": not neg}, clause.take(m))
    m = clause.find(r"(?:有|綁定|has|have|with|on)?\s*line(?:\s*(?:帳號|id|account))?")
    if m:
        neg = negated(m)
        add({"kind": "identity", "identity": "line_uid", "present": not neg}, clause.take(m))
    m = clause.find(r"訂閱電子報|電子報訂閱|訂閱email|訂閱 email|e-?mail subscribers?|newsletter subscribers?|subscribed to (?:the )?(?:e-?mail|newsletter)|可收\s*e-?mail|可收電子報|可收信|reachable by e-?mail|newsletter")
    if m:
        neg = negated(m)
        add({"kind": "reachable", "channel": "email", "value": not neg}, clause.take(m))
    m = clause.find(r"可收簡訊|可收\s*sms|簡訊訂閱|sms subscribers?|reachable by sms|can receive sms")
    if m:
        add({"kind": "reachable", "channel": "sms", "value": True}, clause.take(m))
    m = clause.find(r"(?:有|has|have|with)\s*(?:e-?mail|電子郵件|信箱)")
    if m:
        add({"kind": "identity", "identity": "email", "present": not negated(m)}, clause.take(m))
    m = clause.find(r"(?:有|has|have|with)\s*(?:手機|電話|phone(?: number)?|mobile)")
    if m:
        add({"kind": "identity", "identity": "phone", "present": not negated(m)}, clause.take(m))

    # gender
    m = clause.find(r"女性|女生|女士|\bfemales?\b|\bwom[ae]n\b|女")
    if m:
        add({"kind": "attribute", "field": "gender", "op": "equals", "value": "female"}, clause.take(m))
    m = clause.find(r"男性|男生|男士|\bmales?\b|\bmen\b|男")
    if m:
        add({"kind": "attribute", "field": "gender", "op": "equals", "value": "male"}, clause.take(m))

    # new members: 30天內加入 / joined in the last 30 days
    m = clause.find(r"加入|註冊|入會|新加入|joined|signed up|registered")
    if m and days:
        add({"kind": "attribute", "field": "created_at", "op": "within_last_days", "days": days}, clause.take(m))

    # cities
    found = []
    for normal, stored in sorted(vocab.cities.items(), key=lambda kv: -len(kv[0])):
        m = clause.find(re.escape(normal) + r"(?:市|縣)?")
        if m and stored not in found:
            found.append(stored)
            clause.take(m)
    if found:
        condition = {"kind": "attribute", "field": "city", "op": "equals", "value": found[0]} if len(found) == 1 else \
            {"kind": "attribute", "field": "city", "op": "in", "values": found}
        out.append((condition, "/".join(found)))

    # tags of this workspace (longest names first, so 沉睡會員 wins over a tag named 沉睡)
    for normal, stored in sorted(vocab.tags.items(), key=lambda kv: -len(kv[0])):
        pattern = re.escape(normal) if not normal.isascii() else rf"(?<![a-z0-9]){re.escape(normal)}(?![a-z0-9])"
        m = clause.find(pattern)
        if m:
            neg = negated(m)
            add({"kind": "tag", "tag": stored, "op": "has_not" if neg else "has"}, clause.take(m))
    return out


def describe(condition: dict, locale: str = "en") -> str:
    """A short human description of one condition (shown beside the words it came from)."""
    zh = locale.startswith("zh")
    k = condition.get("kind")
    days = condition.get("days")
    window = (f"（近 {days} 天）" if zh else f" in the last {days} days") if days else ""
    ops = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "equals": "=", "between": "between"}
    if k == "group":
        inner = "; ".join(describe(c, locale) for c in condition.get("children", []))
        return (f"不是（{inner}）" if zh else f"NOT ({inner})") if condition.get("negate") else inner
    if k == "orders":
        if condition["measure"] == "count":
            return (f"訂單數 {ops[condition['op']]} {condition.get('value')}{window}" if zh
                    else f"orders {ops[condition['op']]} {condition.get('value')}{window}")
        if condition["measure"] == "total_spent":
            return (f"消費金額 {ops[condition['op']]} {condition.get('value'):g}{window}" if zh
                    else f"spent {ops[condition['op']]} {condition.get('value'):g}{window}")
        return f"last order {condition['op']}"
    if k == "bought":
        what = condition.get("category") or condition.get("sku")
        return f"買過「{what}」{window}" if zh else f"bought {what}{window}"
    if k == "event":
        name = condition["name"]
        if condition["op"] == "not_performed":
            return f"沒有 {name}{window}" if zh else f"no {name}{window}"
        if condition["op"] == "at_least":
            return f"{name} ≥ {condition['times']} 次{window}" if zh else f"{name} at least {condition['times']} times{window}"
        return f"有 {name}{window}" if zh else f"did {name}{window}"
    if k == "reachable":
        ch = {"line": "LINE", "email": "e-mail", "sms": "SMS"}[condition["channel"]]
        if condition.get("value", True):
            return f"可收 {ch}" if zh else f"reachable on {ch}"
        return f"不可收 {ch}" if zh else f"not reachable on {ch}"
    if k == "identity":
        kind = {"line_uid": "LINE", "email": "e-mail", "phone": "phone", "external_id": "customer id", "anonymous_id": "anonymous id"}[condition["identity"]]
        if condition.get("present", True):
            return f"有 {kind}" if zh else f"has {kind}"
        return f"沒有 {kind}" if zh else f"has no {kind}"
    if k == "tag":
        has = condition.get("op", "has") == "has"
        return (f"有標籤「{condition['tag']}」" if has else f"沒有標籤「{condition['tag']}」") if zh else \
            (f"tag {condition['tag']}" if has else f"not tag {condition['tag']}")
    if k == "attribute":
        value = condition.get("value", condition.get("values", condition.get("days")))
        return f"{condition['field']} {condition['op']} {value}"
    return json.dumps(condition, ensure_ascii=False)


def parse_offline(text: str, vocab: Vocabulary, locale: str = "zh-TW") -> ParseResult:
    from tutti.ai.text import normalise

    normal = normalise(text)
    clauses = [c.strip() for c in CLAUSE_SPLIT.split(normal) if c and c.strip()]
    children: list[dict] = []
    understood: list[str] = []
    not_understood: list[str] = []
    pending_days: int | None = None
    last_days: int | None = None
    for raw in clauses:
        clause = _Clause(raw)
        days, window_text = _window(clause)
        # a clause without its own window keeps the sentence's last one: 近90天加入購物車但沒有結帳
        found = _conditions(clause, days or pending_days or last_days, vocab, locale)
        if days and not found:
            pending_days = days  # "in the last 30 days, bought twice": the window goes to the next clause
        elif found:
            pending_days = None
        last_days = days or last_days
        for condition, words in found:
            children.append(condition)
            understood.append(f"{words} → {describe(condition, locale)}")
        if window_text and found:
            understood.append(f"{window_text} → " + (f"近 {days} 天" if locale.startswith("zh") else f"the last {days} days"))
        rest = clause.rest()
        if FILLER.sub(" ", rest).strip():  # something beyond filler words is left: say it, as written
            not_understood.append(re.sub(r"\s+", " ", rest).strip(" ,.;:!?，。、；：！？"))
    if pending_days:
        not_understood.append(f"{pending_days}" + (" 天（沒有對應的條件）" if locale.startswith("zh") else " days (no condition to apply it to)"))
    rules = {"version": s.VERSION, "root": {"kind": "group", "op": "and", "children": children}} if children else None
    if rules:
        rules = s.dump(s.parse(rules))
    return ParseResult(rules=rules, understood=understood, not_understood=not_understood, source="parser")


SYSTEM_PROMPT = """You turn a marketer's description of an audience into a segment rule tree (JSON) for a CRM.
Use only the condition kinds of the schema. Time windows are "days" relative to now. Use tag names,
product categories, cities and event names exactly as listed when they fit. Answer with an object:
{"rules": <the rule document>, "understood": [short phrases you turned into rules],
 "not_understood": [parts of the text you could not express]}. Never invent conditions for parts you do not understand."""


def _llm_schema() -> dict:
    return {"type": "object", "properties": {
        "rules": s.json_schema(),
        "understood": {"type": "array", "items": {"type": "string"}},
        "not_understood": {"type": "array", "items": {"type": "string"}},
    }, "required": ["rules", "understood", "not_understood"], "additionalProperties": False}


def parse_with_llm(db: Session, llm, *, workspace_id: int, text: str, vocab: Vocabulary) -> ParseResult:
    from tutti.reach.segments import service

    context = {"tags": sorted(vocab.tags.values()), "categories": sorted(vocab.categories.values())[:100],
               "cities": sorted(set(vocab.cities.values())),
               "events": ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Application Opened"]}
    result = llm.chat([
        {"role": "system", "content": SYSTEM_PROMPT + "\nThis workspace: " + json.dumps(context, ensure_ascii=False)},
        {"role": "user", "content": text},
    ], json_schema=_llm_schema(), schema_name="segment")
    answer = result.parsed or {}
    rules = service.check_rules(db, workspace_id=workspace_id, rules=answer.get("rules"))
    return ParseResult(rules=rules, understood=[str(x) for x in answer.get("understood") or []],
                       not_understood=[str(x) for x in answer.get("not_understood") or []], source="llm")


def parse_words(db: Session, *, workspace_id: int, text: str, locale: str = "zh-TW", llm=None, use_llm: bool = True) -> ParseResult:
    """Words → (rules | None, understood, not_understood). The LLM when configured; else, or when its
    answer is unusable, the built-in parser (and `note` says why)."""
    vocab = vocabulary(db, workspace_id=workspace_id)
    note = None
    if use_llm:
        if llm is None:
            try:
                from tutti.ai.llm import client_for
            except ImportError:
                client_for = None
            llm = client_for() if client_for else None
        if llm is not None:
            try:
                return parse_with_llm(db, llm, workspace_id=workspace_id, text=text, vocab=vocab)
            except InvalidInput as error:
                note = f"the language model's rules were not valid ({error.message}); the built-in parser was used"
            except Exception as error:  # noqa: BLE001 - any failure of the model (connection, timeout, bad output) falls back
                log.warning("segment words: LLM failed, using the parser", extra={"error": str(error)})
                note = f"the language model could not be used ({error}); the built-in parser was used"
    result = parse_offline(text, vocab, locale)
    result.note = note
    return result
