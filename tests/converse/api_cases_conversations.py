"""Tenancy and roles cases of /api/v1/conversations, /teams, /agent-config and /converse/metrics, and the
seeder that gives each seeded workspace a team, conversations (open and resolved) and agent settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.api_world import SEEDERS, SHARED_EMAIL, Seed, foreign, listing, write
from tutti.converse.agents import config as agent_config
from tutti.converse.conversations import service, teams
from tutti.platform import workspaces
from tutti.platform.audit import Actor
from tutti.platform.models import Membership

V1 = "/api/v1"
C = f"{V1}/conversations"


def _owner(db, workspace_id: int) -> int:
    return db.scalar(select(Membership.user_id).where(Membership.workspace_id == workspace_id, Membership.role == "owner"))


def seed_conversations(database, seed: Seed) -> None:
    marker = seed.marker
    with database.session() as db:
        owner = _owner(db, seed.workspace_id)
        helper = workspaces.create_user(db, email=f"{marker}-helper@example.com", password=None, name=f"{marker} helper")
        workspaces.add_member(db, workspace_id=seed.workspace_id, user_id=helper.id, role="agent", actor=Actor.cli())
        team = teams.create_team(db, workspace_id=seed.workspace_id, name=f"{marker} team", assignment="manual", members=[owner])
        message = service.receive_customer_message(db, workspace_id=seed.workspace_id, contact_id=seed.contact, channel="api",
                                                   text=f"{marker} 我的訂單在哪", run_agent=False)
        conversation = message.conversation_id
        service.assign(db, workspace_id=seed.workspace_id, conversation_id=conversation, user_id=owner, team_id=team.id)
        service.post_agent_message(db, workspace_id=seed.workspace_id, conversation_id=conversation, user_id=owner, text=f"{marker} 幫您查")
        service.add_note(db, workspace_id=seed.workspace_id, conversation_id=conversation, user_id=owner, text=f"{marker} note")
        done = service.receive_customer_message(db, workspace_id=seed.workspace_id, contact_id=seed.other, channel="api",
                                                text=f"{marker} 謝謝", run_agent=False).conversation_id
        service.resolve(db, workspace_id=seed.workspace_id, conversation_id=done, ask_csat=False)
        agent_config.update_config(db, workspace_id=seed.workspace_id, changes={"handoff_keywords": [f"{marker} keyword"]})
    seed.parts.update(conversation=conversation, resolved_conversation=done, team=team.id, owner=owner, helper=helper.id)


SEEDERS.append(seed_conversations)


def fresh_conversation(s: Seed, *, resolved: bool = False) -> int:
    with s.database.session() as db:
        s.counter += 1
        from tutti.audience import contacts

        contact, _ = contacts.upsert(db, workspace_id=s.workspace_id, identities={"email": f"{s.marker}-c{s.counter}@example.com"}, actor=Actor.cli())
        conversation = service.receive_customer_message(db, workspace_id=s.workspace_id, contact_id=contact.id, channel="api",
                                                        text=f"{s.marker} question {s.counter}", run_agent=False).conversation_id
        if resolved:
            service.resolve(db, workspace_id=s.workspace_id, conversation_id=conversation, ask_csat=False)
        return conversation


def fresh_team(s: Seed, *, with_owner: bool = False) -> int:
    s.counter += 1
    with s.database.session() as db:
        return teams.create_team(db, workspace_id=s.workspace_id, name=f"{s.marker} team {s.counter}",
                                 members=[s.parts["owner"]] if with_owner else []).id


def fresh_team_name(s: Seed) -> str:
    s.counter += 1
    return f"{s.marker} new team {s.counter}"


def _conv(s: Seed) -> int:
    return s.parts["conversation"]


def _lands_on_mine(response, mine: Seed, theirs: Seed) -> None:
    assert response.json()["conversation"]["contact_id"] == mine.contact or pytest.fail(response.text)


def _team_is_mine(response, mine: Seed, theirs: Seed) -> None:
    with mine.database.session() as db:
        assert teams.get_team(db, workspace_id=mine.workspace_id, team_id=response.json()["id"])


TENANCY = {
    ("GET", f"{C}"): listing(lambda m, t: C, lambda m, t: f"{C}?queue=open", lambda m, t: f"{C}?queue=mine&user_id={m.parts['owner']}",
                             lambda m, t: f"{C}?queue=team&team_id={m.parts['team']}"),
    ("POST", f"{C}/messages"): write(lambda m, t: (f"{C}/messages", {"identities": {"email": SHARED_EMAIL}, "text": f"{t.marker} hello"}),
                                     _lands_on_mine),
    ("POST", f"{C}/bulk"): foreign(lambda m, t: (f"{C}/bulk", {"conversation_ids": [_conv(t)], "action": "resolve"}),
                                   lambda m, t: (f"{C}/bulk", {"conversation_ids": [_conv(m), _conv(t)], "action": "resolve"}),
                                   lambda m, t: (f"{C}/bulk", {"conversation_ids": [_conv(m)], "action": "assign", "user_id": t.parts["owner"]})),
    ("POST", f"{C}/outbound"): foreign(lambda m, t: (f"{C}/outbound", {"contact_ids": [t.contact], "channel": "api", "text": "hi"})),
    ("GET", f"{C}/{{conversation_id}}"): foreign(lambda m, t: f"{C}/{_conv(t)}"),
    ("POST", f"{C}/{{conversation_id}}/messages"): foreign(lambda m, t: (f"{C}/{_conv(t)}/messages", {"text": "hijack"}),
                                                          lambda m, t: (f"{C}/{_conv(m)}/messages", {"text": "hi", "user_id": t.parts["owner"]})),
    ("POST", f"{C}/{{conversation_id}}/notes"): foreign(lambda m, t: (f"{C}/{_conv(t)}/notes", {"text": "hijack"})),
    ("POST", f"{C}/{{conversation_id}}/assign"): foreign(lambda m, t: (f"{C}/{_conv(t)}/assign", {"team_id": t.parts["team"]}),
                                                        lambda m, t: (f"{C}/{_conv(m)}/assign", {"user_id": t.parts["owner"]}),
                                                        lambda m, t: (f"{C}/{_conv(m)}/assign", {"team_id": t.parts["team"]})),
    ("POST", f"{C}/{{conversation_id}}/resolve"): foreign(lambda m, t: (f"{C}/{_conv(t)}/resolve", {})),
    ("POST", f"{C}/{{conversation_id}}/reopen"): foreign(lambda m, t: f"{C}/{t.parts['resolved_conversation']}/reopen"),
    ("POST", f"{C}/{{conversation_id}}/follow-up"): foreign(lambda m, t: (f"{C}/{_conv(t)}/follow-up", {})),
    ("POST", f"{C}/{{conversation_id}}/tags"): foreign(lambda m, t: (f"{C}/{_conv(t)}/tags", {"add": ["x"]})),
    ("POST", f"{C}/{{conversation_id}}/csat"): foreign(lambda m, t: (f"{C}/{_conv(t)}/csat", {"score": 1})),
    ("GET", f"{C}/{{conversation_id}}/suggestions"): foreign(lambda m, t: f"{C}/{_conv(t)}/suggestions"),
    ("GET", f"{C}/{{conversation_id}}/summary"): foreign(lambda m, t: f"{C}/{_conv(t)}/summary"),
    ("GET", f"{V1}/teams"): listing(lambda m, t: f"{V1}/teams"),
    ("POST", f"{V1}/teams"): write(lambda m, t: (f"{V1}/teams", {"name": f"{t.marker} team"}), _team_is_mine),
    ("GET", f"{V1}/teams/{{team_id}}"): foreign(lambda m, t: f"{V1}/teams/{t.parts['team']}"),
    ("PATCH", f"{V1}/teams/{{team_id}}"): foreign(lambda m, t: (f"{V1}/teams/{t.parts['team']}", {"name": "hijacked"})),
    ("DELETE", f"{V1}/teams/{{team_id}}"): foreign(lambda m, t: f"{V1}/teams/{t.parts['team']}"),
    ("PUT", f"{V1}/teams/{{team_id}}/members/{{user_id}}"): foreign(
        lambda m, t: (f"{V1}/teams/{t.parts['team']}/members/{t.parts['helper']}", {"online": True}),
        lambda m, t: (f"{V1}/teams/{m.parts['team']}/members/{t.parts['helper']}", {"online": True})),
    ("DELETE", f"{V1}/teams/{{team_id}}/members/{{user_id}}"): foreign(
        lambda m, t: f"{V1}/teams/{t.parts['team']}/members/{t.parts['owner']}",
        lambda m, t: f"{V1}/teams/{m.parts['team']}/members/{t.parts['owner']}"),
    ("GET", f"{V1}/agent-config"): listing(lambda m, t: f"{V1}/agent-config"),
    ("PATCH", f"{V1}/agent-config"): write(lambda m, t: (f"{V1}/agent-config", {"handoff_keywords": [f"{m.marker} new"]})),
    ("GET", f"{V1}/converse/metrics"): listing(lambda m, t: f"{V1}/converse/metrics"),
}

ROLES = {
    ("GET", f"{C}"): ("conversations.read", lambda s: C),
    ("POST", f"{C}/messages"): ("conversations.work", lambda s: (f"{C}/messages", {"contact_id": s.contact, "channel": "api", "text": "hi"})),
    ("POST", f"{C}/bulk"): ("conversations.work", lambda s: (f"{C}/bulk", {"conversation_ids": [fresh_conversation(s)], "action": "resolve"})),
    ("POST", f"{C}/outbound"): ("conversations.work", lambda s: (f"{C}/outbound", {"contact_ids": [s.other], "channel": "api", "text": "hi"})),
    ("GET", f"{C}/{{conversation_id}}"): ("conversations.read", lambda s: f"{C}/{_conv(s)}"),
    ("POST", f"{C}/{{conversation_id}}/messages"): ("conversations.work", lambda s: (f"{C}/{_conv(s)}/messages", {"text": "hi"})),
    ("POST", f"{C}/{{conversation_id}}/notes"): ("conversations.work", lambda s: (f"{C}/{_conv(s)}/notes", {"text": "note"})),
    ("POST", f"{C}/{{conversation_id}}/assign"): ("conversations.work", lambda s: (f"{C}/{fresh_conversation(s)}/assign", {"user_id": s.parts["owner"]})),
    ("POST", f"{C}/{{conversation_id}}/resolve"): ("conversations.work", lambda s: (f"{C}/{fresh_conversation(s)}/resolve", {})),
    ("POST", f"{C}/{{conversation_id}}/reopen"): ("conversations.work", lambda s: f"{C}/{fresh_conversation(s, resolved=True)}/reopen"),
    ("POST", f"{C}/{{conversation_id}}/follow-up"): ("conversations.work", lambda s: (f"{C}/{fresh_conversation(s)}/follow-up", {})),
    ("POST", f"{C}/{{conversation_id}}/tags"): ("conversations.work", lambda s: (f"{C}/{fresh_conversation(s)}/tags", {"add": ["vip"]})),
    ("POST", f"{C}/{{conversation_id}}/csat"): ("conversations.work", lambda s: (f"{C}/{fresh_conversation(s)}/csat", {"score": 4})),
    ("GET", f"{C}/{{conversation_id}}/suggestions"): ("conversations.work", lambda s: f"{C}/{_conv(s)}/suggestions"),
    ("GET", f"{C}/{{conversation_id}}/summary"): ("conversations.read", lambda s: f"{C}/{_conv(s)}/summary"),
    ("GET", f"{V1}/teams"): ("conversations.read", lambda s: f"{V1}/teams"),
    ("POST", f"{V1}/teams"): ("converse.manage", lambda s: (f"{V1}/teams", {"name": fresh_team_name(s)})),
    ("GET", f"{V1}/teams/{{team_id}}"): ("conversations.read", lambda s: f"{V1}/teams/{s.parts['team']}"),
    ("PATCH", f"{V1}/teams/{{team_id}}"): ("converse.manage", lambda s: (f"{V1}/teams/{fresh_team(s)}", {"assignment": "manual"})),
    ("DELETE", f"{V1}/teams/{{team_id}}"): ("converse.manage", lambda s: f"{V1}/teams/{fresh_team(s)}"),
    ("PUT", f"{V1}/teams/{{team_id}}/members/{{user_id}}"): ("converse.manage", lambda s: (f"{V1}/teams/{fresh_team(s)}/members/{s.parts['helper']}", {"online": True})),
    ("DELETE", f"{V1}/teams/{{team_id}}/members/{{user_id}}"): ("converse.manage", lambda s: f"{V1}/teams/{fresh_team(s, with_owner=True)}/members/{s.parts['owner']}"),
    ("GET", f"{V1}/agent-config"): ("converse.manage", lambda s: f"{V1}/agent-config"),
    ("PATCH", f"{V1}/agent-config"): ("converse.manage", lambda s: (f"{V1}/agent-config", {"min_confidence": 0.6})),
    ("GET", f"{V1}/converse/metrics"): ("converse.metrics", lambda s: f"{V1}/converse/metrics"),
}
