"""Demo segments: the marketer's usual starting points on the demo brand, built and refreshed so the segments
page shows members, counts and freshness from the first visit."""

from __future__ import annotations

from datetime import date

from tutti.platform.audit import Actor
from tutti.platform.db import Database
from tutti.reach.segments import service


def _and(*children: dict) -> dict:
    return {"root": {"kind": "group", "op": "and", "children": list(children)}}


def _not(condition: dict) -> dict:
    return {"kind": "group", "op": "and", "negate": True, "children": [condition]}


SEGMENTS = [
    ("VIP 有 LINE · VIP on LINE", "可用 LINE 觸及的 VIP VIP members reachable on LINE",
     _and({"kind": "tag", "tag": "VIP", "op": "has"}, {"kind": "reachable", "channel": "line", "value": True})),
    ("保養回購 · Skincare win-back", "90 天內買過保養、近 30 天沒買 Bought skincare in 90 days, not in the last 30",
     _and({"kind": "bought", "category": "保養", "days": 90}, _not({"kind": "bought", "category": "保養", "days": 30}))),
    ("高消費前 20% · Top spenders", "消費金額前 20%（RFM）Top monetary quintile (RFM)",
     _and({"kind": "rfm", "dimension": "monetary", "low": 5, "high": 5})),
    ("逛了沒買 · Browsed, no order", "近 30 天瀏覽 3 次以上、沒有下單 Viewed 3+ products in 30 days without an order",
     _and({"kind": "event", "name": "Product Viewed", "op": "at_least", "times": 3, "days": 30},
          {"kind": "orders", "measure": "count", "op": "equals", "value": 0, "days": 30})),
    ("沉睡會員 · Dormant", "60 天沒點擊任何訊息的沉睡會員 Dormant members who clicked nothing in 60 days",
     _and({"kind": "tag", "tag": "沉睡會員", "op": "has"}, _not({"kind": "engagement", "op": "clicked_any", "days": 60}))),
]


def build(database: Database, *, workspace_id: int, seed: int, today: date, contacts: int, report) -> None:
    report("分眾 segments", 0, len(SEGMENTS))
    made = []
    with database.session() as db:
        for name, description, rules in SEGMENTS:
            made.append(service.create_segment(db, workspace_id=workspace_id, name=name, description=description,
                                               rules=rules, actor=Actor.cli()).id)
    for done, segment_id in enumerate(made, start=1):
        service.refresh_with_counts(database, workspace_id=workspace_id, segment_id=segment_id, trigger="demo")
        report("分眾 segments", done, len(SEGMENTS))
