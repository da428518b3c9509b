"""Tenancy and role cases for templates and campaign reports (helper "messages"), merged by api_cases.py."""

from __future__ import annotations

from tests.api_world import SEEDERS, Seed, foreign, listing, write

V1 = "/api/v1"


def _sms(marker: str) -> dict:
    return {"text": f"{marker} 嗨 {{{{ name | default('朋友') }}}}"}


def seed_messages(database, seed: Seed) -> None:
    from tutti.platform.audit import Actor
    from tutti.reach.templates import service

    with database.session() as db:
        template = service.create_template(db, workspace_id=seed.workspace_id, name=f"{seed.marker} template", channel="sms",
                                           content=_sms(seed.marker), actor=Actor.cli())
        seed.parts["template"] = template.id
    from tests.reach.tracking_world import send_campaign

    sent = send_campaign(database, seed.workspace_id, variants={"A": [seed.contact]}, holdout=[seed.other],
                         name=f"{seed.marker} report campaign")
    seed.parts["report_campaign"] = sent.campaign_id


def fresh_template(s: Seed) -> int:
    from tutti.platform.audit import Actor
    from tutti.reach.templates import service

    s.counter += 1
    with s.database.session() as db:
        return service.create_template(db, workspace_id=s.workspace_id, name=f"{s.marker} spare {s.counter}", channel="sms",
                                       content=_sms(s.marker), actor=Actor.cli()).id


SEEDERS.append(seed_messages)

TENANCY = {
    ("GET", f"{V1}/templates"): listing(lambda m, t: f"{V1}/templates", lambda m, t: f"{V1}/templates?channel=sms"),
    ("POST", f"{V1}/templates"): write(lambda m, t: (f"{V1}/templates", {"name": f"{t.marker} template", "channel": "sms",
                                                                          "content": _sms(m.marker)})),
    ("GET", f"{V1}/templates/{{template_id}}"): foreign(lambda m, t: f"{V1}/templates/{t.parts['template']}"),
    ("PATCH", f"{V1}/templates/{{template_id}}"): foreign(lambda m, t: (f"{V1}/templates/{t.parts['template']}", {"name": "hijacked"})),
    ("DELETE", f"{V1}/templates/{{template_id}}"): foreign(lambda m, t: f"{V1}/templates/{t.parts['template']}"),
    ("POST", f"{V1}/templates/preview"): foreign(
        lambda m, t: (f"{V1}/templates/preview", {"channel": "sms", "content": {"text": "{{ name }} {{ email }}"}, "contact_id": t.contact}),
        lambda m, t: (f"{V1}/templates/preview", {"channel": "sms", "content": {"text": "{{ name }}"}, "contact_id": t.merged}),
    ),
    ("POST", f"{V1}/templates/{{template_id}}/test-send"): foreign(
        lambda m, t: (f"{V1}/templates/{t.parts['template']}/test-send", {"to": "+886912345678"}),
        lambda m, t: (f"{V1}/templates/{m.parts['template']}/test-send", {"to": "+886912345678", "contact_id": t.contact}),
    ),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/report"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['report_campaign']}/report"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/report.csv"): foreign(lambda m, t: f"{V1}/campaigns/{t.parts['report_campaign']}/report.csv"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/report/refresh"): foreign(
        lambda m, t: f"{V1}/campaigns/{t.parts['report_campaign']}/report/refresh"),
}

ROLES = {
    ("GET", f"{V1}/templates"): ("templates.manage", lambda s: f"{V1}/templates"),
    ("POST", f"{V1}/templates"): ("templates.manage", lambda s: (f"{V1}/templates", {"name": "n", "channel": "sms", "content": {"text": "hi"}})),
    ("GET", f"{V1}/templates/{{template_id}}"): ("templates.manage", lambda s: f"{V1}/templates/{s.parts['template']}"),
    ("PATCH", f"{V1}/templates/{{template_id}}"): ("templates.manage", lambda s: (f"{V1}/templates/{s.parts['template']}", {"name": "renamed"})),
    ("DELETE", f"{V1}/templates/{{template_id}}"): ("templates.manage", lambda s: f"{V1}/templates/{fresh_template(s)}"),
    ("POST", f"{V1}/templates/preview"): ("templates.manage", lambda s: (f"{V1}/templates/preview", {"channel": "sms", "content": {"text": "{{ name }}"}, "contact_id": s.contact})),
    ("POST", f"{V1}/templates/{{template_id}}/test-send"): ("templates.manage", lambda s: (f"{V1}/templates/{s.parts['template']}/test-send", {"to": "+886912345678"})),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/report"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['report_campaign']}/report"),
    ("GET", f"{V1}/campaigns/{{campaign_id}}/report.csv"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['report_campaign']}/report.csv"),
    ("POST", f"{V1}/campaigns/{{campaign_id}}/report/refresh"): ("campaigns.read", lambda s: f"{V1}/campaigns/{s.parts['report_campaign']}/report/refresh"),
}
