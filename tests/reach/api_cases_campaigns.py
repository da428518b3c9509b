"""Tenancy and role cases for campaigns (helper "sending"), merged by api_cases.py.

The seeded workspace gets a draft campaign, one that is sending and one that is paused (their audience
is a contact reachable on no channel, so sending them takes no provider and ends at once)."""

from __future__ import annotations

from datetime import timedelta

from tests.api_world import SEEDERS, Seed, foreign, listing, write

V1 = "/api/v1"


def _body(s: Seed, name: str | None = None) -> dict:
    return {"name": name or f"{s.marker} campaign", "audience": {"contact_ids": [s.other]}, "channels": ["line"],
            "variants": [{"name": "A", "split_percent": 100,
                          "content": {"line": {"messages": [{"type": "text", "text": f"{s.marker} 週年慶"}]}}}]}


def _make(s: Seed, status: str = "draft") -> int:
    from tutti.platform.audit import Actor
    from tutti.platform.db import utcnow
    from tutti.reach.campaigns import service
    from tutti.reach.campaigns.models import Campaign

    s.counter += 1
    with s.database.session() as db:
        campaign = service.create(db, workspace_id=s.workspace_id, data=_body(s, f"{s.marker} campaign {s.counter}"), actor=Actor.cli())
        if status != "draft":
            # as if its sender were busy with it (heartbeat now), so the tick leaves it alone
            db.get(Campaign, campaign.id).status = status
            db.get(Campaign, campaign.id).started_at = db.get(Campaign, campaign.id).heartbeat_at = utcnow()
        return campaign.id


def seed_campaigns(database, seed: Seed) -> None:
    seed.parts["campaign"] = _make(seed)
    seed.parts["sending_campaign"] = _make(seed, "sending")
    seed.parts["paused_campaign"] = _make(seed, "paused")


SEEDERS.append(seed_campaigns)


def _later() -> str:
    from tutti.platform.db import utcnow

    return (utcnow() + timedelta(days=1)).isoformat()


TENANCY = {
    ("GET", f"{V1}/campaigns"): listing(lambda m, t: f"{V1}/campaigns", lambda m, t: f"{V1}/campaigns?status=draft"),
    ("POST", f"{V1}/campaigns"): write(lambda m, t: (f"{V1}/campaigns", _body(t) | {"audience": {"contact_ids": [m.other]}})),
    ("GET", f"{V1}/campaigns/{{campaign_id}}"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}"),
    ("PATCH", f"{V1}/campaigns/{{campaign_id}}"): foreign(
        lambda m, t: (f"{V1}/campaigns/{t.parts['campaign']}", {"name": "hijacked"}),
        lambda m, t: (f"{V1}/campaigns/{m.parts['campaign']}", {"audience": {"contact_ids": [t.contact]}}),
    ),
    ("DELETE", f"{V1}/campaigns/{{campaign_id}}"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/schedule"): foreign(
        lambda m, t: (f"{V1}/campaigns/{t.parts['campaign']}/schedule", {"scheduled_at": _later()})),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/send"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}/send"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/pause"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['sending_campaign']}/pause"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/resume"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['paused_campaign']}/resume"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/cancel"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['sending_campaign']}/cancel"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/progress"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}/progress"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/deliveries"): foreign(
        lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}/deliveries",
        lambda m, t: f"{V1}/campaigns/{t.parts['campaign']}/deliveries?status=sent"),
}

ROLES = {
    ("GET", f"{V1}/campaigns"): ("campaigns.read", lambda s: f"{V1}/campaigns"),
    ("POST", f"{V1}/campaigns"): ("campaigns.send", lambda s: (f"{V1}/campaigns", _body(s))),
    ("GET", f"{V1}/campaigns/{{campaign_id}}"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['campaign']}"),
    ("PATCH", f"{V1}/campaigns/{{campaign_id}}"): ("campaigns.send", lambda s: (f"{V1}/campaigns/{_make(s)}", {"holdout_percent": 10})),
    ("DELETE", f"{V1}/campaigns/{{campaign_id}}"): ("campaigns.send", lambda s: f"{V1}/campaigns/{_make(s)}"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/schedule"): ("campaigns.send", lambda s: (f"{V1}/campaigns/{_make(s)}/schedule",
                                                                                      {"scheduled_at": _later()})),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/send"): ("campaigns.send", lambda s: f"{V1}/campaigns/{_make(s)}/send"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/pause"): ("campaigns.send", lambda s: f"{V1}/campaigns/{_make(s, 'sending')}/pause"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/resume"): ("campaigns.send", lambda s: f"{V1}/campaigns/{_make(s, 'paused')}/resume"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/cancel"): ("campaigns.send", lambda s: f"{V1}/campaigns/{_make(s, 'sending')}/cancel"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/progress"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['campaign']}/progress"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/deliveries"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['campaign']}/deliveries"),
}
