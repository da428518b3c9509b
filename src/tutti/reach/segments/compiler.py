"""Rule tree → ONE SQL statement (SQLAlchemy Core) selecting the member contact ids.

Shape: `SELECT contact.id FROM contact WHERE workspace_id = :w AND merged_into_id IS NULL AND erased_at IS
NULL AND <predicate>`; each condition is an EXISTS / NOT EXISTS subquery or an `id IN (SELECT contact_id
… GROUP BY contact_id HAVING …)`, combined with AND / OR / NOT. Nothing loops over contacts in Python.

Aggregates (order count, money spent, event counts) treat "no rows" as 0: a predicate that 0 satisfies
(`at most 2 orders`) is compiled as NOT IN the complement, so people with no orders are members, exactly
as the Python evaluator (evaluator.py) says. Windows are relative to `now` (injectable for tests).

Event counts without property filters read `event_daily_count` (days folded up to a watermark event id)
plus the raw events of the partial first day and those newer than the watermark: exact, and small.
"Bought X in a window" and RFM read the order facts per contact (orderfacts.py) for folded contacts and
the orders themselves for the few contacts with newer orders or changes: exact too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import (
    and_,
    case,
    column,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    table,
    true,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from tutti.audience.models import (
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
from tutti.platform.db import BigId, UTCDateTime
from tutti.platform.errors import InvalidInput, NotFound
from tutti.reach.segments import orderfacts as of
from tutti.reach.segments import schema as s
from tutti.reach.segments import sqlparts as sp
from tutti.reach.segments.models import (
    EventCountWatermark,
    EventDailyCount,
    OrderBought,
    OrderFactWatermark,
    OrderSummary,
    Segment,
    SegmentMember,
)

NOT_COUNTED_STATUSES = of.NOT_COUNTED_STATUSES  # orders that count: not cancelled, not wholly refunded
CHANNEL_IDENTITY = {"line": "line_uid", "email": "email", "sms": "phone"}

# The campaigns and tracking helpers own these tables; segments read only the agreed columns, so the
# compiler does not import their modules.
delivery = table("delivery", column("workspace_id", BigId), column("campaign_id", BigId), column("contact_id", BigId),
                 column("status", None), column("sent_at", UTCDateTime()))
click = table("click", column("workspace_id", BigId), column("campaign_id", BigId), column("contact_id", BigId),
              column("clicked_at", UTCDateTime()))


@dataclass
class Context:
    workspace_id: int
    now: datetime
    attribute_types: dict[str, str] = field(default_factory=dict)  # custom attribute key -> type
    db: Session | None = None  # to read referenced segments' rules; without it, their materialised members
    use_daily_counts: bool = True  # read the state kept between refreshes (daily counts, order facts)
    watermark: int | None = None  # read beforehand when a session is at hand, so the planner sees the number
    order_marks: tuple[int, int] | None = None  # (last_order_id, last_change_id), likewise
    _stack: tuple[int, ...] = ()


def members_select(*, workspace_id: int, rules, now: datetime | None = None, db: Session | None = None,
                   attribute_types: dict[str, str] | None = None, use_daily_counts: bool = True,
                   segment_id: int | None = None) -> Select:
    """The statement selecting the member contact ids (`SELECT contact.id AS contact_id …`).

    With `db`, custom attribute types come from their definitions and referenced segments are evaluated
    by their rules; `segment_id` is the segment these rules belong to (so it cannot include itself)."""
    rules = s.parse(rules)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if attribute_types is None and db is not None:
        attribute_types = load_attribute_types(db, workspace_id=workspace_id)
    watermark = order_marks = None
    if db is not None and use_daily_counts:
        watermark = db.scalar(select(func.coalesce(func.max(EventCountWatermark.last_event_id), 0))
                              .where(EventCountWatermark.workspace_id == workspace_id))
        # a mark read now may be passed by a fold before the statement runs: harmless, as the contacts it
        # folds are read from their orders anyway, and a fold only ever recomputes facts from the orders
        order_marks = tuple(db.execute(select(OrderFactWatermark.last_order_id, OrderFactWatermark.last_change_id)
                                       .where(OrderFactWatermark.workspace_id == workspace_id)).one_or_none() or (0, 0))
    ctx = Context(workspace_id=workspace_id, now=now, attribute_types=attribute_types or {}, db=db,
                  use_daily_counts=use_daily_counts, watermark=watermark, order_marks=order_marks,
                  _stack=(segment_id,) if segment_id else ())
    return select(Contact.id.label("contact_id")).where(*live_contacts(workspace_id), group(rules.root, ctx, "rules"))


def live_contacts(workspace_id: int) -> list[ColumnElement]:
    return [Contact.workspace_id == workspace_id, Contact.merged_into_id.is_(None), Contact.erased_at.is_(None)]


def load_attribute_types(db: Session, *, workspace_id: int) -> dict[str, str]:
    from tutti.audience.models import AttributeDefinition

    return dict(db.execute(select(AttributeDefinition.key, AttributeDefinition.type)
                           .where(AttributeDefinition.workspace_id == workspace_id)).all())


def group(node: s.Group, ctx: Context, path: str) -> ColumnElement:
    parts = [compile_node(child, ctx, f"{path}.children[{i}]") for i, child in enumerate(node.children)]
    if not parts:
        combined = true() if node.op == "and" else false()
    else:
        combined = and_(*parts) if node.op == "and" else or_(*parts)
    return not_(combined) if node.negate else combined


def compile_node(node, ctx: Context, path: str) -> ColumnElement:
    if isinstance(node, s.Group):
        return group(node, ctx, path)
    handler = _HANDLERS[node.kind]
    return handler(node, ctx, path)


def _since(ctx: Context, days: int) -> datetime:
    return ctx.now - timedelta(days=days)


def _in(subquery: Select) -> ColumnElement:
    return Contact.id.in_(subquery)


def _aggregate(source: Select, measure, predicate, zero_ok: bool) -> ColumnElement:
    """contact ids whose aggregate satisfies predicate; `source` is grouped by contact_id. People with no
    rows have aggregate 0: when 0 satisfies the predicate, members are everyone NOT IN the complement."""
    if zero_ok:
        return not_(_in(source.having(not_(predicate(measure)))))
    return _in(source.having(predicate(measure)))


def _compare(op: str, value=None, low=None, high=None):
    def predicate(x):
        return {
            "equals": lambda: x == value, "gt": lambda: x > value, "gte": lambda: x >= value,
            "lt": lambda: x < value, "lte": lambda: x <= value, "between": lambda: and_(x >= low, x <= high),
        }[op]()
    return predicate


def _compare_py(op: str, value=None, low=None, high=None):
    return {
        "equals": lambda x: x == value, "gt": lambda x: x > value, "gte": lambda x: x >= value,
        "lt": lambda x: x < value, "lte": lambda x: x <= value, "between": lambda x: low <= x <= high,
    }[op]


# --- attributes -----------------------------------------------------------------------------------------------


def attribute_type(node: s.Attribute, ctx_types: dict[str, str]) -> str:
    if node.field in s.BUILTIN_FIELDS:
        return s.BUILTIN_FIELDS[node.field]
    declared = ctx_types.get(node.field) or node.type
    if declared:
        return declared
    sample = node.value if node.value is not None else (node.values or [node.low])[0]
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, (int, float)):
        return "number"
    return "string"


def check_attribute(node: s.Attribute, type_: str, path: str) -> None:
    if node.op not in s.OPERATORS_BY_TYPE[type_]:
        allowed = ", ".join(s.OPERATORS_BY_TYPE[type_])
        raise InvalidInput(f"{path}.op: '{node.op}' does not apply to the {type_} attribute '{node.field}'; use {allowed}",
                           field=f"{path}.op")


def as_date(value, path: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InvalidInput(f"{path}: '{value}' is not a date (use YYYY-MM-DD)", field=path) from None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def as_number(value, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(str(value))
        except ValueError:
            raise InvalidInput(f"{path}: '{value}' is not a number", field=path) from None
    return value


def ascii_fold(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _attribute(node: s.Attribute, ctx: Context, path: str) -> ColumnElement:
    # a comparison with a missing value is NULL in SQL, and NOT NULL is NULL again: made two-valued here
    # (missing = false) so NOT (…) means what it says, as in Python
    return case((_attribute_predicate(node, ctx, path), true()), else_=false())


def _attribute_predicate(node: s.Attribute, ctx: Context, path: str) -> ColumnElement:
    type_ = attribute_type(node, ctx.attribute_types)
    check_attribute(node, type_, path)
    op = node.op
    builtin = node.field in s.BUILTIN_FIELDS
    attrs = Contact.attributes
    key = node.field

    if builtin:
        col = getattr(Contact, node.field)
        is_set = col.is_not(None)
    elif type_ == "boolean" or type_ == "list":
        is_set = sp.json_is_set(attrs, key)
    else:
        col = sp.json_number(attrs, key) if type_ == "number" else sp.json_text(attrs, key)
        is_set = col.is_not(None)
    if op == "is_set":
        return is_set
    if op == "is_not_set":
        return not_(is_set)

    if type_ == "boolean":
        return sp.json_is_true(attrs, key) if bool(node.value) else sp.json_is_false(attrs, key)
    if type_ == "list":
        needle = str(node.value)
        has = sp.json_list_has(attrs, key, needle)
        return has if op == "contains" else not_(has)
    if type_ == "string":
        if op == "equals":
            return col == str(node.value)
        if op == "not_equals":
            return or_(col.is_(None), col != str(node.value))
        if op == "in":
            return col.in_([str(v) for v in node.values])
        if op == "not_in":
            return or_(col.is_(None), col.not_in([str(v) for v in node.values]))
        if op == "contains":
            return sp.has_text(sp.ascii_lower(col), ascii_fold(str(node.value)))
    if type_ == "number":
        if op == "in":
            return col.in_([as_number(v, f"{path}.values") for v in node.values])
        if op == "not_equals":
            return or_(col.is_(None), col != as_number(node.value, f"{path}.value"))
        if op == "between":
            return and_(col >= as_number(node.low, f"{path}.low"), col <= as_number(node.high, f"{path}.high"))
        return _compare(op, as_number(node.value, f"{path}.value"))(col)
    if type_ in ("date", "datetime"):
        # custom dates are ISO strings in JSON (they sort as dates); built-in columns compare as dates/times
        def bound(day: date):
            if type_ == "datetime":
                return day_start(day)
            return day if builtin else day.isoformat()

        if op in ("within_last_days", "not_within_last_days"):
            cutoff = _since(ctx, node.days) if type_ == "datetime" else bound(_since(ctx, node.days).date())
            within = col >= cutoff
            return within if op == "within_last_days" else and_(is_set, not_(within))
        if op == "before":
            return col < bound(as_date(node.value, f"{path}.value"))
        if op == "after":
            day = as_date(node.value, f"{path}.value")
            return col >= bound(day + timedelta(days=1)) if type_ == "datetime" else col > bound(day)
        if op == "equals":
            return col == bound(as_date(node.value, f"{path}.value"))
        if op == "between":
            low, high = as_date(node.low, f"{path}.low"), as_date(node.high, f"{path}.high")
            if type_ == "datetime":
                return and_(col >= bound(low), col < bound(high + timedelta(days=1)))
            return and_(col >= bound(low), col <= bound(high))
    raise InvalidInput(f"{path}.op: '{op}' does not apply to '{node.field}'", field=f"{path}.op")


# --- identities, consent ---------------------------------------------------------------------------------------


def _identity_exists(ctx: Context, kind: str) -> ColumnElement:
    return exists().where(Identity.contact_id == Contact.id, Identity.workspace_id == ctx.workspace_id, Identity.kind == kind)


def _identity(node: s.IdentityPresent, ctx: Context, path: str) -> ColumnElement:
    found = _identity_exists(ctx, node.identity)
    return found if node.present else not_(found)


def _reachable(node: s.Reachable, ctx: Context, path: str) -> ColumnElement:
    subscribed = exists().where(Consent.contact_id == Contact.id, Consent.workspace_id == ctx.workspace_id,
                                Consent.channel == node.channel, Consent.status == "subscribed")
    reachable = and_(subscribed, _identity_exists(ctx, CHANNEL_IDENTITY[node.channel]))
    return reachable if node.value else not_(reachable)


def _consent(node: s.ConsentIs, ctx: Context, path: str) -> ColumnElement:
    statuses = [x for x in node.statuses if x != "none"]
    parts = []
    if statuses:
        parts.append(exists().where(Consent.contact_id == Contact.id, Consent.workspace_id == ctx.workspace_id,
                                    Consent.channel == node.channel, Consent.status.in_(statuses)))
    if "none" in node.statuses:
        parts.append(not_(exists().where(Consent.contact_id == Contact.id, Consent.workspace_id == ctx.workspace_id,
                                         Consent.channel == node.channel)))
    return or_(*parts)


# --- tags -------------------------------------------------------------------------------------------------------


def _tag(node: s.TagCondition, ctx: Context, path: str) -> ColumnElement:
    tag_id = select(Tag.id).where(Tag.workspace_id == ctx.workspace_id, Tag.name == node.tag).scalar_subquery()
    if node.op in ("has", "has_not"):
        has = exists().where(ContactTag.contact_id == Contact.id, ContactTag.workspace_id == ctx.workspace_id,
                             ContactTag.tag_id == tag_id,
                             or_(ContactTag.expires_at.is_(None), ContactTag.expires_at > ctx.now))
        return has if node.op == "has" else not_(has)
    source = (select(TagApplication.contact_id)
              .where(TagApplication.workspace_id == ctx.workspace_id, TagApplication.tag_id == tag_id,
                     *([TagApplication.applied_at >= _since(ctx, node.days)] if node.days else []))
              .group_by(TagApplication.contact_id))
    return _aggregate(source, func.count(), lambda x: x >= node.times, zero_ok=False)


# --- events -----------------------------------------------------------------------------------------------------


def property_filter(f: s.PropertyFilter) -> ColumnElement:
    props = Event.properties
    value = f.value
    if f.op == "is_set":
        return sp.json_is_set(props, f.property)
    if f.op == "in":
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        texts = [v for v in value if isinstance(v, str)]
        bools = [v for v in value if isinstance(v, bool)]
        parts = []
        if numbers:
            parts.append(sp.json_number(props, f.property).in_([float(v) for v in numbers]))
        if texts:
            parts.append(sp.json_text(props, f.property).in_(texts))
        for b in set(bools):
            parts.append(sp.json_is_true(props, f.property) if b else sp.json_is_false(props, f.property))
        return or_(*parts)
    if f.op == "contains":
        return sp.has_text(sp.ascii_lower(sp.json_text(props, f.property)), ascii_fold(value))
    if isinstance(value, bool):
        equal = sp.json_is_true(props, f.property) if value else sp.json_is_false(props, f.property)
        return equal if f.op == "equals" else not_(equal)
    if isinstance(value, str):
        col = sp.json_text(props, f.property)
        if f.op == "equals":
            return col == value
        return or_(col.is_(None), col != value)  # not_equals: a missing property is not equal either
    col = sp.json_number(props, f.property)
    if f.op == "not_equals":
        return or_(col.is_(None), col != float(value))
    return _compare(f.op, float(value))(col)


def _event_predicate(node: s.EventCondition):
    op, times = node.op, node.times
    if op == "performed":
        return (lambda x: x >= 1), False
    if op == "not_performed":
        return (lambda x: x >= 1), True  # members: NOT IN those who performed it
    if op == "at_least":
        return (lambda x: x >= times), times <= 0
    return (lambda x: x <= times), True


def _event(node: s.EventCondition, ctx: Context, path: str) -> ColumnElement:
    predicate, zero_ok = _event_predicate(node)
    if node.op == "not_performed":
        # compiled as NOT (performed)
        return not_(_event_in(node, ctx, predicate))
    if zero_ok:
        return not_(_event_in(node, ctx, lambda x: not_(predicate(x))))
    return _event_in(node, ctx, predicate)


def _event_in(node: s.EventCondition, ctx: Context, predicate) -> ColumnElement:
    """contact.id IN (contacts whose count of matching events satisfies predicate, count >= 1)."""
    w = ctx.workspace_id
    base = [Event.workspace_id == w, Event.name == node.name]
    if node.where or not ctx.use_daily_counts:
        conditions = base + [property_filter(f) for f in node.where]
        if node.days:
            conditions.append(Event.occurred_at >= _since(ctx, node.days))
        source = select(Event.contact_id).where(*conditions).group_by(Event.contact_id)
        return _in(source.having(predicate(func.count())))

    # the statement reads the watermark itself, in the snapshot it reads the daily counts in: one read
    # beforehand could be passed by a fold committing in between, and its events would count twice
    watermark = (select(func.coalesce(func.max(EventCountWatermark.last_event_id), 0))
                 .where(EventCountWatermark.workspace_id == w).scalar_subquery())
    daily = [EventDailyCount.workspace_id == w, EventDailyCount.name == node.name]
    newer = base + [Event.id > watermark]
    if ctx.watermark is not None:  # implied (watermarks only grow); it lets the planner see where newer events start
        newer.append(Event.id > literal(ctx.watermark))
    parts = []
    if node.days:
        cutoff = _since(ctx, node.days)
        first_day = cutoff.date()
        daily.append(EventDailyCount.day > first_day)
        newer.append(Event.occurred_at >= cutoff)
        # the window's first day is partial: its folded events are counted from the events themselves
        parts.append(select(Event.contact_id, literal(1).label("n"))
                     .where(*base, Event.id <= watermark, Event.occurred_at >= cutoff,
                            Event.occurred_at < day_start(first_day + timedelta(days=1))))
    parts.append(select(EventDailyCount.contact_id, EventDailyCount.n.label("n")).where(*daily))
    parts.append(select(Event.contact_id, literal(1).label("n")).where(*newer))
    counted = union_all(*parts).subquery("counted")
    # in contact id order, as for RFM (_by_contact): the lookups into contact that follow read neighbouring pages
    source = select(counted.c.contact_id).group_by(counted.c.contact_id).order_by(counted.c.contact_id)
    return _in(source.having(predicate(func.sum(counted.c.n))))


# --- orders -----------------------------------------------------------------------------------------------------


def counted_orders(ctx: Context) -> list[ColumnElement]:
    return of.counted_orders(ctx.workspace_id)


spent = of.spent


def _orders(node: s.OrdersCondition, ctx: Context, path: str) -> ColumnElement:
    window = [Order.placed_at >= _since(ctx, node.days)] if node.days and node.measure != "last_order_at" else []
    if node.measure in ("count", "total_spent"):
        measure = func.count() if node.measure == "count" else func.sum(spent())
        value = None if node.value is None else float(node.value)
        predicate = _compare(node.op, value, node.low, node.high)
        zero_ok = _compare_py(node.op, value, node.low, node.high)(0)
        source = select(Order.contact_id).where(*counted_orders(ctx), *window).group_by(Order.contact_id)
        return _aggregate(source, measure, predicate, zero_ok)

    def any_order(*extra) -> ColumnElement:
        return exists().where(Order.contact_id == Contact.id, *counted_orders(ctx), *extra)

    op = node.op
    if op == "is_set":
        return any_order()
    if op == "is_not_set":
        return not_(any_order())
    if op == "within_last_days":
        return any_order(Order.placed_at >= _since(ctx, node.days))
    if op == "not_within_last_days":
        return and_(any_order(), not_(any_order(Order.placed_at >= _since(ctx, node.days))))
    day = as_date(node.value, f"{path}.value")
    if op == "before":  # the last order was placed before that day
        return and_(any_order(), not_(any_order(Order.placed_at >= day_start(day))))
    return any_order(Order.placed_at >= day_start(day + timedelta(days=1)))  # after that day


def unfolded(ctx: Context):
    """Contacts whose order facts are not folded yet (their orders are read instead)."""
    return of.unfolded_contacts(ctx.workspace_id, marks=ctx.order_marks)


def _bought(node: s.BoughtCondition, ctx: Context, path: str) -> ColumnElement:
    window = [Order.placed_at >= _since(ctx, node.days)] if node.days else []
    line = [OrderLine.workspace_id == ctx.workspace_id, OrderLine.order_id == Order.id, OrderLine.status == "ok"]
    line.append(OrderLine.sku == node.sku if node.sku is not None else OrderLine.category == node.category)
    if not ctx.use_daily_counts:
        return exists().where(Order.contact_id == Contact.id, *counted_orders(ctx), *window, exists().where(*line))
    # folded contacts: the last time they bought it is in the window; the others: from their orders
    kind, value = ("sku", node.sku) if node.sku is not None else ("category", node.category)
    folded = select(OrderBought.contact_id).where(
        OrderBought.workspace_id == ctx.workspace_id, OrderBought.kind == kind, OrderBought.value == value,
        *([OrderBought.last_at >= _since(ctx, node.days)] if node.days else []), OrderBought.contact_id.not_in(unfolded(ctx)))
    fresh = select(Order.contact_id).where(*counted_orders(ctx), *window, Order.contact_id.in_(unfolded(ctx)), exists().where(*line))
    return _in(union_all(folded, fresh))


# --- campaign engagement ------------------------------------------------------------------------------------


def _engagement(node: s.EngagementCondition, ctx: Context, path: str) -> ColumnElement:
    if node.op == "received":
        return exists().where(delivery.c.contact_id == Contact.id, delivery.c.workspace_id == ctx.workspace_id,
                              delivery.c.campaign_id == node.campaign_id, delivery.c.status == "sent")
    conditions = [click.c.contact_id == Contact.id, click.c.workspace_id == ctx.workspace_id]
    if node.campaign_id is not None:
        conditions.append(click.c.campaign_id == node.campaign_id)
    if node.days:
        conditions.append(click.c.clicked_at >= _since(ctx, node.days))
    return exists().where(*conditions)


# --- RFM ----------------------------------------------------------------------------------------------------------


_RFM_FACT = {"recency": "last_order_at", "frequency": "orders", "monetary": "spent"}


def rfm_parts(ctx: Context, dimension: str) -> list[Select]:
    """(contact_id, x) per buyer (a live contact with an order that counts) for one RFM dimension, in parts
    that do not overlap: the order summary for folded contacts and the orders for the others (or the
    orders for all)."""
    name = _RFM_FACT[dimension]
    if not ctx.use_daily_counts:
        facts = of.live_buyer_facts(ctx.workspace_id).subquery("facts")
        return [select(facts.c.contact_id, facts.c[name].label("x"))]
    folded = select(OrderSummary.contact_id, getattr(OrderSummary, name).label("x")).where(
        OrderSummary.workspace_id == ctx.workspace_id, OrderSummary.contact_id.not_in(unfolded(ctx)))
    facts = of.live_buyer_facts(ctx.workspace_id, only=unfolded(ctx)).subquery("facts")
    return [folded, select(facts.c.contact_id, facts.c[name].label("x"))]


def _least(a, b):
    return case((a < b, a), else_=b)


def _quintile_start(n, q: int):
    """Rank (1-based) of the first buyer in quintile q of n, as NTILE(5) splits: the first n % 5 quintiles
    hold one buyer more."""
    return (q - 1) * (n // 5) + _least(literal(q - 1), n % 5) + 1


def _quintile_end(n, q: int):
    return q * (n // 5) + _least(literal(q), n % 5)


def _from_count(ctx: Context, dimension: str, expression) -> ColumnElement:
    """A scalar computed from the number of buyers, never negative: LIMIT and OFFSET take it, and
    PostgreSQL refuses negatives where SQLite would read "no limit". With the state, the number comes
    from the fold's count, corrected for the unfolded contacts, instead of counting 600k rows."""
    if ctx.use_daily_counts:
        n = of.buyers_count(ctx.workspace_id, unfolded=unfolded(ctx)).label("n")
    else:
        n = select(func.count()).select_from(union_all(*rfm_parts(ctx, dimension)).subquery("buyers")).scalar_subquery().label("n")
    # OFFSET 0 keeps PostgreSQL from pasting the count into each of the expression's mentions of n (a
    # dozen copies of three subqueries each, which made a count with unfolded contacts take seconds)
    counted = select(n).offset(0).subquery("counted")
    value = expression(counted.c.n)
    return select(case((value < 0, 0), else_=value)).scalar_subquery()


