"""The segments REST API end to end: create, live count, words, refresh, member pages, CSV export, and
errors that name the path in the rule tree."""

from __future__ import annotations

from tests.conftest import bearer
from tutti.audience import contacts, tags
from tutti.platform.audit import Actor


def test_segments_api(client, database, make_workspace):
    wid, key, _ = make_workspace("API shop")
    with database.session() as db:
        ids = []
        for n in range(5):
            contact, _ = contacts.upsert(db, workspace_id=wid, actor=Actor.cli(), identities={"email": f"m{n}@example.com"},
                                         profile={"name": f"會員 {n}"})
            ids.append(contact.id)
        tags.apply(db, workspace_id=wid, contact_ids=ids[:3], tag="VIP")
    h = bearer(key)
    rules = {"op": "and", "children": [{"kind": "tag", "tag": "VIP"}]}
    assert client.post("/api/v1/segments/count", json={"rules": rules}, headers=h).json() == {"count": 3}
    bad = client.post("/api/v1/segments/count", json={"rules": {"children": [{"kind": "tag", "tag": "VIP"}, {"kind": "rfm", "dimension": "x", "low": 1, "high": 5}]}}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rules.children[1].dimension"
    made = client.post("/api/v1/segments", json={"name": "VIP", "rules": rules, "refresh_minutes": 30}, headers=h)
    assert made.status_code == 201, made.text
    sid = made.json()["id"]
    assert made.json()["rules"]["root"]["children"][0] == {"kind": "tag", "tag": "VIP", "op": "has"}
    assert client.post("/api/v1/segments", json={"name": "VIP", "rules": rules}, headers=h).status_code == 409
    refreshed = client.post(f"/api/v1/segments/{sid}/refresh", headers=h).json()
    assert (refreshed["size"], refreshed["entered"], refreshed["left"]) == (3, 3, 0)
    page = client.get(f"/api/v1/segments/{sid}/members?limit=2", headers=h).json()
    assert [m["contact_id"] for m in page["items"]] == ids[:2] and page["next_after"] == ids[1]
    rest = client.get(f"/api/v1/segments/{sid}/members?limit=2&after={ids[1]}", headers=h).json()
    assert [m["contact_id"] for m in rest["items"]] == ids[2:3] and rest["next_after"] is None
    export = client.get(f"/api/v1/segments/{sid}/export.csv", headers=h)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.text.lstrip("\ufeff").splitlines()[1:] == [f"{i},會員 {n},m{n}@example.com,,,," for n, i in enumerate(ids[:3])]
    parsed = client.post("/api/v1/segments/parse", json={"text": "VIP，喜歡貓", "locale": "zh-TW"}, headers=h).json()
    assert parsed["count"] == 3 and parsed["not_understood"] == ["喜歡貓"] and parsed["source"] == "parser"
    patched = client.patch(f"/api/v1/segments/{sid}", json={"rules": {"children": [{"kind": "tag", "tag": "VIP", "op": "has_not"}]}}, headers=h)
    assert patched.status_code == 200
    assert client.post(f"/api/v1/segments/{sid}/refresh", headers=h).json()["left"] == 3
    assert client.delete(f"/api/v1/segments/{sid}", headers=h).status_code == 204
    assert client.get(f"/api/v1/segments/{sid}", headers=h).status_code == 404
