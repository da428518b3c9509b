"""Building blocks of every part's API shapes: bounded ids, safe text, JSON objects, cursors, errors.

Each type here refuses, with a 422 that names the field, input the database would otherwise choke on
(ids beyond 64 bits, NUL characters PostgreSQL cannot store, NaN in JSON, naive datetimes), so no
request can reach the database in a form that ends in a 500.
"""

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tutti.platform.errors import InvalidInput

MAX_ID = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: both 64-bit signed
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def Text(max_length: int, min_length: int = 0) -> Any:
    """A string of bounded length without NUL characters."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_no_nul)]


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def QueryText(max_length: int, description: str | None = None, alias: str | None = None) -> Any:
    """An optional query parameter of bounded length without NUL characters."""
    return Annotated[str | None, Query(max_length=max_length, description=description, alias=alias), AfterValidator(_no_nul)]


def QueryItem(max_length: int) -> Any:
    """One value of a repeatable query parameter: bounded, without NUL characters."""
    return Annotated[str, Query(max_length=max_length), AfterValidator(_no_nul)]


def PathText(max_length: int) -> Any:
    return Annotated[str, Path(min_length=1, max_length=max_length), AfterValidator(_no_nul)]


def _check_json(value: dict) -> dict:
    """JSON both engines can store: no NUL, finite numbers, bounded depth and size."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                _no_nul(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or Infinity")
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode())
    except (TypeError, ValueError) as error:
        raise ValueError(f"is not JSON: {error}") from None
    if size > MAX_JSON_BYTES:
        raise ValueError(f"is larger than {MAX_JSON_BYTES // 1024} KB")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range") from None


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]


class Body(BaseModel):
    """A request body: unknown fields are refused, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- cursors ---------------------------------------------------------------------------------------


def encode_cursor(position: int | str) -> str:
    return base64.urlsafe_b64encode(f"v1:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, kind: type = int) -> Any:
    """The position inside an opaque cursor this API gave out; anything else is a 422 on `cursor`."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("v1:"):
            raise ValueError
        position = text[3:]
        if kind is int:
            number = int(position)
            if not 1 <= number <= MAX_ID:
                raise ValueError
            return number
        if kind is datetime:
            return _to_utc(datetime.fromisoformat(position))
        return position
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput("cursor is not one this API gave out; pass next_cursor from the previous page", field="cursor") from None


# --- errors ----------------------------------------------------------------------------------------


class ErrorProblem(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(examples=["invalid"])
    message: str = Field(examples=["email: 'mei@' is not an e-mail address"])
    field: str | None = Field(default=None, examples=["identities.email"])
    details: list[ErrorProblem] | dict | list | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


def _error(description: str) -> dict:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict] = {
    401: _error("No API key, or a revoked one"),
    403: _error("The key's role may not do this"),
    404: _error("Not found in this workspace"),
    422: _error("Invalid input; `error.field` names the field"),
}
