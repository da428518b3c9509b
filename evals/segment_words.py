"""Eval: how often the offline words parser turns a common phrasing into exactly the expected rules.

    python evals/segment_words.py

Runs `words.parse_offline` (no database, no LLM) against the demo brand's vocabulary (tags, categories,
cities) on zh-TW and English phrasings; a phrasing counts as right when the conditions equal the expected
ones (order ignored) and nothing is left not understood. Prints one JSON line per miss and one with the
accuracy per language and overall.
"""

from __future__ import annotations

import json
import sys

from tutti.reach.segments import words

VOCAB = words.Vocabulary(
    tags={"vip": "VIP", "新會員": "新會員", "沉睡會員": "沉睡會員", "高價值": "高價值", "母親節檔期": "母親節檔期", "雙11購買": "雙11購買"},
    categories={"保養": "保養", "彩妝": "彩妝", "身體清潔": "身體清潔", "保健食品": "保健食品", "禮盒": "禮盒"},
    cities=dict(words.CITIES))

LINE = {"kind": "identity", "identity": "line_uid", "present": True}
REACH_LINE = {"kind": "reachable", "channel": "line", "value": True}
EMAIL = {"kind": "reachable", "channel": "email", "value": True}
VIP = {"kind": "tag", "tag": "VIP", "op": "has"}
FEMALE = {"kind": "attribute", "field": "gender", "op": "equals", "value": "female"}
MALE = {"kind": "attribute", "field": "gender", "op": "equals", "value": "male"}
TAIPEI = {"kind": "attribute", "field": "city", "op": "equals", "value": "台北市"}


def orders(op, value, days=None):
    return {"kind": "orders", "measure": "count", "op": op, "value": float(value), **({"days": days} if days else {})}


def spent(op, value, days=None):
    return {"kind": "orders", "measure": "total_spent", "op": op, "value": float(value), **({"days": days} if days else {})}


def event(name, op="performed", days=None, times=None):
    return {"kind": "event", "name": name, "op": op, **({"times": times} if times else {}), **({"days": days} if days else {}), "where": []}


def bought(category, days=None):
    return {"kind": "bought", "category": category, **({"days": days} if days else {})}


CASES = [
    ("zh-TW", "過去30天買過兩次、有LINE的VIP", [orders("gte", 2, 30), LINE, VIP]),
    ("zh-TW", "近30天買過兩次", [orders("gte", 2, 30)]),
    ("zh-TW", "90天內購買3次以上", [orders("gte", 3, 90)]),
    ("zh-TW", "有LINE", [LINE]),
    ("zh-TW", "可收LINE的會員", [REACH_LINE]),
    ("zh-TW", "訂閱電子報的女性", [EMAIL, FEMALE]),
    ("zh-TW", "台北的女性", [FEMALE, TAIPEI]),
    ("zh-TW", "消費超過3000", [spent("gt", 3000)]),
    ("zh-TW", "近一年消費超過20000的VIP", [spent("gt", 20000, 365), VIP]),
    ("zh-TW", "90天內買過保養但近30天沒有買", [bought("保養", 90), orders("equals", 0, 30)]),
    ("zh-TW", "近7天加入購物車但沒有結帳", [event("Product Added", days=7), event("Checkout Started", "not_performed", 7)]),
    ("zh-TW", "過去30天沒有買", [orders("equals", 0, 30)]),
    ("zh-TW", "沉睡會員", [{"kind": "tag", "tag": "沉睡會員", "op": "has"}]),
    ("zh-TW", "非VIP的男性", [MALE, {"kind": "tag", "tag": "VIP", "op": "has_not"}]),
    ("zh-TW", "買過彩妝的新會員", [bought("彩妝"), {"kind": "tag", "tag": "新會員", "op": "has"}]),
    ("zh-TW", "近30天瀏覽商品5次以上", [event("Product Viewed", "at_least", 30, 5)]),
    ("zh-TW", "高雄可收LINE的女性", [REACH_LINE, FEMALE, {"kind": "attribute", "field": "city", "op": "equals", "value": "高雄市"}]),
    ("zh-TW", "半年內買過禮盒", [bought("禮盒", 180)]),
    ("zh-TW", "消費3000以上的雙11購買會員", [spent("gte", 3000), {"kind": "tag", "tag": "雙11購買", "op": "has"}]),
    ("zh-TW", "没有买过的人", [orders("equals", 0)]),  # simplified Chinese, normalised by OpenCC
    ("zh-TW", "30天內加入的會員", [{"kind": "attribute", "field": "created_at", "op": "within_last_days", "days": 30}]),
    ("zh-TW", "有買過保健食品、可收電子報", [bought("保健食品"), {"kind": "reachable", "channel": "email", "value": True}]),
    ("en", "has LINE and tag VIP", [LINE, VIP]),
    ("en", "bought twice in the last 30 days", [orders("gte", 2, 30)]),
    ("en", "at least 2 orders", [orders("gte", 2)]),
    ("en", "email subscribers in Taipei", [EMAIL, TAIPEI]),
    ("en", "spent over 3,000 in the last 90 days", [spent("gt", 3000, 90)]),
    ("en", "female VIP", [FEMALE, VIP]),
    ("en", "not VIP", [{"kind": "tag", "tag": "VIP", "op": "has_not"}]),
    ("en", "added to cart in the last 7 days but did not checkout", [event("Product Added", days=7), event("Checkout Started", "not_performed", 7)]),
    ("en", "people who bought skincare", [bought("保養")]),
    ("en", "customers who have not bought in the last 60 days", [orders("equals", 0, 60)]),
    ("en", "reachable on LINE", [REACH_LINE]),
    ("en", "men in Kaohsiung", [MALE, {"kind": "attribute", "field": "city", "op": "equals", "value": "高雄市"}]),
    ("en", "viewed products 3 times in the last 30 days", [event("Product Viewed", "at_least", 30, 3)]),
    ("en", "joined in the last 30 days", [{"kind": "attribute", "field": "created_at", "op": "within_last_days", "days": 30}]),
    ("en", "spent more than 5000", [spent("gt", 5000)]),
    ("en", "bought 3 times or more in the past year", [orders("gte", 3, 365)]),
    ("en", "LINE friends who are VIP", [REACH_LINE, VIP]),
    ("en", "sms subscribers", [{"kind": "reachable", "channel": "sms", "value": True}]),
]


def _key(condition: dict) -> str:
    return json.dumps(condition, sort_keys=True, ensure_ascii=False)


def main() -> int:
    right: dict[str, list[bool]] = {}
    for locale, text, expected in CASES:
        result = words.parse_offline(text, VOCAB, locale)
        got = result.rules["root"]["children"] if result.rules else []
        ok = sorted(map(_key, got)) == sorted(map(_key, expected)) and not result.not_understood
        right.setdefault(locale, []).append(ok)
        if not ok:
            print(json.dumps({"eval": "segment_words", "miss": text, "got": got, "not_understood": result.not_understood}, ensure_ascii=False))
    for locale, marks in right.items():
        print(json.dumps({"eval": "segment_words", "figure": f"accuracy.{locale}", "value": round(sum(marks) / len(marks), 3), "cases": len(marks)}))
    everything = [m for marks in right.values() for m in marks]
    print(json.dumps({"eval": "segment_words", "figure": "accuracy", "value": round(sum(everything) / len(everything), 3), "cases": len(everything)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
