"""Roles, route by route: each of owner, admin, marketer, agent and analyst gets exactly what
roles.PERMISSIONS grants — 403 otherwise, with nothing changed.

ROUTES names the permission every /api/v1 route needs (None: any valid key); a route added without an
entry fails `test_every_api_route_has_a_role_case`.
"""

from __future__ import annotations

import pytest

from tests.api_world import Seed, api_routes, seed, snapshot
from tests.conftest import bearer
from tutti.platform import roles
from tutti.platform.models import ROLES

V1 = "/api/v1"
CSV = b"email,name\nrole-test@example.com,Role Test\n"


def _email(s: Seed) -> str:
    s.counter += 1
    return f"{s.marker}-new{s.counter}@example.com"


def _contact_with_email(s: Seed) -> str:
    email = _email(s)
    return f"{V1}/contacts/{s.fresh_contact(email=email)}/identities/email/{email}"


# (method, path) -> (permission, request builder: seed -> URL or (URL, JSON body))
ROUTES = {
    ("POST", f"{V1}/contacts"): ("contacts.write", lambda s: (f"{V1}/contacts", {"identities": {"email": _email(s)}})),
    ("GET", f"{V1}/contacts"): ("contacts.read", lambda s: f"{V1}/contacts"),
    ("POST", f"{V1}/contacts/merge"): ("contacts.merge", lambda s: (f"{V1}/contacts/merge", {"winner_id": s.fresh_contact(), "loser_id": s.fresh_contact()})),
    ("GET", f"{V1}/contacts/{{contact_id}}"): ("contacts.read", lambda s: f"{V1}/contacts/{s.contact}"),
    ("PATCH", f"{V1}/contacts/{{contact_id}}"): ("contacts.write", lambda s: (f"{V1}/contacts/{s.contact}", {"city": "台南市"})),
    ("POST", f"{V1}/contacts/{{contact_id}}/identities"): ("contacts.write", lambda s: (f"{V1}/contacts/{s.fresh_contact()}/identities", {"kind": "email", "value": _email(s)})),
    ("DELETE", f"{V1}/contacts/{{contact_id}}/identities/{{kind}}/{{value}}"): ("contacts.write", _contact_with_email),
    ("GET", f"{V1}/contacts/{{contact_id}}/timeline"): ("contacts.read", lambda s: f"{V1}/contacts/{s.contact}/timeline"),
    ("GET", f"{V1}/contacts/{{contact_id}}/events"): ("contacts.read", lambda s: f"{V1}/contacts/{s.contact}/events"),
    ("POST", f"{V1}/contacts/{{contact_id}}/events"): ("contacts.write", lambda s: (f"{V1}/contacts/{s.contact}/events", {"name": "Opened App"})),
    ("GET", f"{V1}/contacts/{{contact_id}}/orders"): ("contacts.read", lambda s: f"{V1}/contacts/{s.contact}/orders"),
    ("PUT", f"{V1}/contacts/{{contact_id}}/consent/{{channel}}"): ("contacts.write", lambda s: (f"{V1}/contacts/{s.contact}/consent/email", {"status": "unsubscribed"})),
    ("POST", f"{V1}/contacts/{{contact_id}}/tags"): ("contacts.write", lambda s: (f"{V1}/contacts/{s.other}/tags", {"tags": ["followup"]})),
    ("DELETE", f"{V1}/contacts/{{contact_id}}/tags"): ("contacts.write", lambda s: f"{V1}/contacts/{s.contact}/tags?name={s.tag}"),
    ("GET", f"{V1}/contacts/{{contact_id}}/export"): ("privacy.manage", lambda s: f"{V1}/contacts/{s.contact}/export"),
    ("POST", f"{V1}/contacts/{{contact_id}}/erase"): ("privacy.manage", lambda s: f"{V1}/contacts/{s.fresh_contact()}/erase"),
    ("GET", f"{V1}/tags"): ("contacts.read", lambda s: f"{V1}/tags"),
    ("POST", f"{V1}/tags"): ("tags.manage", lambda s: (f"{V1}/tags", {"name": "new-tag"})),
    ("DELETE", f"{V1}/tags/{{name}}"): ("tags.manage", lambda s: f"{V1}/tags/{s.fresh_tag()}"),
    ("POST", f"{V1}/tags/{{name}}/contacts"): ("tags.manage", lambda s: (f"{V1}/tags/{s.tag}/contacts", {"contact_ids": [s.fresh_contact()]})),
    ("GET", f"{V1}/attributes"): ("contacts.read", lambda s: f"{V1}/attributes"),
    ("POST", f"{V1}/attributes"): ("attributes.manage", lambda s: (f"{V1}/attributes", {"key": "visits", "type": "number"})),
    ("GET", f"{V1}/workspace"): (None, lambda s: f"{V1}/workspace"),
    ("GET", f"{V1}/api-keys"): ("keys.manage", lambda s: f"{V1}/api-keys"),
    ("POST", f"{V1}/api-keys"): ("keys.manage", lambda s: (f"{V1}/api-keys", {"name": "k", "role": "analyst"})),
    ("DELETE", f"{V1}/api-keys/{{key_id}}"): ("keys.manage", lambda s: f"{V1}/api-keys/{s.fresh_key_id()}"),
    ("POST", f"{V1}/write-key/rotate"): ("keys.manage", lambda s: f"{V1}/write-key/rotate"),
    ("GET", f"{V1}/members"): ("users.manage", lambda s: f"{V1}/members"),
    ("POST", f"{V1}/invitations"): ("users.manage", lambda s: (f"{V1}/invitations", {"email": _email(s), "role": "analyst"})),
    ("GET", f"{V1}/audit-log"): ("audit.read", lambda s: f"{V1}/audit-log"),
    ("POST", f"{V1}/imports"): ("imports.run", lambda s: (f"{V1}/imports", "upload")),
    ("GET", f"{V1}/imports"): ("imports.run", lambda s: f"{V1}/imports"),
    ("GET", f"{V1}/imports/{{import_id}}"): ("imports.run", lambda s: f"{V1}/imports/{s.import_id}"),
    ("POST", f"{V1}/imports/{{import_id}}/preview"): ("imports.run", lambda s: (f"{V1}/imports/{s.fresh_import()}/preview", {})),
    ("POST", f"{V1}/imports/{{import_id}}/start"): ("imports.run", lambda s: (f"{V1}/imports/{s.fresh_import()}/start", {})),
}