def _walk_order(columns, descending: bool) -> list:
    return [columns.x.desc(), columns.contact_id.desc()] if descending else [columns.x, columns.contact_id]


def _rfm(node: s.RfmCondition, ctx: Context, path: str) -> ColumnElement:
    """Quintile low–high of a dimension, exactly as NTILE(5) OVER (ORDER BY x, contact_id) would give,
    without ranking everyone: the members are a run of consecutive buyers in that order, read with
    ORDER BY … OFFSET/LIMIT from whichever end is nearer. The run can only hold the first skip + length
    buyers of each part, so the order summary's part is cut there first: an index walk over (measure,
    contact id), and only that many rows (plus the few unfolded buyers) are sorted."""
    low, high, dim = node.low, node.high, node.dimension
    parts = rfm_parts(ctx, dim)
    if low == 1 and high == 5:
        return _in(select(union_all(*parts).subquery("buyers").c.contact_id))
    descending = (6 - low) < high  # fewer buyers to walk from the top
    if descending:
        def skip(n):
            return n - _quintile_end(n, high)
    else:
        def skip(n):
            return _quintile_start(n, low) - 1

    def length(n):
        return _quintile_end(n, high) - _quintile_start(n, low) + 1

    first, *rest = parts
    cut = first.order_by(*_walk_order(first.selected_columns, descending)).limit(_from_count(ctx, dim, lambda n: skip(n) + length(n)))
    walk = union_all(cut.subquery("cut").select(), *rest).subquery("walk") if rest else cut.subquery("walk")
    run = select(walk.c.contact_id).order_by(*_walk_order(walk.c, descending))
    if not ((descending and high == 5) or (not descending and low == 1)):  # else the run starts at the walk's start
        run = run.offset(_from_count(ctx, dim, skip))
    return _in(_by_contact(run.limit(_from_count(ctx, dim, length))))


