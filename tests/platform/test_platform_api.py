"""The platform API: the workspace, API keys, the write key, members, invitations and the audit log."""

import base64

import pytest

from tests.conftest import bearer
from tutti.platform import workspaces
from tutti.platform.audit import Actor

V1 = "/api/v1"


@pytest.fixture
def admin(client, make_workspace):
    workspace_id, key, write_key = make_workspace("Island Coffee")
    client.headers.update(bearer(key))
    client.workspace_id, client.write_key = workspace_id, write_key
    return client


def test_workspace_answers_with_the_keys_workspace_and_role(admin):
    body = admin.get(f"{V1}/workspace").json()
    assert body["id"] == admin.workspace_id and body["name"] == "Island Coffee" and body["role"] == "admin"
    assert body["currency"] == "TWD" and body["timezone"] == "Asia/Taipei"


def test_api_key_is_shown_once_works_and_stops_when_revoked(admin, client):
    created = admin.post(f"{V1}/api-keys", json={"name": "shop sync", "role": "marketer"})
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["key"].startswith("tk_") and new["prefix"] == new["key"][:10] and new["role"] == "marketer"
    listed = admin.get(f"{V1}/api-keys").json()["items"]
    assert {k["name"] for k in listed} == {"test", "shop sync"}
    assert all("key" not in k for k in listed) and new["key"] not in str(listed)
    headers = {"Authorization": f"Bearer {new['key']}"}
    assert client.get(f"{V1}/contacts", headers=headers).status_code == 200
    assert client.get(f"{V1}/api-keys", headers=headers).status_code == 403  # a marketer does not manage keys

    assert admin.delete(f"{V1}/api-keys/{new['id']}").status_code == 204
    assert client.get(f"{V1}/contacts", headers=headers).status_code == 401
    assert admin.delete(f"{V1}/api-keys/{new['id']}").status_code == 404
    assert [k["name"] for k in admin.get(f"{V1}/api-keys").json()["items"]] == ["test"]


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "role": "superuser"}, "role"),
    ({"name": "", "role": "analyst"}, "name"),
    ({"role": "analyst"}, "name"),
    ({"name": "x", "role": "analyst", "scopes": ["all"]}, "scopes"),
    ({"name": "x" * 201}, "name"),
])
def test_bad_key_requests_are_422_naming_the_field(admin, body, field):
    response = admin.post(f"{V1}/api-keys", json=body)
    assert response.status_code == 422 and response.json()["error"]["field"] == field
    assert len(admin.get(f"{V1}/api-keys").json()["items"]) == 1


def test_a_key_cannot_grant_more_than_its_own_role(admin, client, database):
    refused = admin.post(f"{V1}/api-keys", json={"name": "escalate", "role": "owner"})
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "role"
    assert admin.post(f"{V1}/invitations", json={"email": "boss@example.com", "role": "owner"}).status_code == 403
    with database.session() as db:
        owner_key = workspaces.create_api_key(db, workspace_id=admin.workspace_id, name="owner", role="owner", actor=Actor.cli()).key
    assert client.post(f"{V1}/api-keys", json={"name": "second owner", "role": "owner"}, headers=bearer(owner_key)).status_code == 201


def test_rotating_the_write_key_retires_the_old_one(admin, client, database):
    old = admin.write_key
    rotated = admin.post(f"{V1}/write-key/rotate")
    assert rotated.status_code == 200 and rotated.json()["write_key"] != old
    with database.session() as db:
        assert workspaces.workspace_for_write_key(db, old) is None
        assert workspaces.workspace_for_write_key(db, rotated.json()["write_key"]).id == admin.workspace_id

    def basic(key):
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}

    event = {"userId": "C1", "event": "Signed Up"}
    assert client.post("/v1/track", json=event, headers=basic(old)).status_code == 401
    assert client.post("/v1/track", json=event, headers=basic(rotated.json()["write_key"])).status_code == 200


def test_invitation_then_member(admin, database):
    invited = admin.post(f"{V1}/invitations", json={"email": " Ken@Example.com ", "role": "agent"})
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["email"] == "ken@example.com" and body["role"] == "agent" and body["token"].startswith("inv_")
    assert body["accept_url"].endswith(f"/invitations/{body['token']}")
    assert admin.post(f"{V1}/invitations", json={"email": "not-mail", "role": "agent"}).json()["error"]["field"] == "email"
    assert admin.get(f"{V1}/members").json()["items"] == []
    with database.session() as db:
        workspaces.accept_invitation(db, token=body["token"], password="a long enough password", name="Ken")
    members = admin.get(f"{V1}/members").json()["items"]
    assert [(m["email"], m["role"], m["name"]) for m in members] == [("ken@example.com", "agent", "Ken")]


def test_audit_log_pages_with_a_cursor(admin):
    for n in range(5):
        admin.post(f"{V1}/tags", json={"name": f"tag-{n}"})
    seen, cursor = [], None
    while True:
        page = admin.get(f"{V1}/audit-log", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    ids = [entry["id"] for entry in seen]
    assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
    assert [e["detail"]["name"] for e in seen if e["action"] == "tag.create"] == [f"tag-{n}" for n in reversed(range(5))]
    assert {e["action"] for e in seen} >= {"workspace.create", "api_key.create", "tag.create"}
    tag_entry = next(e for e in seen if e["action"] == "tag.create")
    assert tag_entry["actor_kind"] == "api_key" and tag_entry["actor_label"] == "test"
    for bad in ("nonsense", "djE6LTU", "x" * 201):
        response = admin.get(f"{V1}/audit-log", params={"cursor": bad})
        assert response.status_code == 422 and response.json()["error"]["field"] == "cursor"
