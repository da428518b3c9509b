"""Pages of things ordered by time, newest first, that never split one instant across two pages.

Paging by "older than the last item shown" skips whatever shares the last item's time but did not fit
(an order and its "Order Completed" event carry the same instant). So a page ends only where the time
changes, and the next page starts strictly before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class TimePage(Generic[T]):
    items: list[T]
    next_before: datetime | None  # give this as `before` for the next page; None on the last page


def time_page(items: list[T], *, limit: int, at: Callable[[T], datetime], horizon: datetime | None = None) -> TimePage[T]:
    """Cut newest-first `items` into one page of at most `limit`.

    `horizon`: when several sources were each fetched `limit + 1` deep, the newest time at which one of
    them stopped; below or at it, items may be missing, so they wait for the next page."""
    complete = [item for item in items if horizon is None or at(item) > horizon]
    if len(complete) <= limit and horizon is None:
        return TimePage(complete, None)
    if len(complete) > limit:
        boundary = at(complete[limit])
        page = [item for item in complete[:limit] if at(item) != boundary]
    else:
        boundary = horizon
        page = complete
    if not page:  # more than `limit` things at one instant: show them together rather than stall
        page = [item for item in items if at(item) == boundary]
    return TimePage(page, at(page[-1]))
