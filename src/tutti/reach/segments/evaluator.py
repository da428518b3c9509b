"""A plain-Python evaluator of the same rules over loaded rows: the reference the SQL compiler is tested
against (tests/reach/test_segment_property.py). Written for clarity, not speed: it reads raw events (never
the daily counts), so it also checks the pre-aggregation.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from tutti.audience.models import (
    AttributeDefinition,
    Consent,
    Contact,
    ContactTag,
    Event,
    Identity,
    Order,
    OrderLine,
    Tag,
    TagApplication,
)
from tutti.reach.segments import compiler as c
from tutti.reach.segments import schema as s
from tutti.reach.segments.models import Segment


@dataclass
class Data:
    now: datetime
    contacts: list[dict] = field(default_factory=list)
    identities: list[dict] = field(default_factory=list)
    consents: list[dict] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)  # name -> id
    contact_tags: list[dict] = field(default_factory=list)
    tag_applications: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    order_lines: list[dict] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)
    clicks: list[dict] = field(default_factory=list)
    attribute_types: dict[str, str] = field(default_factory=dict)
    segments: dict[int, dict] = field(default_factory=dict)  # id -> stored rules


def _rows(db: Session, model, workspace_id: int) -> list[dict]:
    table = model.__table__ if hasattr(model, "__table__") else model
    return [dict(r._mapping) for r in db.execute(select(table).where(table.c.workspace_id == workspace_id))]


def load(db: Session, *, workspace_id: int, now: datetime) -> Data:
    names = set(inspect(db.get_bind()).get_table_names())
    data = Data(now=now)
    data.contacts = _rows(db, Contact, workspace_id)
    data.identities = _rows(db, Identity, workspace_id)
    data.consents = _rows(db, Consent, workspace_id)
    data.tags = {r["name"]: r["id"] for r in _rows(db, Tag, workspace_id)}
    data.contact_tags = _rows(db, ContactTag, workspace_id)
    data.tag_applications = _rows(db, TagApplication, workspace_id)
    data.events = _rows(db, Event, workspace_id)
    data.orders = _rows(db, Order, workspace_id)
    data.order_lines = _rows(db, OrderLine, workspace_id)
    if "delivery" in names:
        data.deliveries = _rows(db, c.delivery, workspace_id)
    if "click" in names:
        data.clicks = _rows(db, c.click, workspace_id)
    data.attribute_types = {r["key"]: r["type"] for r in _rows(db, AttributeDefinition, workspace_id)}
    data.segments = {r["id"]: r["rules"] for r in _rows(db, Segment, workspace_id)}
    return data


def members(data: Data, rules, *, segment_id: int | None = None) -> set[int]:
    rules = s.parse(rules)
    ev = _Evaluator(data)
    return {p["id"] for p in data.contacts
            if p["merged_into_id"] is None and p["erased_at"] is None
            and ev.group(rules.root, p, "rules", (segment_id,) if segment_id else ())}


class _Evaluator:
    def __init__(self, data: Data):
        self.d = data
        self.now = data.now.astimezone(UTC)
        by = defaultdict(list)
        for name in ("identities", "consents", "contact_tags", "tag_applications", "events", "orders", "deliveries", "clicks"):
            for row in getattr(data, name):
                by[(name, row["contact_id"])].append(row)
        self.by = by
        self.lines = defaultdict(list)
        for line in data.order_lines:
            self.lines[line["order_id"]].append(line)
        self._rfm = None

    def rows(self, name: str, contact: dict) -> list[dict]:
        return self.by.get((name, contact["id"]), [])

    def since(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    def group(self, node: s.Group, p: dict, path: str, stack) -> bool:
        results = (self.node(child, p, f"{path}.children[{i}]", stack) for i, child in enumerate(node.children))
        value = all(results) if node.op == "and" else any(results)
        return (not value) if node.negate else value

    def node(self, node, p, path, stack) -> bool:
        if isinstance(node, s.Group):
            return self.group(node, p, path, stack)
        return getattr(self, f"k_{node.kind}")(node, p, path, stack)

    # --- attributes
    def k_attribute(self, node: s.Attribute, p, path, stack) -> bool:
        type_ = c.attribute_type(node, self.d.attribute_types)
        c.check_attribute(node, type_, path)
        builtin = node.field in s.BUILTIN_FIELDS
        raw = p[node.field] if builtin else (p["attributes"] or {}).get(node.field)
        if builtin:
            value = raw
        elif type_ == "number":
            value = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        elif type_ in ("string", "date"):
            value = raw if isinstance(raw, str) else None
        else:
            value = raw
        op = node.op
        if type_ in ("boolean", "list") and not builtin:
            is_set = raw is not None
        else:
            is_set = value is not None
        if op == "is_set":
            return is_set
        if op == "is_not_set":
            return not is_set
        if type_ == "boolean":
            return raw is bool(node.value)
        if type_ == "list":
            has = isinstance(raw, list) and any(isinstance(x, str) and x == str(node.value) for x in raw)
            return has if op == "contains" else not has
        if type_ == "string":
            if op == "equals":
                return value == str(node.value)
            if op == "not_equals":
                return value is None or value != str(node.value)
            if op == "in":
                return value in [str(v) for v in node.values]
            if op == "not_in":
                return value is None or value not in [str(v) for v in node.values]
            if op == "contains":
                return value is not None and c.ascii_fold(str(node.value)) in c.ascii_fold(value)
        if type_ == "number":
            if value is None:
                return op == "not_equals"
            if op == "in":
                return value in [c.as_number(v, path) for v in node.values]
            if op == "not_equals":
                return value != c.as_number(node.value, path)
            if op == "between":
                return c.as_number(node.low, path) <= value <= c.as_number(node.high, path)
            return c._compare_py(op, c.as_number(node.value, path))(value)
        # dates and times
        if value is None:
            return False
        if type_ == "datetime":
            value = value.astimezone(UTC)

            def bound(day: date):
                return c.day_start(day)
        else:
            if builtin:  # custom dates stay ISO strings, compared as text, as in SQL
                value = value if isinstance(value, date) else date.fromisoformat(str(value))

            def bound(day: date):
                return day if builtin else day.isoformat()
        if op in ("within_last_days", "not_within_last_days"):
            cutoff = self.since(node.days) if type_ == "datetime" else bound(self.since(node.days).date())
            within = value >= cutoff
            return within if op == "within_last_days" else not within
        if op == "before":
            return value < bound(c.as_date(node.value, path))
        if op == "after":
            day = c.as_date(node.value, path)
            return value >= bound(day + timedelta(days=1)) if type_ == "datetime" else value > bound(day)
        if op == "equals":
            return value == bound(c.as_date(node.value, path))
        if op == "between":
            low, high = c.as_date(node.low, path), c.as_date(node.high, path)
            if type_ == "datetime":
                return bound(low) <= value < bound(high + timedelta(days=1))
            return bound(low) <= value <= bound(high)
        raise AssertionError(op)

    # --- identities, consent
    def has_identity(self, p, kind) -> bool:
        return any(r["kind"] == kind for r in self.rows("identities", p))

    def k_identity(self, node: s.IdentityPresent, p, path, stack) -> bool:
        return self.has_identity(p, node.identity) == node.present

    def consent(self, p, channel) -> str:
        for r in self.rows("consents", p):
            if r["channel"] == channel:
                return r["status"]
        return "none"

    def k_reachable(self, node: s.Reachable, p, path, stack) -> bool:
        ok = self.consent(p, node.channel) == "subscribed" and self.has_identity(p, c.CHANNEL_IDENTITY[node.channel])
        return ok == node.value

    def k_consent(self, node: s.ConsentIs, p, path, stack) -> bool:
        return self.consent(p, node.channel) in node.statuses

    # --- tags
    def k_tag(self, node: s.TagCondition, p, path, stack) -> bool:
        tag_id = self.d.tags.get(node.tag)
        if node.op in ("has", "has_not"):
            has = any(r["tag_id"] == tag_id and (r["expires_at"] is None or r["expires_at"] > self.now)
                      for r in self.rows("contact_tags", p))
            return has if node.op == "has" else not has
        times = sum(1 for r in self.rows("tag_applications", p)
                    if r["tag_id"] == tag_id and (not node.days or r["applied_at"] >= self.since(node.days)))
        return times >= node.times

    # --- events
    def k_event(self, node: s.EventCondition, p, path, stack) -> bool:
        n = sum(1 for e in self.rows("events", p)
                if e["name"] == node.name and (not node.days or e["occurred_at"] >= self.since(node.days))
                and all(_property_ok(f, e["properties"] or {}) for f in node.where))
        return {"performed": n >= 1, "not_performed": n == 0,
                "at_least": n >= (node.times or 0), "at_most": n <= (node.times or 0)}[node.op]

    # --- orders
    def counted(self, p) -> list[dict]:
        return [o for o in self.rows("orders", p) if o["status"] not in c.NOT_COUNTED_STATUSES]

    def k_orders(self, node: s.OrdersCondition, p, path, stack) -> bool:
        orders = self.counted(p)
        if node.measure in ("count", "total_spent"):
            if node.days:
                orders = [o for o in orders if o["placed_at"] >= self.since(node.days)]
            x = len(orders) if node.measure == "count" else sum(o["total"] - o["refunded_total"] for o in orders)
            value = None if node.value is None else float(node.value)
            return c._compare_py(node.op, value, node.low, node.high)(x)
        last = max((o["placed_at"] for o in orders), default=None)
        op = node.op
        if op == "is_set":
            return last is not None
        if op == "is_not_set":
            return last is None
        if last is None:
            return False
        if op == "within_last_days":
            return last >= self.since(node.days)
        if op == "not_within_last_days":
            return last < self.since(node.days)
        day = c.as_date(node.value, path)
        if op == "before":
            return last < c.day_start(day)
        return last >= c.day_start(day + timedelta(days=1))

    def k_bought(self, node: s.BoughtCondition, p, path, stack) -> bool:
        for o in self.counted(p):
            if node.days and o["placed_at"] < self.since(node.days):
                continue
            for line in self.lines[o["id"]]:
                if line["status"] != "ok":
                    continue
                if (node.sku is not None and line["sku"] == node.sku) or (node.category is not None and line["category"] == node.category):
                    return True
        return False

    # --- engagement
    def k_engagement(self, node: s.EngagementCondition, p, path, stack) -> bool:
        if node.op == "received":
            return any(d["campaign_id"] == node.campaign_id and d["status"] == "sent" for d in self.rows("deliveries", p))
        return any((node.campaign_id is None or k["campaign_id"] == node.campaign_id)
                   and (not node.days or k["clicked_at"] >= self.since(node.days)) for k in self.rows("clicks", p))

    # --- RFM
    def rfm(self) -> dict[int, dict[str, int]]:
        if self._rfm is None:
            live = {p["id"] for p in self.d.contacts if p["merged_into_id"] is None and p["erased_at"] is None}
            buyers: dict[int, list] = defaultdict(list)
            for o in self.d.orders:
                if o["status"] not in c.NOT_COUNTED_STATUSES and o["contact_id"] in live:
                    buyers[o["contact_id"]].append(o)
            stats = {cid: {"recency": max(o["placed_at"] for o in os_), "frequency": len(os_),
                           "monetary": sum(o["total"] - o["refunded_total"] for o in os_)} for cid, os_ in buyers.items()}
            result: dict[int, dict[str, int]] = defaultdict(dict)
            for dim in ("recency", "frequency", "monetary"):
                ordered = sorted(stats, key=lambda cid, d=dim: (stats[cid][d], cid))
                for cid, q in zip(ordered, ntile(len(ordered), 5), strict=True):
                    result[cid][dim] = q
            self._rfm = result
        return self._rfm

    def k_rfm(self, node: s.RfmCondition, p, path, stack) -> bool:
        q = self.rfm().get(p["id"], {}).get(node.dimension)
        return q is not None and node.low <= q <= node.high

    # --- segments
    def k_segment(self, node: s.SegmentRef, p, path, stack) -> bool:
        rules = s.parse(self.d.segments[node.segment_id])
        inside = self.group(rules.root, p, path, (*stack, node.segment_id))
        return inside if node.op == "in" else not inside


def ntile(n: int, buckets: int) -> list[int]:
    """SQL's NTILE: the first n % buckets groups get one row more."""
    size, extra = divmod(n, buckets)
    out = []
    for b in range(buckets):
        out.extend([b + 1] * (size + (1 if b < extra else 0)))
    return out


def _property_ok(f: s.PropertyFilter, props: dict) -> bool:
    v = props.get(f.property)
    if f.op == "is_set":
        return v is not None
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if f.op == "in":
        for want in f.value:
            if isinstance(want, bool):
                if v is want:
                    return True
            elif isinstance(want, (int, float)):
                if is_num and float(v) == float(want):
                    return True
            elif isinstance(v, str) and v == want:
                return True
        return False
    if f.op == "contains":
        return isinstance(v, str) and c.ascii_fold(f.value) in c.ascii_fold(v)
    want = f.value
    if isinstance(want, bool):
        equal = v is want
        return equal if f.op == "equals" else not equal
    if isinstance(want, str):
        if f.op == "equals":
            return isinstance(v, str) and v == want
        return not (isinstance(v, str) and v == want)
    if f.op == "not_equals":
        return not (is_num and float(v) == float(want))
    return is_num and c._compare_py(f.op, float(want))(float(v))