def _by_contact(ids: Select) -> Select:
    """The same ids, in contact id order. A no-op for the result; for the plan it matters: the run comes in
    measure order (random in id), and PostgreSQL, unable to estimate its size behind the LIMIT, joins it to
    contact, consent … by index lookups — in id order those read neighbouring pages (2–3× faster at 1M
    contacts on this machine)."""
    run = ids.subquery("run")
    return select(run.c.contact_id).group_by(run.c.contact_id).order_by(run.c.contact_id)


# --- other segments ----------------------------------------------------------------------------------------------


def _segment(node: s.SegmentRef, ctx: Context, path: str) -> ColumnElement:
    if node.segment_id in ctx._stack:
        raise InvalidInput(f"{path}.segment_id: segment {node.segment_id} refers back to itself", field=f"{path}.segment_id")
    if ctx.db is None:  # no session to read its rules: its members as of its last refresh
        inside = exists().where(SegmentMember.segment_id == node.segment_id, SegmentMember.contact_id == Contact.id,
                                SegmentMember.workspace_id == ctx.workspace_id)
    else:
        stored = ctx.db.scalar(select(Segment.rules).where(Segment.id == node.segment_id, Segment.workspace_id == ctx.workspace_id))
        if stored is None:
            raise NotFound(f"{path}.segment_id: no segment {node.segment_id} in this workspace", field=f"{path}.segment_id")
        inner = Context(workspace_id=ctx.workspace_id, now=ctx.now, attribute_types=ctx.attribute_types, db=ctx.db,
                        use_daily_counts=ctx.use_daily_counts, watermark=ctx.watermark, order_marks=ctx.order_marks,
                        _stack=(*ctx._stack, node.segment_id))
        inside = group(s.parse(stored).root, inner, path)
    return inside if node.op == "in" else not_(inside)


_HANDLERS = {
    "attribute": _attribute, "identity": _identity, "reachable": _reachable, "consent": _consent, "tag": _tag,
    "event": _event, "orders": _orders, "bought": _bought, "engagement": _engagement, "rfm": _rfm, "segment": _segment,
}
