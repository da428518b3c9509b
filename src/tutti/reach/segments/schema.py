"""The rule tree of a segment: a JSON document with a schema (pydantic), stored as is and versioned.

A tree is a group (`and` / `or`, optionally negated — NOT) of conditions and groups, nested. Every
condition has a `kind`; the fields it takes depend on the kind. Time windows are always relative ("in
the last N days") so a stored segment means the same thing tomorrow. Validation errors name the place in
the tree as a path (`rules.children[2].days`), so the UI can point at the wrong box.

Version 1 is the only version; `version` is stored so later shapes can be migrated when read.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tutti.platform.errors import InvalidInput

VERSION = 1
MAX_DEPTH = 6
MAX_CONDITIONS = 60

IDENTITY_KINDS = ("external_id", "line_uid", "email", "phone", "anonymous_id")
CHANNELS = ("line", "email", "sms")
CONSENT_STATUSES = ("subscribed", "unsubscribed", "blocked", "bounced")
# built-in profile fields and their types (custom attributes take theirs from attribute_definition)
BUILTIN_FIELDS = {
    "name": "string", "gender": "string", "locale": "string", "timezone": "string", "city": "string",
    "birthday": "date", "created_at": "datetime", "last_seen_at": "datetime",
}
ATTRIBUTE_TYPES = ("string", "number", "boolean", "date", "datetime", "list")
# which operators each attribute type understands
OPERATORS_BY_TYPE = {
    "string": ("equals", "not_equals", "in", "not_in", "contains", "is_set", "is_not_set"),
    "number": ("equals", "not_equals", "in", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    "boolean": ("equals", "is_set", "is_not_set"),
    "date": ("equals", "before", "after", "between", "within_last_days", "not_within_last_days", "is_set", "is_not_set"),
    "datetime": ("before", "after", "between", "within_last_days", "not_within_last_days", "is_set", "is_not_set"),
    "list": ("contains", "not_contains", "is_set", "is_not_set"),
}
AttributeOp = Literal["equals", "not_equals", "in", "not_in", "contains", "not_contains", "gt", "gte", "lt", "lte",
                      "between", "before", "after", "within_last_days", "not_within_last_days", "is_set", "is_not_set"]
PROPERTY_RE = re.compile(r'^[^"\\$\[\]*]{1,100}$')  # usable in a JSON path on both engines

Scalar = bool | int | float | str
Days = Annotated[int, Field(ge=1, le=3650)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertyFilter(_Node):
    """A filter on an event's JSON properties, e.g. {"property": "category", "op": "equals", "value": "保養"}."""

    property: str
    op: Literal["equals", "not_equals", "in", "gt", "gte", "lt", "lte", "contains", "is_set"]
    value: Scalar | list[Scalar] | None = None

    @field_validator("property")
    @classmethod
    def _property(cls, value: str) -> str:
        if not PROPERTY_RE.match(value):
            raise ValueError("a property name has 1 to 100 characters and no quotes, backslashes, $, [, ] or *")
        return value

    @model_validator(mode="after")
    def _value(self):
        if self.op == "is_set":
            return self
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("'in' needs a non-empty list in value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"'{self.op}' needs one value")
        if self.op in ("gt", "gte", "lt", "lte") and (isinstance(self.value, bool) or not isinstance(self.value, (int, float))):
            raise ValueError(f"'{self.op}' compares numbers; value must be a number")
        if self.op == "contains" and not isinstance(self.value, str):
            raise ValueError("'contains' needs a text value")
        return self


class Attribute(_Node):
    """A profile field (name, gender, city, birthday, created_at, …) or a custom typed attribute."""

    kind: Literal["attribute"] = "attribute"
    field: str = Field(min_length=1, max_length=64)
    op: AttributeOp
    value: Scalar | None = None
    values: list[Scalar] | None = None  # for in / not_in
    low: Scalar | None = None  # for between (inclusive)
    high: Scalar | None = None
    days: Days | None = None  # for within_last_days
    type: Literal["string", "number", "boolean", "date", "datetime", "list"] | None = None  # filled from the definition

    @model_validator(mode="after")
    def _shape(self):
        if self.op in ("in", "not_in") and not self.values:
            raise ValueError(f"'{self.op}' needs a non-empty list in values")
        if self.op == "between" and (self.low is None or self.high is None):
            raise ValueError("'between' needs low and high")
        if self.op in ("within_last_days", "not_within_last_days") and self.days is None:
            raise ValueError(f"'{self.op}' needs days")
        if self.op in ("equals", "not_equals", "contains", "not_contains", "gt", "gte", "lt", "lte", "before", "after") and self.value is None:
            raise ValueError(f"'{self.op}' needs a value")
        return self


class IdentityPresent(_Node):
    """The contact has (or has not) an identity of this kind: "has LINE" is line_uid present."""

    kind: Literal["identity"] = "identity"
    identity: Literal["external_id", "line_uid", "email", "phone", "anonymous_id"]
    present: bool = True


class Reachable(_Node):
    """Can be messaged on the channel: subscribed there (LINE: follows; not unsubscribed, blocked or
    bounced) and holding the identity the channel sends to (line_uid, email, phone)."""

    kind: Literal["reachable"] = "reachable"
    channel: Literal["line", "email", "sms"]
    value: bool = True


class ConsentIs(_Node):
    """The consent status on a channel is one of these (no row at all is status "none")."""

    kind: Literal["consent"] = "consent"
    channel: Literal["line", "email", "sms"]
    statuses: list[Literal["subscribed", "unsubscribed", "blocked", "bounced", "none"]] = Field(min_length=1)


class TagCondition(_Node):
    """has / has_not the tag now (unexpired); or it was applied at least `times` times in the last `days`."""

    kind: Literal["tag"] = "tag"
    tag: str = Field(min_length=1, max_length=100)
    op: Literal["has", "has_not", "applied_at_least"] = "has"
    times: int | None = Field(default=None, ge=1, le=10000)
    days: Days | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.op == "applied_at_least" and self.times is None:
            raise ValueError("'applied_at_least' needs times")
        return self


class EventCondition(_Node):
    """Performed / not performed the event, or at least / at most `times` times, in the last `days` (or
    ever), counting only events whose properties pass every filter in `where`."""

    kind: Literal["event"] = "event"
    name: str = Field(min_length=1, max_length=200)
    op: Literal["performed", "not_performed", "at_least", "at_most"] = "performed"
    times: int | None = Field(default=None, ge=0, le=100000)
    days: Days | None = None
    where: list[PropertyFilter] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _shape(self):
        if self.op in ("at_least", "at_most") and self.times is None:
            raise ValueError(f"'{self.op}' needs times")
        return self


class OrdersCondition(_Node):
    """Orders that count (not cancelled, not fully refunded): their number or the money spent (total
    minus refunds), in the last `days` or ever, compared with value; or when the last one was placed."""

    kind: Literal["orders"] = "orders"
    measure: Literal["count", "total_spent", "last_order_at"]
    op: Literal["equals", "gt", "gte", "lt", "lte", "between", "before", "after", "within_last_days",
                "not_within_last_days", "is_set", "is_not_set"]
    value: float | str | None = None
    low: float | None = None
    high: float | None = None
    days: Days | None = None

    @model_validator(mode="after")
    def _shape(self):
        numeric = ("equals", "gt", "gte", "lt", "lte", "between")
        timed = ("before", "after", "within_last_days", "not_within_last_days", "is_set", "is_not_set")
        if self.measure in ("count", "total_spent"):
            if self.op not in numeric:
                raise ValueError(f"'{self.measure}' takes one of {', '.join(numeric)}")
            if self.op == "between":
                if self.low is None or self.high is None:
                    raise ValueError("'between' needs low and high")
            elif not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
                raise ValueError(f"'{self.op}' needs a number in value")
        else:
            if self.op not in timed:
                raise ValueError(f"'last_order_at' takes one of {', '.join(timed)}")
            if self.op in ("within_last_days", "not_within_last_days") and self.days is None:
                raise ValueError(f"'{self.op}' needs days")
            if self.op in ("before", "after"):
                _as_datetime(self.value)
        return self


class BoughtCondition(_Node):
    """Bought (in an order that counts, on a line not refunded) a product by sku or any product of a
    category, in the last `days` or ever."""

    kind: Literal["bought"] = "bought"
    sku: str | None = Field(default=None, max_length=100)
    category: str | None = Field(default=None, max_length=200)
    days: Days | None = None

    @model_validator(mode="after")
    def _shape(self):
        if (self.sku is None) == (self.category is None):
            raise ValueError("give either sku or category")
        return self


class EngagementCondition(_Node):
    """Campaign engagement: received (a sent delivery of) campaign X, clicked a link of campaign X,
    or clicked anything in the last `days`."""

    kind: Literal["engagement"] = "engagement"
    op: Literal["received", "clicked", "clicked_any"]
    campaign_id: int | None = None
    days: Days | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.op in ("received", "clicked") and self.campaign_id is None:
            raise ValueError(f"'{self.op}' needs campaign_id")
        if self.op == "clicked_any" and self.days is None:
            raise ValueError("'clicked_any' needs days")
        return self


class RfmCondition(_Node):
    """Recency, frequency or monetary quintile, 1 (lowest) to 5 (best: most recent, most orders, most
    spent), computed over the workspace's buyers with NTILE(5); people who never bought have none."""

    kind: Literal["rfm"] = "rfm"
    dimension: Literal["recency", "frequency", "monetary"]
    low: int = Field(ge=1, le=5)
    high: int = Field(ge=1, le=5)

    @model_validator(mode="after")
    def _shape(self):
        if self.low > self.high:
            raise ValueError("low must not be above high")
        return self


class SegmentRef(_Node):
    """In (or not in) another segment, evaluated by that segment's rules: exclusion segments."""

    kind: Literal["segment"] = "segment"
    segment_id: int
    op: Literal["in", "not_in"] = "in"


Condition = Annotated[
    Attribute | IdentityPresent | Reachable | ConsentIs | TagCondition | EventCondition | OrdersCondition | BoughtCondition | EngagementCondition | RfmCondition | SegmentRef,
    Field(discriminator="kind"),
]


class Group(_Node):
    kind: Literal["group"] = "group"
    op: Literal["and", "or"] = "and"
    negate: bool = False  # NOT (…)
    children: list[Annotated[Group | Condition, Field(discriminator="kind")]] = Field(default_factory=list)


class Rules(_Node):
    version: Literal[1] = VERSION
    root: Group


Node = (Group | Attribute | IdentityPresent | Reachable | ConsentIs | TagCondition | EventCondition | OrdersCondition
        | BoughtCondition | EngagementCondition | RfmCondition | SegmentRef)


def _as_datetime(value: Any) -> datetime:
    from datetime import UTC

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"'{value}' is not a date (use YYYY-MM-DD)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _path(loc: tuple) -> str:
    """pydantic's location as a path into the stored JSON: rules.children[2].days (union tags dropped)."""
    out = "rules"
    parts = list(loc)
    if parts and parts[0] == "root":
        parts = parts[1:]
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("group", "attribute", "identity", "reachable", "consent", "tag", "event", "orders", "bought",
                      "engagement", "rfm", "segment") and not out.endswith(part):
            continue  # the discriminator pydantic inserts, not a key of the document
        else:
            out += f".{part}"
    return out


def parse(data: Any) -> Rules:
    """Rules from stored/received JSON. Accepts the document ({"version", "root"}) or a bare group.
    Raises InvalidInput whose field is the path of the first problem; details list all of them."""
    if isinstance(data, Rules):
        return data
    if isinstance(data, dict) and "root" not in data and data.get("kind", "group") == "group":
        data = {"version": VERSION, "root": data}
    try:
        rules = Rules.model_validate(data)
    except ValidationError as error:
        problems = [{"field": _path(e["loc"]), "message": e["msg"].removeprefix("Value error, ")} for e in error.errors()]
        first = problems[0]
        raise InvalidInput(f"{first['field']}: {first['message']}", field=first["field"], details=problems) from None
    _check_size(rules.root, "rules", 1, [0])
    return rules


def _check_size(group: Group, path: str, depth: int, count: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{path}: groups nest at most {MAX_DEPTH} deep", field=path)
    for index, child in enumerate(group.children):
        here = f"{path}.children[{index}]"
        if isinstance(child, Group):
            _check_size(child, here, depth + 1, count)
        else:
            count[0] += 1
            if count[0] > MAX_CONDITIONS:
                raise InvalidInput(f"{here}: a segment has at most {MAX_CONDITIONS} conditions", field=here)


def dump(rules: Rules) -> dict:
    """The JSON document to store (None fields left out, so stored trees stay small and readable)."""
    return rules.model_dump(mode="json", exclude_none=True)


def walk(group: Group, path: str = "rules"):
    """Every condition with its path, depth first."""
    for index, child in enumerate(group.children):
        here = f"{path}.children[{index}]"
        if isinstance(child, Group):
            yield from walk(child, here)
        else:
            yield here, child


def json_schema() -> dict:
    """The JSON schema of a rule document (for the API docs and the LLM's structured output)."""
    return Rules.model_json_schema()
