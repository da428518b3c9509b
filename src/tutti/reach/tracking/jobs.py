"""Tracking's background work: conversions recomputed once a minute while any attribution window is open."""

from __future__ import annotations

from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick, task
from tutti.reach.tracking import conversions


@task()
def refresh_conversions(workspace_id: int, campaign_id: int | None = None) -> None:
    with get_database().session() as db:
        if campaign_id is None:
            conversions.refresh(db, workspace_id=workspace_id)
        else:
            conversions.refresh_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)


@on_tick
def refresh_open_windows() -> None:
    with get_database().read_session() as db:
        workspaces = conversions.workspaces_in_window(db)
    for workspace_id in workspaces:
        with get_database().session() as db:
            conversions.refresh(db, workspace_id=workspace_id)