def _part_routes() -> dict:
    from tests import part_cases

    return part_cases.ROLES


ROUTES.update(_part_routes())


def test_every_api_route_has_a_role_case(app):
    missing = [f"no role case for {method} {path}" for method, path in api_routes(app) if (method, path) not in ROUTES]
    assert not missing, "\n".join(missing)


def test_the_permission_table_says_what_the_roles_are_for():
    granted = {role: {p for p in roles.PERMISSIONS if roles.can(role, p)} for role in ROLES}
    # read-only: the parts each add what an analyst may look at (contacts, channels, segments, campaigns, metrics)
    assert "contacts.read" in granted["analyst"] and all(p.endswith((".read", ".metrics")) for p in granted["analyst"])
    assert {"imports.run", "contacts.merge", "keys.manage"}.isdisjoint(granted["agent"])
    assert "contacts.write" in granted["agent"]  # agents update the person they are talking to
    for permission in ("keys.manage", "users.manage", "privacy.manage", "audit.read"):
        assert {role for role in ROLES if roles.can(role, permission)} == {"owner", "admin"}, permission
    assert granted["owner"] == granted["admin"] == set(roles.PERMISSIONS)


def _call(client, method, built, key):
    url, body = built if isinstance(built, tuple) else (built, None)
    if body == "upload":
        return client.request(method, url, headers=bearer(key), files={"file": ("m.csv", CSV, "text/csv")}, data={"kind": "members"})
    return client.request(method, url, headers=bearer(key), json=body)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_permissions(client, database, role):
    s = seed(database, "rolemark")
    key = s.key_for(role)
    assert client.get(f"{V1}/workspace", headers=bearer(key)).json()["role"] == role
    expected, got, leaks = {}, {}, []
    for (method, path), (permission, build) in ROUTES.items():
        built = build(s)  # fresh rows for destructive calls are made before the snapshot
        before = snapshot(s.database, s.workspace_id, ignore=("api_key.last_used_at",))
        response = _call(client, method, built, key)
        allowed = permission is None or roles.can(role, permission)
        expected[(method, path)] = "ok" if allowed else 403
        got[(method, path)] = "ok" if 200 <= response.status_code < 300 else response.status_code
        if response.status_code == 403:
            assert response.json()["error"]["code"] == "forbidden"
            if snapshot(s.database, s.workspace_id, ignore=("api_key.last_used_at",)) != before:
                leaks.append((method, path))
    mismatches = {route: (expected[route], got[route]) for route in ROUTES if expected[route] != got[route]}
    assert not mismatches, f"role {role}: route -> (expected, got): {mismatches}"
    assert not leaks, f"role {role}: refused requests changed data: {leaks}"
