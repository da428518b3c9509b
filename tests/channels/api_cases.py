"""Tenancy and role cases of /api/v1/channels (merged by tests/part_cases.py)."""

from __future__ import annotations

from tests.api_world import SEEDERS, Seed, foreign, listing, write
from tutti.channels import service
from tutti.platform.audit import Actor

V1 = "/api/v1"
UNREACHABLE = "http://127.0.0.1:9"  # "test connection" answers quickly (connection refused), never leaves the machine


def _seed_channels(database, seed: Seed) -> None:
    with database.session() as db:
        line = service.connect(db, workspace_id=seed.workspace_id, kind="line", name=f"{seed.marker} LINE", actor=Actor.cli(),
                               config={"api_base_url": UNREACHABLE, "channel_id": f"{seed.marker}-line"},
                               credentials={"channel_secret": f"{seed.marker}-secret", "access_token": f"{seed.marker}-token-0123456789"})
        seed.parts["channel"] = line.id


SEEDERS.append(_seed_channels)


def _fresh_channel(s: Seed) -> int:
    s.counter += 1
    with s.database.session() as db:
        return service.connect(db, workspace_id=s.workspace_id, kind="webhook", name=f"{s.marker} hook {s.counter}", actor=Actor.cli(),
                               config={"url": f"{UNREACHABLE}/hook"}).id


TENANCY = {
    ("GET", f"{V1}/channels"): listing(lambda m, t: f"{V1}/channels", lambda m, t: f"{V1}/channels?kind=line"),
    ("POST", f"{V1}/channels"): write(lambda m, t: (f"{V1}/channels", {
        "kind": "line", "name": f"{t.marker} LINE", "config": {"channel_id": f"{t.marker}-line"},
        "credentials": {"channel_secret": "s", "access_token": "t"}})),
    ("GET", f"{V1}/channels/{{channel_id}}"): foreign(lambda m, t: f"{V1}/channels/{t.parts['channel']}"),
    ("PATCH", f"{V1}/channels/{{channel_id}}"): foreign(
        lambda m, t: (f"{V1}/channels/{t.parts['channel']}", {"name": "hijacked"}),
        lambda m, t: (f"{V1}/channels/{t.parts['channel']}", {"credentials": {"access_token": "stolen"}}),
    ),
    ("DELETE", f"{V1}/channels/{{channel_id}}"): foreign(lambda m, t: f"{V1}/channels/{t.parts['channel']}"),
    ("POST", f"{V1}/channels/{{channel_id}}/test"): foreign(lambda m, t: f"{V1}/channels/{t.parts['channel']}/test"),
}

ROLES = {
    ("GET", f"{V1}/channels"): ("channels.read", lambda s: f"{V1}/channels"),
    ("POST", f"{V1}/channels"): ("channels.manage", lambda s: (f"{V1}/channels", {"kind": "webhook", "name": "new hook",
                                                                                   "config": {"url": "https://example.com/hook"}})),
    ("GET", f"{V1}/channels/{{channel_id}}"): ("channels.read", lambda s: f"{V1}/channels/{s.parts['channel']}"),
    ("PATCH", f"{V1}/channels/{{channel_id}}"): ("channels.manage", lambda s: (f"{V1}/channels/{s.parts['channel']}", {"name": "renamed"})),
    ("DELETE", f"{V1}/channels/{{channel_id}}"): ("channels.manage", lambda s: f"{V1}/channels/{_fresh_channel(s)}"),
    ("POST", f"{V1}/channels/{{channel_id}}/test"): ("channels.manage", lambda s: f"{V1}/channels/{s.parts['channel']}/test"),
}
