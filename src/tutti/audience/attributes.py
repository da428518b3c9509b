"""Typed custom attributes: declared per workspace, validated on every write.

An attribute written for the first time is declared with the type its value suggests (as Braze does),
so the tracking API never loses a trait; from then on values must fit the declared type.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.audience.models import ATTRIBUTE_TYPES, BUILTIN_ATTRIBUTES, AttributeDefinition
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.errors import Conflict, InvalidInput

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
GENDERS = {"female": "female", "f": "female", "女": "female", "male": "male", "m": "male", "男": "male", "other": "other"}
PROFILE_FIELDS = BUILTIN_ATTRIBUTES
MAX_EXACT_INTEGER = 2**53


def check_key(key: str) -> str:
    if not KEY_RE.match(key):
        raise InvalidInput(f"'{key}' is not a valid attribute key (letters, digits and _, up to 64)", field="key")
    if key in BUILTIN_ATTRIBUTES:
        raise Conflict(f"'{key}' is a built-in attribute", field="key")
    return key


def infer_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, (date, datetime)) or (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        return "date"
    return "string"


def parse_date(value: object, *, field: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip().replace("/", "-")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidInput(f"{field}: '{value}' is not a date (use YYYY-MM-DD)", field=field) from None


def coerce(value: object, type_: str, *, key: str) -> object:
    """The stored form of a value of the declared type; JSON-friendly (dates as ISO strings, which sort)."""
    if value is None:
        return None
    if type_ == "string":
        if isinstance(value, (dict, list)):
            raise InvalidInput(f"attribute '{key}' is a string, got {type(value).__name__}", field=key)
        return str(value)
    if type_ == "number":
        if isinstance(value, bool):
            raise InvalidInput(f"attribute '{key}' is a number, got a boolean", field=key)
        try:
            number = float(str(value).replace(",", "")) if not isinstance(value, (int, float)) else value
        except ValueError:
            raise InvalidInput(f"attribute '{key}' is a number, got '{value}'", field=key) from None
        try:
            finite = math.isfinite(float(number))
        except OverflowError:
            finite = False
        if not finite:  # JSON in both databases has no NaN or Infinity
            raise InvalidInput(f"attribute '{key}' is a number, got '{value}'", field=key)
        # whole numbers stay integers while exact in JSON readers (2**53); beyond that a number is a double
        if float(number).is_integer() and abs(number) <= MAX_EXACT_INTEGER:
            return int(number)
        return float(number)
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "1", "yes", "y", "是", "t"}:
            return True
        if text in {"false", "0", "no", "n", "否", "f"}:
            return False
        raise InvalidInput(f"attribute '{key}' is a boolean, got '{value}'", field=key)
    if type_ == "date":
        return parse_date(value, field=key).isoformat()
    if type_ == "list":
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]
    raise InvalidInput(f"unknown attribute type '{type_}'", field=key)


def definitions(db: Session, *, workspace_id: int) -> dict[str, AttributeDefinition]:
    rows = db.scalars(select(AttributeDefinition).where(AttributeDefinition.workspace_id == workspace_id))
    return {row.key: row for row in rows}


def declare(db: Session, *, workspace_id: int, key: str, type_: str, label: str = "", actor: Actor | None = None) -> AttributeDefinition:
    check_key(key)
    if type_ not in ATTRIBUTE_TYPES:
        raise InvalidInput(f"unknown attribute type '{type_}'; use one of {', '.join(ATTRIBUTE_TYPES)}", field="type")
    existing = db.scalar(select(AttributeDefinition).where(AttributeDefinition.workspace_id == workspace_id, AttributeDefinition.key == key))
    if existing is not None:
        if existing.type != type_:
            raise Conflict(f"attribute '{key}' is declared as {existing.type} already", field="key")
        if label:
            existing.label = label
        return existing
    definition = AttributeDefinition(workspace_id=workspace_id, key=key, type=type_, label=label or key)
    db.add(definition)
    db.flush()
    if actor is not None:
        audit.record(db, workspace_id=workspace_id, actor=actor, action="attribute.declare", target_kind="attribute", target_id=key, detail={"type": type_})
    return definition


def validate(db: Session, *, workspace_id: int, values: dict, known: dict[str, AttributeDefinition] | None = None) -> dict:
    """Custom attribute values in their stored form, declaring new keys by their values' type."""
    known = definitions(db, workspace_id=workspace_id) if known is None else known
    clean = {}
    for key, value in values.items():
        if key not in known:
            if value is None:
                continue
            known[key] = declare(db, workspace_id=workspace_id, key=key, type_=infer_type(value))
        clean[key] = coerce(value, known[key].type, key=key)
    return clean


def validate_profile(values: dict) -> dict:
    """The built-in fields (name, gender, birthday, locale, timezone, city) in their stored form."""
    clean: dict = {}
    for key, value in values.items():
        if key not in PROFILE_FIELDS:
            raise InvalidInput(f"'{key}' is not a built-in attribute", field=key)
        if value is None or (isinstance(value, str) and not value.strip()):
            clean[key] = None
        elif key == "birthday":
            clean[key] = parse_date(value, field="birthday")
        elif key == "gender":
            gender = GENDERS.get(str(value).strip().lower())
            if gender is None:
                raise InvalidInput(f"gender: '{value}' is not one of female, male, other", field="gender")
            clean[key] = gender
        else:
            clean[key] = str(value).strip()[:200]
    return clean
