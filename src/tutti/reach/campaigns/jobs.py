"""Background work of campaigns: the send job, and the tick that starts scheduled campaigns and resumes
those whose sender stopped (died, waited for quiet hours or a back-off, or whose message was lost)."""

from __future__ import annotations

from tutti.platform.db import get_database
from tutti.platform.jobs import on_tick, task
from tutti.reach.campaigns import engine, service


@task()
def send_campaign(campaign_id: int) -> str:
    """The message only names the campaign: a repeated one finds the lock held and returns."""
    return engine.run(campaign_id)


@on_tick
def start_and_resume_campaigns() -> None:
    database = get_database()
    with database.read_session() as db:
        due = service.due_campaigns(db)
    for campaign_id in due:
        with database.session() as db:
            service.start_scheduled(db, campaign_id=campaign_id)
        send_campaign(campaign_id)
