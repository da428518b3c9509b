"""Tenancy, route by route: a key of workspace A can neither read nor change workspace B's data.

Every route under /api/v1 needs a case in CASES; a route added without one fails
`test_every_api_route_has_a_tenancy_case`. Three kinds of case:

- `foreign(...)`: requests naming B's ids with A's key. Each must answer 404 (never 200 or 500), show
  none of B's data, and leave every row of B unchanged. As a control, the first request built from B's
  own ids with B's key must succeed, so the case really reaches data.
- `listing(...)`: lists read with A's key hold A's rows and never one of B's.
- `write(...)`: creating things with A's key (even with B's names and e-mail) lands in A, never in B.

Builders receive (mine, theirs) seeds and return a URL or (URL, JSON body).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.api_world import SHARED_EMAIL, Seed, api_routes, foreign, listing, seed, snapshot, write
from tests.conftest import bearer

UPLOAD_CSV = b"email,name\nnew-person@example.com,New Person\n"


def _same_contact(response, mine: Seed, theirs: Seed) -> None:
    assert response.json()["id"] == mine.contact  # the shared e-mail found A's contact, not B's


V1 = "/api/v1"
CASES: dict[tuple[str, str], Case] = {
    # contacts
    ("POST", f"{V1}/contacts"): write(lambda m, t: (f"{V1}/contacts", {"identities": {"email": SHARED_EMAIL}, "city": "台北市"}), _same_contact),
    ("GET", f"{V1}/contacts"): listing(
        lambda m, t: f"{V1}/contacts",
        lambda m, t: f"{V1}/contacts?q={SHARED_EMAIL}",
        lambda m, t: f"{V1}/contacts?identity_kind=email&identity_value={SHARED_EMAIL}",
        lambda m, t: f"{V1}/contacts?consent=email:subscribed",
        lambda m, t: f"{V1}/contacts?attr.{m.attribute}={m.marker}%20gold",
    ),
    ("POST", f"{V1}/contacts/merge"): foreign(
        lambda m, t: (f"{V1}/contacts/merge", {"winner_id": t.contact, "loser_id": t.other}),
        lambda m, t: (f"{V1}/contacts/merge", {"winner_id": m.other, "loser_id": t.contact}),
        lambda m, t: (f"{V1}/contacts/merge", {"winner_id": t.other, "loser_id": m.other}),
    ),
    ("GET", f"{V1}/contacts/{{contact_id}}"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}", lambda m, t: f"{V1}/contacts/{t.merged}"),
    ("PATCH", f"{V1}/contacts/{{contact_id}}"): foreign(lambda m, t: (f"{V1}/contacts/{t.contact}", {"name": "hijacked"})),
    ("POST", f"{V1}/contacts/{{contact_id}}/identities"): foreign(
        lambda m, t: (f"{V1}/contacts/{t.contact}/identities", {"kind": "phone", "value": "0912000999"}),
        lambda m, t: (f"{V1}/contacts/{t.merged}/identities", {"kind": "email", "value": "new@example.com"}),
    ),
    ("DELETE", f"{V1}/contacts/{{contact_id}}/identities/{{kind}}/{{value}}"): foreign(
        lambda m, t: f"{V1}/contacts/{t.contact}/identities/email/{SHARED_EMAIL}",
        lambda m, t: f"{V1}/contacts/{m.contact}/identities/email/{t.own_email}",
    ),
    ("GET", f"{V1}/contacts/{{contact_id}}/timeline"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}/timeline"),
    ("GET", f"{V1}/contacts/{{contact_id}}/events"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}/events"),
    ("POST", f"{V1}/contacts/{{contact_id}}/events"): foreign(
        lambda m, t: (f"{V1}/contacts/{t.contact}/events", {"name": "Injected", "message_id": f"{t.marker}-event-1"}),
    ),
    ("GET", f"{V1}/contacts/{{contact_id}}/orders"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}/orders"),
    ("PUT", f"{V1}/contacts/{{contact_id}}/consent/{{channel}}"): foreign(
        lambda m, t: (f"{V1}/contacts/{t.contact}/consent/email", {"status": "unsubscribed"}),
    ),
    ("POST", f"{V1}/contacts/{{contact_id}}/tags"): foreign(lambda m, t: (f"{V1}/contacts/{t.contact}/tags", {"tags": [t.tag]})),
    ("DELETE", f"{V1}/contacts/{{contact_id}}/tags"): foreign(
        lambda m, t: f"{V1}/contacts/{t.contact}/tags?name={t.tag}",
        lambda m, t: f"{V1}/contacts/{t.contact}/tags?name={m.tag}",
        lambda m, t: f"{V1}/contacts/{m.contact}/tags?name={t.tag}",
    ),
    ("GET", f"{V1}/contacts/{{contact_id}}/export"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}/export"),
    ("POST", f"{V1}/contacts/{{contact_id}}/erase"): foreign(lambda m, t: f"{V1}/contacts/{t.contact}/erase",
                                                           lambda m, t: f"{V1}/contacts/{t.merged}/erase"),
    # tags and attributes
    ("GET", f"{V1}/tags"): listing(lambda m, t: f"{V1}/tags"),
    ("POST", f"{V1}/tags"): write(lambda m, t: (f"{V1}/tags", {"name": t.tag}), lambda r, m, t: r.status_code == 201 or pytest.fail(r.text)),
    ("DELETE", f"{V1}/tags/{{name}}"): foreign(lambda m, t: f"{V1}/tags/{t.tag}"),
    ("POST", f"{V1}/tags/{{name}}/contacts"): foreign(
        lambda m, t: (f"{V1}/tags/{m.tag}/contacts", {"contact_ids": [t.contact]}),
        lambda m, t: (f"{V1}/tags/{m.tag}/contacts", {"contact_ids": [m.other, t.other]}),
        lambda m, t: (f"{V1}/tags/{t.tag}/contacts", {"contact_ids": [m.other]}),
    ),
    ("GET", f"{V1}/attributes"): listing(lambda m, t: f"{V1}/attributes"),
    ("POST", f"{V1}/attributes"): write(lambda m, t: (f"{V1}/attributes", {"key": t.attribute, "type": "number"}),
                                        lambda r, m, t: r.status_code == 201 or pytest.fail(r.text)),
    # platform
    ("GET", f"{V1}/workspace"): listing(lambda m, t: f"{V1}/workspace",
                                        check=lambda r, m, t: r.json()["id"] == m.workspace_id or pytest.fail(r.text)),
    ("GET", f"{V1}/api-keys"): listing(lambda m, t: f"{V1}/api-keys"),
    ("POST", f"{V1}/api-keys"): write(lambda m, t: (f"{V1}/api-keys", {"name": "new key", "role": "analyst"})),
    ("DELETE", f"{V1}/api-keys/{{key_id}}"): foreign(lambda m, t: f"{V1}/api-keys/{t.key_id}"),
    ("POST", f"{V1}/write-key/rotate"): write(lambda m, t: f"{V1}/write-key/rotate"),
    ("GET", f"{V1}/members"): listing(lambda m, t: f"{V1}/members"),
    ("POST", f"{V1}/invitations"): write(lambda m, t: (f"{V1}/invitations", {"email": f"{t.marker}-owner@example.com", "role": "agent"})),
    ("GET", f"{V1}/audit-log"): listing(lambda m, t: f"{V1}/audit-log", lambda m, t: f"{V1}/audit-log?limit=2"),
    # imports (Audience imports router)
    ("POST", f"{V1}/imports"): write(lambda m, t: f"{V1}/imports", files=True),
    ("GET", f"{V1}/imports"): listing(lambda m, t: f"{V1}/imports"),
    ("GET", f"{V1}/imports/{{import_id}}"): foreign(lambda m, t: f"{V1}/imports/{t.import_id}"),
    ("POST", f"{V1}/imports/{{import_id}}/preview"): foreign(lambda m, t: (f"{V1}/imports/{t.import_id}/preview", {})),
    ("POST", f"{V1}/imports/{{import_id}}/start"): foreign(lambda m, t: (f"{V1}/imports/{t.import_id}/start", {})),
}


def _part_cases() -> dict:
    from tests import part_cases

    return part_cases.TENANCY


CASES.update(_part_cases())


def test_every_api_route_has_a_tenancy_case(app):
    missing = [f"no tenancy case for {method} {path}" for method, path in api_routes(app) if (method, path) not in CASES]
    assert not missing, "\n".join(missing)
    stale = [route for route in CASES if route not in set(api_routes(app))]
    assert not stale, f"cases for routes that no longer exist: {stale}"


def _request(client, method: str, built, key: str, files: bool = False):
    url, body = built if isinstance(built, tuple) else (built, None)
    if files:
        return client.request(method, url, headers=bearer(key), files={"file": ("members.csv", UPLOAD_CSV, "text/csv")},
                              data={"kind": "members"})
    return client.request(method, url, headers=bearer(key), json=body)


def _unechoed(text: str, built) -> str:
    """The response without the marked names the request itself sent (an error may quote them back)."""
    sent = json.dumps(built, ensure_ascii=False) if isinstance(built, tuple) else built
    for name in sorted(set(re.findall(r"bbbmark[\w@.\-]*", sent)), key=len, reverse=True):
        text = text.replace(name, "")
    return text


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda route: f"{route[0]} {route[1].removeprefix(V1)}")
def test_a_key_of_one_workspace_never_reaches_another(client, database, route):
    method, _ = route
    case = CASES[route]
    a, b = seed(database, "aaamark"), seed(database, "bbbmark")
    before = snapshot(database, b.workspace_id)

    for build in case.builds:
        response = _request(client, method, build(a, b), a.key, case.files)
        where = f"{method} {build(a, b)}"
        assert response.status_code != 500, where
        assert "bbbmark" not in _unechoed(response.text, build(a, b)), f"{where} showed B's data: {response.text[:300]}"
        if case.kind == "foreign":
            assert response.status_code == 404, f"{where} answered {response.status_code}: {response.text[:300]}"
        elif case.kind == "listing":
            assert response.status_code == 200, f"{where}: {response.text[:300]}"
            assert "aaamark" in response.text, f"{where} shows none of A's own data, so proves nothing"
        else:
            assert 200 <= response.status_code < 300, f"{where}: {response.text[:300]}"
        if case.check:
            case.check(response, a, b)
    assert snapshot(database, b.workspace_id) == before, f"{method} {route[1]} with A's key changed B's data"

    if case.kind == "foreign":  # control: the owner of the data reaches it through the same request
        response = _request(client, method, case.builds[0](b, b), b.key)
        assert 200 <= response.status_code < 300, f"control {method} {case.builds[0](b, b)}: {response.status_code} {response.text[:300]}"
