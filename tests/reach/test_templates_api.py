"""The templates API: validation errors name the content path, preview renders as a contact."""

from __future__ import annotations

from tests.conftest import bearer
from tests.reach.tracking_world import make_contacts

V1 = "/api/v1"
BUTTONS = {"messages": [{"type": "template", "altText": "sale", "template": {"type": "buttons", "text": "Hi {{ name }}", "actions": [
    {"type": "uri", "label": f"go {i}", "uri": "https://shop.example/"} for i in range(5)]}}]}


def test_create_refuses_line_limits_naming_the_path(client, make_workspace):
    _, key, _ = make_workspace()
    response = client.post(f"{V1}/templates", headers=bearer(key), json={"name": "x", "channel": "line", "content": BUTTONS})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "content.messages[0].template.actions"
    assert "content.messages[0].template.actions[4]" in [d["field"] for d in error["details"]]
    assert client.get(f"{V1}/templates", headers=bearer(key)).json()["items"] == []


def test_create_update_preview_and_delete(client, database, make_workspace):
    workspace_id, key, _ = make_workspace()
    person = make_contacts(database, workspace_id, 1, prefix="mei")[0]
    content = {"text": "{{ name | default('朋友') }}，春季新品 8 折：https://shop.example/s"}
    created = client.post(f"{V1}/templates", headers=bearer(key), json={"name": "春季 SMS", "channel": "sms", "content": content})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["info"]["sms"] == {"encoding": "UCS-2", "characters": len(content["text"]), "segments": 1, "per_segment": 70}
    template_id = body["id"]
    renamed = client.patch(f"{V1}/templates/{template_id}", headers=bearer(key), json={"name": "Spring SMS"})
    assert renamed.json()["name"] == "Spring SMS"
    bad = client.patch(f"{V1}/templates/{template_id}", headers=bearer(key), json={"content": {"text": "{% if %}"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "content.text" and "line 1" in bad.json()["error"]["message"]
    preview = client.post(f"{V1}/templates/preview", headers=bearer(key), json={"channel": "sms", "content": content, "contact_id": person})
    assert preview.status_code == 200
    assert preview.json()["payload"]["text"].startswith("mei 0，春季新品")
    assert "unsubscribe_url" in preview.json()["variables"]
    sample = client.post(f"{V1}/templates/preview", headers=bearer(key), json={"channel": "sms", "content": content})
    assert sample.json()["payload"]["text"].startswith("王小明")
    sent = client.post(f"{V1}/templates/{template_id}/test-send", headers=bearer(key), json={"to": "+886912345678"})
    assert sent.status_code == 200 and sent.json()["status"] == "failed" and "no sms channel" in sent.json()["reason"]
    assert client.delete(f"{V1}/templates/{template_id}", headers=bearer(key)).status_code == 204
    assert client.get(f"{V1}/templates/{template_id}", headers=bearer(key)).status_code == 404
