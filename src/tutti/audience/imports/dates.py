"""Dates and times in a cell, as people and Excel write them (ISO, slashes, 年月日, ROC years, Excel serials)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tutti.audience.identities import halfwidth
from tutti.audience.imports.reasons import RowError

_EXCEL_EPOCH = date(1899, 12, 30)
_TIME = r"(?:\s*(?:T|\s)\s*(?P<ampm1>上午|下午|am|pm)?\s*(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?\s*(?P<ampm2>am|pm|上午|下午)?\s*(?P<tz>z|[+-]\d{2}:?\d{2})?)?"
_YMD = re.compile(r"^(?P<roc>民國|民国)?\s*(?P<y>\d{2,4})\s*(?:年|/|-|\.)\s*(?P<m>\d{1,2})\s*(?:月|/|-|\.)\s*(?P<d>\d{1,2})\s*日?" + _TIME + r"$", re.I)
_MDY = re.compile(r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})" + _TIME + r"$", re.I)
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")


@dataclass(frozen=True)
class _When:
    day: date
    clock: time | None = None
    offset: timedelta | None = None


def _time_of(match: re.Match) -> tuple[time | None, timedelta | None]:
    if match.group("H") is None:
        return None, None
    hour, minute, second = int(match.group("H")), int(match.group("M")), int(match.group("S") or 0)
    marker = (match.group("ampm1") or match.group("ampm2") or "").lower()
    if marker in ("pm", "下午") and hour < 12:
        hour += 12
    elif marker in ("am", "上午") and hour == 12:
        hour = 0
    clock = time(hour, minute, second)
    zone = (match.group("tz") or "").lower()
    offset = None
    if zone == "z":
        offset = timedelta(0)
    elif zone:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:])) * (1 if zone[0] == "+" else -1)
    return clock, offset


def _parse_when(value: Any) -> _When:
    """Dates as people and Excel write them: 1990-01-05, 1990/1/5, 1990年1月5日, 民國79年1月5日, 079/01/05,
    19900105, Excel serial numbers (33243), 1/25/1990 when the order is unambiguous; with an optional time."""
    if isinstance(value, datetime):
        return _When(value.date(), value.time() if value.time() != time(0) or value.tzinfo else None,
                     value.utcoffset() if value.tzinfo else None)
    if isinstance(value, date):
        return _When(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _serial(value, value)
    text = halfwidth(str(value)).strip()
    if re.fullmatch(r"\d{5}(\.\d+)?", text):
        return _serial(float(text), value)
    try:
        if match := _COMPACT.match(text):
            return _When(date(int(match["y"]), int(match["m"]), int(match["d"])))
        if match := _YMD.match(text):
            year = int(match["y"])
            if match["roc"] or len(match["y"]) == 3:
                year += 1911
            elif len(match["y"]) != 4:
                raise RowError("ambiguous_date", value=value)
            return _When(date(year, int(match["m"]), int(match["d"])), *_time_of(match))
        if match := _MDY.match(text):
            a, b = int(match["a"]), int(match["b"])
            if a > 12 >= b:
                month, day = b, a
            elif b > 12 >= a:
                month, day = a, b
            else:
                raise RowError("ambiguous_date", value=value)
            return _When(date(int(match["y"]), month, day), *_time_of(match))
        parsed = datetime.fromisoformat(text)
        return _parse_when(parsed)
    except ValueError:
        raise RowError("bad_date", value=value) from None


def _serial(number: float, original: Any) -> _When:
    if not 10_000 <= number <= 80_000:  # 1927 to 2119: anything else is not a date someone meant
        raise RowError("bad_date", value=original)
    moment = datetime.combine(_EXCEL_EPOCH, time(0)) + timedelta(days=float(number))
    moment = moment.replace(microsecond=0)
    return _When(moment.date(), moment.time() if moment.time() != time(0) else None)


def parse_date(value: Any) -> date:
    return _parse_when(value).day


def parse_datetime(value: Any, zone: ZoneInfo) -> datetime:
    """A moment in UTC; times written without a zone are in the workspace's time zone."""
    when = _parse_when(value)
    local = datetime.combine(when.day, when.clock or time(0))
    if when.offset is not None:
        return local.replace(tzinfo=timezone(when.offset)).astimezone(UTC)
    return local.replace(tzinfo=zone).astimezone(UTC)
