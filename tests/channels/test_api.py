"""REST API of channels: connect, masked secrets, test against the emulator, update, delete, errors."""

from __future__ import annotations

from tests.conftest import bearer


def test_channel_lifecycle(client, make_workspace, line_emulator):
    _, key, _ = make_workspace("Shop")
    headers = bearer(key)
    created = client.post("/api/v1/channels", headers=headers, json={
        "kind": "line", "name": "好物 LINE", "config": {"api_base_url": line_emulator.base_url, "channel_id": "1650000001"},
        "credentials": {"channel_secret": line_emulator.channel_secret, "access_token": line_emulator.access_token}})
    assert created.status_code == 201, created.text
    channel = created.json()
    assert line_emulator.access_token not in created.text and line_emulator.channel_secret not in created.text
    assert channel["credentials"]["access_token"].startswith("••••")
    assert channel["webhook_path"] == f"/webhooks/line/{channel['id']}" and channel["status"] == "active"

    tested = client.post(f"/api/v1/channels/{channel['id']}/test", headers=headers)
    assert tested.status_code == 200 and tested.json()["ok"] and tested.json()["bot_user_id"] == line_emulator.bot_user_id
    shown = client.get(f"/api/v1/channels/{channel['id']}", headers=headers).json()
    assert shown["basic_id"] == "@tutti-emu" and shown["last_tested_at"]

    patched = client.patch(f"/api/v1/channels/{channel['id']}", headers=headers, json={"credentials": {"access_token": "wrong-token-xyz"}})
    assert patched.status_code == 200
    failed = client.post(f"/api/v1/channels/{channel['id']}/test", headers=headers).json()
    assert failed["ok"] is False and "access token" in failed["message"]
    assert client.get(f"/api/v1/channels/{channel['id']}", headers=headers).json()["status"] == "error"

    listed = client.get("/api/v1/channels?kind=line", headers=headers).json()["items"]
    assert [c["id"] for c in listed] == [channel["id"]]
    assert client.delete(f"/api/v1/channels/{channel['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/channels/{channel['id']}", headers=headers).status_code == 404


def test_webhook_secret_is_shown_once_and_errors_name_the_field(client, make_workspace):
    _, key, _ = make_workspace("Shop")
    headers = bearer(key)
    created = client.post("/api/v1/channels", headers=headers, json={"kind": "webhook", "name": "CRM", "config": {"url": "https://crm.example/hook"}})
    assert created.status_code == 201 and created.json()["signing_secret"].startswith("whsec_")
    again = client.get(f"/api/v1/channels/{created.json()['id']}", headers=headers).json()
    assert again["signing_secret"] is None and created.json()["signing_secret"] not in str(again)
    missing = client.post("/api/v1/channels", headers=headers, json={"kind": "line", "name": "x", "credentials": {"channel_secret": "s"}})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "credentials.access_token"
    unknown = client.post("/api/v1/channels", headers=headers, json={"kind": "pigeon", "name": "x"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "kind"


def test_only_managers_change_channels(client, make_workspace):
    _, key, _ = make_workspace("Shop", role="marketer")
    assert client.get("/api/v1/channels", headers=bearer(key)).status_code == 200
    denied = client.post("/api/v1/channels", headers=bearer(key), json={"kind": "webhook", "name": "x", "config": {"url": "https://x.example"}})
    assert denied.status_code == 403
