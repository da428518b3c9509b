"""The channels page: connect LINE to the emulator, test it, see errors in words, disable, remove; zh-TW and English."""

from __future__ import annotations


def test_connect_test_disable_remove(owner_client, line_emulator):
    client = owner_client
    page = client.get("/channels")
    assert page.status_code == 200 and 'href="/channels"' in page.text
    form = {"csrf_token": client.csrf, "kind": "line", "name": "茶語 LINE", "line.channel_id": "1650000009",
            "line.channel_secret": line_emulator.channel_secret, "line.access_token": line_emulator.access_token,
            "line.api_base_url": line_emulator.base_url}
    created = client.post("/channels", data=form)
    assert created.status_code == 200 and "茶語 LINE" in created.text
    assert line_emulator.access_token not in created.text and line_emulator.channel_secret not in created.text
    channel_id = int(created.text.split('data-channel="')[1].split('"')[0])
    assert f"/webhooks/line/{channel_id}" in created.text

    tested = client.post(f"/channels/{channel_id}/test", data={"csrf_token": client.csrf})
    assert tested.status_code == 200 and "@tutti-emu" in tested.text and "alert-success" in tested.text

    bad = client.post("/channels", data={**form, "line.access_token": ""})
    assert bad.status_code == 422 and "credentials.access_token" in bad.text
    assert line_emulator.channel_secret not in bad.text  # secrets are not echoed back into the form

    disabled = client.post(f"/channels/{channel_id}/status", data={"csrf_token": client.csrf, "status": "disabled"}, follow_redirects=True)
    assert "badge-gray" in disabled.text
    removed = client.post(f"/channels/{channel_id}/delete", data={"csrf_token": client.csrf}, follow_redirects=True)
    assert removed.status_code == 200 and "茶語 LINE" not in removed.text


def test_webhook_secret_shown_once_and_both_languages(owner_client):
    client = owner_client
    created = client.post("/channels", data={"csrf_token": client.csrf, "kind": "webhook", "name": "CRM",
                                             "webhook.url": "https://crm.example/hook"})
    assert "whsec_" in created.text
    assert "whsec_" not in client.get("/channels").text
    client.cookies.set("tutti_locale", "zh-TW")
    assert "已連接的通路" in client.get("/channels").text
    client.cookies.set("tutti_locale", "en")
    assert "Connected channels" in client.get("/channels").text


def test_without_csrf_nothing_is_connected(owner_client):
    answer = owner_client.post("/channels", data={"kind": "webhook", "name": "x", "webhook.url": "https://x.example"})
    assert answer.status_code == 403
    assert "x.example" not in owner_client.get("/channels").text
