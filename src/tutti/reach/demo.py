"""Reach's demo content, built after the members and orders exist (called by tutti.audience.demo).

Each area of Reach adds its own builder to BUILDERS: `fn(database, *, workspace_id, seed, today, contacts,
report)`. They run in order, so a later one may use what an earlier one made."""

from __future__ import annotations

from datetime import date

from tutti.platform.db import Database


def _builders() -> list:
    from tutti.reach.segments import demo as segments_demo
    from tutti.reach.tracking import demo as tracking_demo

    return [tracking_demo.build, segments_demo.build]  # segments last: "clicked in 60 days" sees the campaign


def build_demo(database: Database, *, workspace_id: int, seed: int, today: date, contacts: int, report) -> None:
    for build in _builders():
        build(database, workspace_id=workspace_id, seed=seed, today=today, contacts=contacts, report=report)
