"""Checking every row of a file against a mapping, without writing anything: the records to write and the
errors of the rows to skip. Pure: the same file, mapping and settings give the same answer."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tutti.audience import commerce, tags
from tutti.audience.filereader import Table
from tutti.audience.imports.dates import parse_date, parse_datetime
from tutti.audience.imports.fields import (
    ATTRIBUTE_PREFIX,
    EXCLUSIVE,
    IGNORE,
    MEMBER_IDENTITY_FIELDS,
    ORDER_IDENTITY_FIELDS,
)
from tutti.audience.imports.reasons import RowError, _reason
from tutti.audience.imports.values import (
    _coerce_attribute,
    _identity,
    _infer_column_type,
    _limited,
    _text,
    parse_channel,
    parse_consent,
    parse_currency,
    parse_gender,
    parse_money,
    parse_quantity,
    parse_status,
)
from tutti.audience.models import IDENTITY_KINDS


@dataclass
class MemberRecord:
    identities: list[tuple[str, str]]
    profile: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    consents: dict[str, str] = field(default_factory=dict)


@dataclass
class OrderRecord:
    order_id: str
    first_index: int
    first_row: int
    identities: list[tuple[str, str]] = field(default_factory=list)
    values: dict = field(default_factory=dict)  # order-level fields: placed_at, total, status, currency, channel
    value_rows: dict = field(default_factory=dict)  # field -> (row number, raw value) it came from
    properties: dict = field(default_factory=dict)
    lines: list[commerce.NewOrderLine] = field(default_factory=list)
    line_rows: dict = field(default_factory=dict)  # line key -> row number
    indexes: list[int] = field(default_factory=list)


@dataclass
class Settings:
    region: str = "TW"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Taipei"))
    currency: str = "TWD"
    attribute_types: dict[str, str] = field(default_factory=dict)  # declared attributes of the workspace


@dataclass
class Validation:
    kind: str
    total_rows: int
    records: dict[int, Any] = field(default_factory=dict)  # data row index -> MemberRecord (members) or order id
    errors: dict[int, list[dict]] = field(default_factory=dict)  # data row index -> errors
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    attribute_types: dict[str, str] = field(default_factory=dict)  # types of this file's attribute columns
    sample: list[dict] = field(default_factory=list)

    @property
    def error_rows(self) -> int:
        return len(self.errors)

    @property
    def ok_rows(self) -> int:
        return self.total_rows - len(self.errors)

    def error_list(self, start: int = 0, end: int | None = None) -> list[dict]:
        end = self.total_rows if end is None else end
        return [e for index in sorted(self.errors) if start <= index < end for e in self.errors[index]]


def _json_value(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def validate(table: Table, mapping: dict[str, str], kind: str, settings: Settings, *, sample_size: int = 20) -> Validation:
    """Check every row against the mapping. Pure: the same file, mapping and settings give the same answer."""
    columns = [(table.headers.index(h), h, f) for h, f in mapping.items() if f != IGNORE and h in table.headers]
    result = Validation(kind=kind, total_rows=table.total_rows)
    for position, header, target in columns:
        if target.startswith(ATTRIBUTE_PREFIX):
            key = target[len(ATTRIBUTE_PREFIX):]
            result.attribute_types[key] = settings.attribute_types.get(key) or _infer_column_type([c[position] for _, c in table.rows])

    def fail(index: int, row: int, header: str | None, error: RowError) -> None:
        english, chinese = _reason(error.code, **error.params)
        result.errors.setdefault(index, []).append(
            {"row": row, "column": header, "code": error.code, "reason": english, "reason_zh": chinese})

    (_validate_members if kind == "members" else _validate_orders)(table, columns, settings, result, fail)
    for index, (row, _) in enumerate(table.rows[:sample_size]):
        record = result.records.get(index)
        values: dict = {}
        if isinstance(record, MemberRecord):
            values = {kind_: value for kind_, value in record.identities}
            values.update({k: _json_value(v) for k, v in record.profile.items()})
            values.update({f"{ATTRIBUTE_PREFIX}{k}": v for k, v in record.attributes.items()})
            if record.tags:
                values["tags"] = record.tags
            values.update({f"consent_{c}": s for c, s in record.consents.items()})
        elif isinstance(record, tuple):
            values = record[1]
        result.sample.append({"row": row, "ok": index not in result.errors, "values": values,
                              "errors": result.errors.get(index, [])})
    return result


def _validate_members(table: Table, columns, settings: Settings, result: Validation, fail) -> None:
    identity_headers = ", ".join(h for _, h, f in columns if f in MEMBER_IDENTITY_FIELDS) or None
    seen: dict[tuple[str, str], tuple[int, dict]] = {}  # identity -> (row, exclusive identities of that row)
    for index, (row, cells) in enumerate(table.rows):
        record = MemberRecord(identities=[])
        header_of: dict[str, str] = {}
        bad = False
        for position, header, target in columns:
            value = cells[position]
            if not _text(value):
                continue
            try:
                if target in MEMBER_IDENTITY_FIELDS:
                    record.identities.append((target, _identity(target, value, settings.region)))
                    header_of[target] = header
                elif target == "name":
                    record.profile["name"] = _limited(value, 200)
                elif target == "city":
                    record.profile["city"] = _limited(value, 100)
                elif target == "locale":
                    record.profile["locale"] = _limited(value, 16)
                elif target == "gender":
                    record.profile["gender"] = parse_gender(value)
                elif target == "birthday":
                    born = parse_date(value)
                    if not date(1900, 1, 1) <= born <= date.today():
                        raise RowError("bad_birthday", value=value)
                    record.profile["birthday"] = born
                elif target == "tags":
                    for name in re.split(r"[,，、;；|]", _text(value)):
                        name = name.strip()
                        if len(name) > tags.MAX_TAG_LENGTH:
                            raise RowError("bad_tag", value=name)
                        if name and name not in record.tags:
                            record.tags.append(name)
                elif target.startswith("consent_"):
                    channel = target[len("consent_"):]
                    record.consents[channel] = parse_consent(value, channel)
                elif target.startswith(ATTRIBUTE_PREFIX):
                    key = target[len(ATTRIBUTE_PREFIX):]
                    record.attributes[key] = _coerce_attribute(value, result.attribute_types[key], key)
            except RowError as error:
                fail(index, row, header, error)
                bad = True
        if bad:
            continue
        if not record.identities:
            fail(index, row, identity_headers, RowError("no_identity"))
            continue
        record.identities.sort(key=lambda pair: IDENTITY_KINDS.index(pair[0]))
        exclusive = {k: v for k, v in record.identities if k in EXCLUSIVE}
        duplicate = None
        for pair in record.identities:
            if pair in seen:
                other_row, other_exclusive = seen[pair]
                if all(other_exclusive.get(k, v) == v for k, v in exclusive.items()):
                    duplicate = (pair, other_row)
                    break
        if duplicate:
            (kind, _), other_row = duplicate
            fail(index, row, header_of[kind], RowError("duplicate", kind=kind, other=other_row))
            continue
        for pair in record.identities:
            seen.setdefault(pair, (row, exclusive))
        result.records[index] = record


def _validate_orders(table: Table, columns, settings: Settings, result: Validation, fail) -> None:
    order_header = next(h for _, h, f in columns if f == "order_id")
    header_of = {f: h for _, h, f in columns}
    for index, (row, cells) in enumerate(table.rows):
        values: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        identities: list[tuple[str, str]] = []
        properties: dict = {}
        bad = False
        for position, header, target in columns:
            value = cells[position]
            if not _text(value):
                continue
            raw[target] = _text(value)
            try:
                if target == "order_id":
                    values["order_id"] = _limited(value, 100)
                elif target in ORDER_IDENTITY_FIELDS:
                    identities.append((target, _identity(target, value, settings.region)))
                elif target == "placed_at":
                    values["placed_at"] = parse_datetime(value, settings.zone)
                elif target in ("total", "unit_price"):
                    values[target] = parse_money(value)
                elif target == "quantity":
                    values["quantity"] = parse_quantity(value)
                elif target == "status":
                    values["status"] = parse_status(value)
                elif target == "currency":
                    values["currency"] = parse_currency(value)
                elif target == "channel":
                    values["channel"] = parse_channel(value)
                elif target == "sku":
                    values["sku"] = _limited(value, 100)
                elif target == "product_name":
                    values["product_name"] = _limited(value, 300)
                elif target == "category":
                    values["category"] = _limited(value, 200)
                elif target.startswith(ATTRIBUTE_PREFIX):
                    key = target[len(ATTRIBUTE_PREFIX):]
                    properties[key] = _coerce_attribute(value, result.attribute_types[key], key)
            except RowError as error:
                fail(index, row, header, error)
                bad = True
        if "order_id" not in values and not bad:
            fail(index, row, order_header, RowError("missing_order_id"))
            continue
        if bad:
            continue
        identities.sort(key=lambda pair: IDENTITY_KINDS.index(pair[0]))
        order_id = values["order_id"]
        order = result.orders.get(order_id)
        if order is None:
            order = result.orders[order_id] = OrderRecord(order_id=order_id, first_index=index, first_row=row)
        # order-level values may be repeated on every line or written on the first line only; never different
        conflict = None
        if identities and order.identities and identities != order.identities:
            differing = next((k for k, v in identities if dict(order.identities).get(k, v) != v), identities[0][0])
            conflict = (differing, raw.get(differing), order.value_rows.get("identities", (order.first_row, ""))[1],
                        order.value_rows.get("identities", (order.first_row,))[0])
        for key in ("placed_at", "total", "status", "currency", "channel"):
            if conflict is None and key in values and key in order.values and values[key] != order.values[key]:
                conflict = (key, raw.get(key), order.value_rows[key][1], order.value_rows[key][0])
        if conflict:
            key, value, earlier, other_row = conflict
            fail(index, row, header_of.get(key), RowError("order_conflict", value=value, earlier=earlier, other=other_row))
            continue
        line_key = (values.get("sku"), values.get("product_name"), values.get("quantity"), values.get("unit_price"))
        has_line = bool(values.get("sku") or values.get("product_name"))
        if has_line and line_key in order.line_rows or (not has_line and order.indexes):
            other = order.line_rows.get(line_key, order.first_row)
            fail(index, row, order_header if not has_line else header_of.get("sku") or header_of.get("product_name"),
                 RowError("duplicate_line", other=other))
            continue
        if identities and not order.identities:
            order.identities = identities
            order.value_rows["identities"] = (row, ", ".join(v for _, v in identities))
        for key in ("placed_at", "total", "status", "currency", "channel"):
            if key in values and key not in order.values:
                order.values[key] = values[key]
                order.value_rows[key] = (row, raw.get(key))
        order.properties.update({k: v for k, v in properties.items() if k not in order.properties})
        if has_line:
            order.lines.append(commerce.NewOrderLine(sku=values.get("sku"), name=values.get("product_name"),
                                                     category=values.get("category"), quantity=values.get("quantity", 1),
                                                     unit_price=values.get("unit_price", 0.0)))
            order.line_rows[line_key] = row
        order.indexes.append(index)
        result.records[index] = (order_id, {k: _json_value(v) for k, v in {**dict(identities), **values}.items()})
    # an order is complete only with a customer, a date and an amount; otherwise all its rows are skipped
    for order in result.orders.values():
        problem = None
        if not order.identities:
            problem = (header_of.get("external_id") or header_of.get("email") or header_of.get("phone"), "missing_customer")
        elif "placed_at" not in order.values:
            problem = (header_of.get("placed_at"), "missing_date")
        elif "total" not in order.values and not any(line.unit_price for line in order.lines):
            problem = (header_of.get("total") or header_of.get("unit_price"), "missing_total")
        if problem:
            column, code = problem
            for index in order.indexes:
                fail(index, table.rows[index][0], column, RowError(code, order=order.order_id))
                result.records.pop(index, None)
            order.indexes = []
