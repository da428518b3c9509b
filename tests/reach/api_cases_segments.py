"""Tenancy and role cases for segments (helper "segments"), merged by api_cases.py."""

from __future__ import annotations

from tests.api_world import SEEDERS, Seed, foreign, listing, write

V1 = "/api/v1"


def _rules(s: Seed) -> dict:
    return {"op": "and", "children": [{"kind": "tag", "tag": s.tag}]}


def seed_segments(database, seed: Seed) -> None:
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service

    with database.session() as db:
        segment = service.create_segment(db, workspace_id=seed.workspace_id, name=f"{seed.marker} segment", rules=_rules(seed),
                                         description=f"{seed.marker} people", actor=Actor.cli())
        seed.parts["segment"] = segment.id


def fresh_segment(s: Seed) -> int:
    from tutti.platform.audit import Actor
    from tutti.reach.segments import service

    s.counter += 1
    with s.database.session() as db:
        return service.create_segment(db, workspace_id=s.workspace_id, name=f"{s.marker} spare segment {s.counter}",
                                      rules=_rules(s), actor=Actor.cli()).id


def _name(s: Seed) -> str:
    s.counter += 1
    return f"{s.marker} new segment {s.counter}"


SEEDERS.append(seed_segments)

TENANCY = {
    ("GET", f"{V1}/segments"): listing(lambda m, t: f"{V1}/segments"),
    ("POST", f"{V1}/segments"): write(lambda m, t: (f"{V1}/segments", {"name": f"{t.marker} segment", "rules": _rules(m)})),
    ("POST", f"{V1}/segments/count"): foreign(
        lambda m, t: (f"{V1}/segments/count", {"rules": {"children": [{"kind": "segment", "segment_id": t.parts["segment"]}]}}),
    ),
    ("POST", f"{V1}/segments/parse"): listing(lambda m, t: (f"{V1}/segments/parse", {"text": f"{t.tag} {m.tag}", "locale": "en"})),
    ("GET", f"{V1}/segments/{{segment_id}}"): foreign(lambda m, t: f"{V1}/segments/{t.parts['segment']}"),
    ("PATCH", f"{V1}/segments/{{segment_id}}"): foreign(
        lambda m, t: (f"{V1}/segments/{t.parts['segment']}", {"name": "hijacked"}),
        lambda m, t: (f"{V1}/segments/{m.parts['segment']}", {"rules": {"children": [{"kind": "segment", "segment_id": t.parts["segment"]}]}}),
    ),
    ("DELETE", f"{V1}/segments/{{segment_id}}"): foreign(lambda m, t: f"{V1}/segments/{t.parts['segment']}"),
    ("GET", f"{V1}/segments/{{segment_id}}/members"): foreign(lambda m, t: f"{V1}/segments/{t.parts['segment']}/members"),
    ("POST", f"{V1}/segments/{{segment_id}}/refresh"): foreign(lambda m, t: f"{V1}/segments/{t.parts['segment']}/refresh"),
    ("GET", f"{V1}/segments/{{segment_id}}/export.csv"): foreign(lambda m, t: f"{V1}/segments/{t.parts['segment']}/export.csv"),
}

ROLES = {
    ("GET", f"{V1}/segments"): ("segments.read", lambda s: f"{V1}/segments"),
    ("POST", f"{V1}/segments"): ("segments.manage", lambda s: (f"{V1}/segments", {"name": _name(s), "rules": _rules(s)})),
    ("POST", f"{V1}/segments/count"): ("segments.read", lambda s: (f"{V1}/segments/count", {"rules": _rules(s)})),
    ("POST", f"{V1}/segments/parse"): ("segments.read", lambda s: (f"{V1}/segments/parse", {"text": "has LINE", "locale": "en"})),
    ("GET", f"{V1}/segments/{{segment_id}}"): ("segments.read", lambda s: f"{V1}/segments/{s.parts['segment']}"),
    ("PATCH", f"{V1}/segments/{{segment_id}}"): ("segments.manage", lambda s: (f"{V1}/segments/{s.parts['segment']}", {"description": "x"})),
    ("DELETE", f"{V1}/segments/{{segment_id}}"): ("segments.manage", lambda s: f"{V1}/segments/{fresh_segment(s)}"),
    ("GET", f"{V1}/segments/{{segment_id}}/members"): ("segments.read", lambda s: f"{V1}/segments/{s.parts['segment']}/members"),
    ("POST", f"{V1}/segments/{{segment_id}}/refresh"): ("segments.manage", lambda s: f"{V1}/segments/{s.parts['segment']}/refresh"),
    ("GET", f"{V1}/segments/{{segment_id}}/export.csv"): ("segments.manage", lambda s: f"{V1}/segments/{s.parts['segment']}/export.csv"),
}
