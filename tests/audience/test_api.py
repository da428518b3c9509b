"""The Audience REST API: upsert, search, pages, merges, timeline, consent, tags, attributes and errors."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import bearer
from tutti.audience import commerce, contacts
from tutti.audience.models import AttributeDefinition, Contact, Event, Identity, Tag
from tutti.platform import workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow

LINE = "U" + "1" * 32


@pytest.fixture
def api(client, make_workspace):
    workspace_id, key, _ = make_workspace("Island Coffee")
    client.headers.update(bearer(key))
    client.workspace_id = workspace_id
    return client


def counts(database, workspace_id):
    with database.session() as db:
        return {model.__name__: db.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace_id))
                for model in (Contact, Identity, Tag, AttributeDefinition, Event)}


def test_upsert_creates_then_finds_the_same_person(api, database):
    body = {"identities": {"email": "Mei.Lin@Example.com", "phone": "0912-345-678"}, "name": "林美玲", "birthday": "1990-05-17",
            "city": "台北市", "attributes": {"member_level": "gold", "points": 1200}, "tags": ["vip"], "consent": {"email": "subscribed"}}
    created = api.post("/api/v1/contacts", json=body)
    assert created.status_code == 201, created.text
    profile = created.json()
    assert profile["created"] is True and profile["name"] == "林美玲" and profile["birthday"] == "1990-05-17"
    assert {(i["kind"], i["value"]) for i in profile["identities"]} == {("email", "mei.lin@example.com"), ("phone", "+886912345678")}
    assert {a["key"]: (a["type"], a["value"]) for a in profile["attributes"]} == {"member_level": ("string", "gold"), "points": ("number", 1200)}
    assert [t["name"] for t in profile["tags"]] == ["vip"] and profile["consent"]["email"]["status"] == "subscribed"

    again = api.post("/api/v1/contacts", json={"identities": {"phone": "+886 912 345 678"}, "city": "高雄市"})
    assert again.status_code == 200 and again.json()["id"] == profile["id"] and again.json()["created"] is False
    assert again.json()["city"] == "高雄市" and again.json()["name"] == "林美玲"  # fields not sent stay


def test_upsert_joins_contacts_the_identities_prove_are_one(api):
    anon = api.post("/api/v1/contacts", json={"identities": {"anonymous_id": "web-1"}}).json()
    known = api.post("/api/v1/contacts", json={"identities": {"external_id": "C1", "email": "a@example.com"}}).json()
    joined = api.post("/api/v1/contacts", json={"identities": {"external_id": "C1", "anonymous_id": "web-1"}})
    assert joined.status_code == 200 and joined.json()["id"] == known["id"] and joined.json()["merged"] == [anon["id"]]
    old = api.get(f"/api/v1/contacts/{anon['id']}").json()
    assert old["id"] == known["id"] and old["requested_id"] == anon["id"] and "merged into" in old["note"]


def test_search_filters_and_keyset_pages(api):
    for n in range(7):
        api.post("/api/v1/contacts", json={"identities": {"email": f"m{n}@example.com"}, "name": f"Member {n}",
                                           "attributes": {"level": "gold" if n % 2 else "silver", "points": n * 10},
                                           "tags": ["even"] if n % 2 == 0 else [], "consent": {"line": "subscribed"} if n < 3 else {}})
    seen, cursor = [], None
    while True:
        page = api.get("/api/v1/contacts", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [row["id"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)

    def names(**params):
        response = api.get("/api/v1/contacts", params=params)
        assert response.status_code == 200, response.text
        return sorted(row["name"] for row in response.json()["items"])

    assert names(q="m3@EXAMPLE.com") == ["Member 3"]
    assert names(q="Member 5") == ["Member 5"]
    assert names(identity_kind="email", identity_value="m4@example.com") == ["Member 4"]
    assert names(tag="even") == ["Member 0", "Member 2", "Member 4", "Member 6"]
    assert names(**{"attr.level": "gold"}) == ["Member 1", "Member 3", "Member 5"]
    assert names(**{"attr.points": "30", "attr.level": "gold"}) == ["Member 3"]
    assert names(consent="line:subscribed") == ["Member 0", "Member 1", "Member 2"]
    assert names(consent="line:followed", tag="even") == ["Member 0", "Member 2"]


@pytest.mark.parametrize("params, field", [
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"limit": 0}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"consent": "fax:subscribed"}, "consent"),
    ({"consent": "line:unsubscribed"}, "consent"),
    ({"identity_kind": "passport", "identity_value": "X1"}, "kind"),
    ({"attr.points": "lots"}, "attr.points"),
    ({"tagz": "vip"}, "tagz"),
    ({"q": "a\x00b"}, "q"),
    ({"q": "x" * 201}, "q"),
])
def test_bad_search_parameters_are_422_naming_the_field(api, params, field):
    api.post("/api/v1/attributes", json={"key": "points", "type": "number"})
    response = api.get("/api/v1/contacts", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"identities": {"email": "not-an-email"}}, "identities.email"),
    ({"identities": {"phone": "12"}}, "identities.phone"),
    ({"identities": {"line_uid": "Uxyz"}}, "identities.line_uid"),
    ({"identities": {}}, "identities"),
    ({"identities": {"email": "a@example.com"}, "favourite": "tea"}, "favourite"),
    ({"identities": {"email": "a@example.com", "fax": "1"}}, "identities.fax"),
    ({"identities": {"email": "a@example.com"}, "birthday": "1990-13-45"}, "birthday"),
    ({"identities": {"email": "a@example.com"}, "gender": "robot"}, "gender"),
    ({"identities": {"email": "a@example.com"}, "city": "x" * 101}, "city"),
    ({"identities": {"email": "a@example.com"}, "name": "a\x00b"}, "name"),
    ({"identities": {"email": "a@example.com"}, "attributes": {"points": "many"}}, "attributes.points"),
    ({"identities": {"email": "a@example.com"}, "attributes": {"bad key!": 1}}, "attributes"),
    ({"identities": {"email": "a@example.com"}, "attributes": {"x": {"nested": "\x00"}}}, "attributes"),
    ({"identities": {"email": "a@example.com"}, "consent": {"line": "unsubscribed"}}, "consent.line"),
    ({"identities": {"email": "a@example.com"}, "consent": {"fax": "subscribed"}}, "consent.fax.[key]"),
    ({"identities": {"email": "a@example.com"}, "tags": ["x" * 101]}, "tags.0"),
    ({"identities": {"email": "a@example.com"}, "tags": "vip"}, "tags"),
    ({"identities": "a@example.com"}, "identities"),
])
def test_bad_contact_bodies_are_422_naming_the_field_and_change_nothing(api, database, body, field):
    api.post("/api/v1/attributes", json={"key": "points", "type": "number"})
    before = counts(database, api.workspace_id)
    response = api.post("/api/v1/contacts", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field, response.json()
    assert counts(database, api.workspace_id) == before


def test_non_finite_numbers_are_refused(api):
    response = api.post("/api/v1/contacts", content=b'{"identities": {"email": "a@example.com"}, "attributes": {"x": NaN}}',
                        headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "attributes"


@pytest.mark.parametrize("path", ["/api/v1/contacts/99999999999999999999999", "/api/v1/contacts/0", "/api/v1/contacts/-4",
                                  "/api/v1/contacts/abc", "/api/v1/contacts/9223372036854775807"])
def test_odd_ids_never_500(api, path):
    response = api.get(path)
    assert response.status_code in (404, 422)
    if response.status_code == 422:
        assert response.json()["error"]["field"] == "contact_id"


def test_patch_changes_only_what_is_sent(api, database):
    contact = api.post("/api/v1/contacts", json={"identities": {"email": "k@example.com"}, "name": "Ken", "city": "台中市",
                                                 "attributes": {"level": "gold", "pet": "cat"}}).json()
    patched = api.patch(f"/api/v1/contacts/{contact['id']}", json={"city": None, "attributes": {"pet": None, "points": 5}})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["name"] == "Ken" and body["city"] is None
    assert {a["key"]: a["value"] for a in body["attributes"]} == {"level": "gold", "points": 5}
    bad = api.patch(f"/api/v1/contacts/{contact['id']}", json={"name": "Kenji", "attributes": {"points": "five"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "attributes.points"
    assert api.get(f"/api/v1/contacts/{contact['id']}").json()["name"] == "Ken"  # nothing of the failed request stayed
    assert api.patch(f"/api/v1/contacts/{contact['id']}", json={"identities": {}}).status_code == 422


def test_identities_add_conflict_and_remove(api):
    one = api.post("/api/v1/contacts", json={"identities": {"email": "one@example.com"}}).json()
    two = api.post("/api/v1/contacts", json={"identities": {"email": "two@example.com"}}).json()
    added = api.post(f"/api/v1/contacts/{one['id']}/identities", json={"kind": "phone", "value": "0912 000 111"})
    assert added.status_code == 200 and ("phone", "+886912000111") in {(i["kind"], i["value"]) for i in added.json()["identities"]}
    taken = api.post(f"/api/v1/contacts/{one['id']}/identities", json={"kind": "email", "value": "two@example.com"})
    assert taken.status_code == 409 and taken.json()["error"]["field"] == "value"
    assert api.post(f"/api/v1/contacts/{one['id']}/identities", json={"kind": "email", "value": "x@"}).json()["error"]["field"] == "value"
    assert api.post(f"/api/v1/contacts/{one['id']}/identities", json={"kind": "fax", "value": "1"}).json()["error"]["field"] == "kind"
    removed = api.delete(f"/api/v1/contacts/{one['id']}/identities/phone/+886912000111")
    assert removed.status_code == 200 and [i["kind"] for i in removed.json()["identities"]] == ["email"]
    assert api.delete(f"/api/v1/contacts/{one['id']}/identities/phone/+886912000111").status_code == 404
    assert api.delete(f"/api/v1/contacts/{one['id']}/identities/fax/1").status_code == 422
    assert two["id"] != one["id"]


def test_manual_merge(api):
    a = api.post("/api/v1/contacts", json={"identities": {"email": "a@example.com"}, "name": "A", "tags": ["x"]}).json()
    b = api.post("/api/v1/contacts", json={"identities": {"phone": "0912345678"}, "city": "台南市", "tags": ["y"]}).json()
    merged = api.post("/api/v1/contacts/merge", json={"winner_id": a["id"], "loser_id": b["id"]})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["id"] == a["id"] and body["merged_from"] == [b["id"]] and body["city"] == "台南市"
    assert {t["name"] for t in body["tags"]} == {"x", "y"} and len(body["identities"]) == 2
    assert api.post("/api/v1/contacts/merge", json={"winner_id": a["id"], "loser_id": a["id"]}).status_code == 422
    assert api.post("/api/v1/contacts/merge", json={"winner_id": a["id"], "loser_id": 10**30}).json()["error"]["field"] == "loser_id"
    assert api.post("/api/v1/contacts/merge", json={"winner_id": a["id"], "loser_id": 987654}).status_code == 404
    assert api.post("/api/v1/contacts/merge", json={"winner_id": "a", "loser_id": 1}).json()["error"]["field"] == "winner_id"


def test_events_timeline_and_orders(api, database):
    c = api.post("/api/v1/contacts", json={"identities": {"email": "t@example.com"}}).json()
    base = utcnow() - timedelta(days=3)
    for n in range(5):
        r = api.post(f"/api/v1/contacts/{c['id']}/events", json={"name": "Product Viewed", "message_id": f"m{n}",
                                                                 "occurred_at": (base + timedelta(hours=n)).isoformat(), "properties": {"n": n}})
        assert r.status_code == 201, r.text
    repeat = api.post(f"/api/v1/contacts/{c['id']}/events", json={"name": "Product Viewed", "message_id": "m0"})
    assert repeat.status_code == 200 and repeat.json()["recorded"] is False
    naive = api.post(f"/api/v1/contacts/{c['id']}/events", json={"name": "Login", "occurred_at": "2025-01-01T08:00:00"})
    assert naive.status_code == 201
    with database.session() as db:
        commerce.record_orders(db, workspace_id=api.workspace_id, orders=[commerce.NewOrder(
            contact_id=c["id"], external_id="SO-1", placed_at=base + timedelta(hours=10), total=880.0,
            lines=[commerce.NewOrderLine(sku="TEA-1", name="烏龍茶", quantity=2, unit_price=440.0)])])
    events_page = api.get(f"/api/v1/contacts/{c['id']}/events", params={"limit": 4}).json()
    assert [e["properties"].get("n") for e in events_page["items"]] == [4, 3, 2, 1]
    rest = api.get(f"/api/v1/contacts/{c['id']}/events", params={"limit": 4, "cursor": events_page["next_cursor"]}).json()
    assert [e["name"] for e in rest["items"]] == ["Product Viewed", "Login"] and rest["next_cursor"] is None
    timeline = api.get(f"/api/v1/contacts/{c['id']}/timeline").json()["items"]
    assert timeline[0]["type"] == "order" and timeline[0]["lines"][0]["sku"] == "TEA-1"
    orders = api.get(f"/api/v1/contacts/{c['id']}/orders").json()["items"]
    assert orders[0]["external_id"] == "SO-1" and orders[0]["total"] == 880.0 and orders[0]["lines"][0]["quantity"] == 2
    assert api.get(f"/api/v1/contacts/{c['id']}").json()["orders"]["count"] == 1
    assert api.get(f"/api/v1/contacts/{c['id']}/timeline", params={"cursor": "zzz"}).json()["error"]["field"] == "cursor"
    bad = api.post(f"/api/v1/contacts/{c['id']}/events", json={"name": "", "properties": []})
    assert bad.status_code == 422 and bad.json()["error"]["field"] in ("name", "properties")


def test_consent_put_and_history(api):
    c = api.post("/api/v1/contacts", json={"identities": {"line_uid": LINE}}).json()
    put = api.put(f"/api/v1/contacts/{c['id']}/consent/line", json={"status": "followed", "source": "line_webhook"})
    assert put.status_code == 200 and put.json()["status"] == "subscribed" and put.json()["changed"] is True
    same = api.put(f"/api/v1/contacts/{c['id']}/consent/line", json={"status": "subscribed"})
    assert same.json()["changed"] is False
    assert api.put(f"/api/v1/contacts/{c['id']}/consent/line", json={"status": "bounced"}).json()["error"]["field"] == "status"
    assert api.put(f"/api/v1/contacts/{c['id']}/consent/fax", json={"status": "subscribed"}).json()["error"]["field"] == "channel"
    api.put(f"/api/v1/contacts/{c['id']}/consent/line", json={"status": "blocked"})
    history = [i for i in api.get(f"/api/v1/contacts/{c['id']}/timeline").json()["items"] if i["type"] == "consent"]
    assert [i["status"] for i in history] == ["blocked", "subscribed"]


def test_tags_on_a_contact_and_in_bulk(api, database):
    ids = [api.post("/api/v1/contacts", json={"identities": {"email": f"t{n}@example.com"}}).json()["id"] for n in range(4)]
    tagged = api.post(f"/api/v1/contacts/{ids[0]}/tags", json={"tags": ["vip", "spring"]})
    assert tagged.status_code == 200 and [t["name"] for t in tagged.json()["items"]] == ["spring", "vip"]
    untagged = api.delete(f"/api/v1/contacts/{ids[0]}/tags", params={"name": ["spring"]})
    assert [t["name"] for t in untagged.json()["items"]] == ["vip"]
    assert api.delete(f"/api/v1/contacts/{ids[0]}/tags", params={"name": ["nope"]}).status_code == 404
    assert api.delete(f"/api/v1/contacts/{ids[0]}/tags").json()["error"]["field"] == "name"

    created = api.post("/api/v1/tags", json={"name": "winback", "description": "lapsed 90 days"})
    assert created.status_code == 201 and created.json()["contacts"] == 0
    assert api.post("/api/v1/tags", json={"name": "winback"}).status_code == 200
    soon = (utcnow() + timedelta(days=7)).isoformat()
    bulk = api.post("/api/v1/tags/winback/contacts", json={"contact_ids": ids[1:] + [ids[1]], "expires_at": soon})
    assert bulk.status_code == 200 and bulk.json()["applied"] == 3
    listing = {t["name"]: t["contacts"] for t in api.get("/api/v1/tags").json()["items"]}
    assert listing == {"spring": 0, "vip": 1, "winback": 3}
    missing = api.post("/api/v1/tags/winback/contacts", json={"contact_ids": [ids[0], 99999]})
    assert missing.status_code == 404 and missing.json()["error"]["details"]["missing"] == [99999]
    assert api.get("/api/v1/contacts", params={"tag": "winback"}).json()["items"].__len__() == 3  # ids[0] not tagged by the failed call
    assert api.post("/api/v1/tags/nosuch/contacts", json={"contact_ids": ids}).status_code == 404
    past = api.post("/api/v1/tags/winback/contacts", json={"contact_ids": ids, "expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.json()["error"]["field"] == "expires_at"
    assert api.post("/api/v1/tags/winback/contacts", json={"contact_ids": []}).json()["error"]["field"] == "contact_ids"
    assert api.delete("/api/v1/tags/winback").status_code == 204
    assert api.delete("/api/v1/tags/winback").status_code == 404
    assert api.get("/api/v1/contacts", params={"tag": "winback"}).status_code == 404


def test_attributes_declare_and_list(api):
    assert api.post("/api/v1/attributes", json={"key": "points", "type": "number", "label": "點數"}).status_code == 201
    assert api.post("/api/v1/attributes", json={"key": "points", "type": "number"}).status_code == 200
    clash = api.post("/api/v1/attributes", json={"key": "points", "type": "string"})
    assert clash.status_code == 409 and clash.json()["error"]["field"] == "key"
    assert api.post("/api/v1/attributes", json={"key": "city", "type": "string"}).status_code == 409
    assert api.post("/api/v1/attributes", json={"key": "9lives", "type": "string"}).json()["error"]["field"] == "key"
    assert api.post("/api/v1/attributes", json={"key": "x", "type": "colour"}).json()["error"]["field"] == "type"
    items = api.get("/api/v1/attributes").json()["items"]
    assert [(a["key"], a["type"], a["label"]) for a in items] == [("points", "number", "點數")]


def test_unauthenticated_and_revoked_keys_are_401(client, make_workspace, database):
    workspace_id, key, _ = make_workspace("Shop")
    assert client.get("/api/v1/contacts").status_code == 401
    assert client.get("/api/v1/contacts", headers={"Authorization": "Bearer tk_nonsense"}).status_code == 401
    assert client.get("/api/v1/contacts", headers={"Authorization": f"Basic {key}"}).status_code == 401
    assert client.get("/api/v1/contacts", headers=bearer(key)).status_code == 200
    with database.session() as db:
        record = workspaces.authenticate_api_key(db, key)
        workspaces.revoke_api_key(db, workspace_id=workspace_id, key_id=record.id, actor=Actor.cli())
    response = client.get("/api/v1/contacts", headers=bearer(key))
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_erased_contact_is_gone_from_the_api(api, database):
    c = api.post("/api/v1/contacts", json={"identities": {"email": "gone@example.com"}}).json()
    assert api.post(f"/api/v1/contacts/{c['id']}/erase").status_code == 200
    assert api.get(f"/api/v1/contacts/{c['id']}").status_code == 404
    assert api.get("/api/v1/contacts", params={"q": "gone@example.com"}).json()["items"] == []
    fresh = api.post("/api/v1/contacts", json={"identities": {"email": "gone@example.com"}})
    assert fresh.status_code == 201 and fresh.json()["id"] != c["id"]
    with database.session() as db:
        assert contacts.live_contact(db, workspace_id=api.workspace_id, contact_id=fresh.json()["id"]).erased_at is None


def test_openapi_documents_every_route_with_models_and_examples(client):
    from tutti.audience import api as audience_api
    from tutti.platform import api as platform_api

    mine = {("/api/v1" + route.path, method.lower()) for router in (audience_api.router, platform_api.router)
            for route in router.routes for method in route.methods}
    schema = client.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items() if (path, method) in mine]
    assert len(operations) == len(mine) >= 30
    for path, method, op in operations:
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, f"{method} {path} has no success response"
        if ok != ["204"]:
            content = op["responses"][ok[0]]["content"]["application/json"]["schema"]
            assert "$ref" in content, f"{method} {path} has no response model"
        for code in ("401", "422"):
            assert code in op["responses"], f"{method} {path} does not document {code}"
    assert schema["components"]["schemas"]["ContactIn"]["examples"]
    assert client.get("/docs").status_code == 200


NASTY_IDS = ["99999999999999999999999", "9223372036854775808", "-1", "0", "1.5", "abc", "%00", "x" * 400, "%F0%9F%98%80"]
NASTY_BODIES = [None, b"", b"[]", b"null", b"{}", b'{"a":', b'"text"', b"\xff\xfe", b'{"unknown": 1}',
                b'{"identities": {"email": 5}}', b'{"identities": {"email": "big@example.com"}, "attributes": {"points": "1e999"}}',
                b'{"identities": {"email": "big@example.com"}, "attributes": {"big": 1e308, "huge": 123456789012345678901234567890}}',
                b'{"identities": {"email": "big@example.com"}, "attributes": {"points": ' + b"9" * 400 + b"}}",
                b'{"identities": {"email": "n@example.com"}, "attributes": {"points": "1e999", "n": "\\u0000"}}',
                b'{"name": "\\u0000", "tags": ["\\u0000"], "contact_ids": [99999999999999999999999], "winner_id": 1e400}',
                b'{"properties": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b', "name": "x"}',
                b'{"key": "points", "type": "number", "label": "' + b"x" * 5000 + b'"}',
                b'{"status": "\\u0000", "at": "0001-01-01T00:00:00+14:00"}',
                b'{"expires_at": "9999-12-31T23:59:59-12:00", "tags": ["a"], "contact_ids": [1]}']


def _all_api_routes():
    from tests.api_world import api_routes
    from tutti.platform.config import Settings
    from tutti.web.app import create_app

    return api_routes(create_app(Settings(database_url="sqlite://", queue_url="immediate", secret_key="x"), run_worker=False))


@pytest.mark.parametrize("route", _all_api_routes(), ids=lambda route: f"{route[0]} {route[1].removeprefix('/api/v1')}")
def test_no_input_gets_a_500(api, route):
    """Every route, with odd ids, bodies and query strings: answers are 4xx, never 500."""
    method, path = route
    api.post("/api/v1/attributes", json={"key": "points", "type": "number"})
    contact = api.post("/api/v1/contacts", json={"identities": {"email": "fuzz@example.com"}, "tags": ["a"]}).json()["id"]
    spare_key = api.post("/api/v1/api-keys", json={"name": "spare", "role": "analyst"}).json()["id"]
    sane = {"{contact_id}": str(contact), "{name}": "a", "{channel}": "email", "{kind}": "email", "{value}": "fuzz@example.com",
            "{key_id}": str(spare_key), "{import_id}": "1"}

    def fill(path: str, odd: str | None = None, param: str | None = None) -> str:
        for name, value in sane.items():
            path = path.replace(name, odd if name == param else value)
        return path

    with_body = method in ("POST", "PUT", "PATCH")
    queries = ["?limit=1&cursor=%00&q=%00&attr.points=1e999", "?limit=99999999999999999999&name=%00&attr.=1&cursor=djE6MA"]
    attempts = [(fill(path, odd, param), b"{}" if with_body else None) for odd in NASTY_IDS for param in sane if param in path]
    attempts += [(fill(path) + query, None) for query in queries]
    attempts += [(fill(path), body) for body in (NASTY_BODIES if with_body else [None])]
    failures = []
    for url, body in attempts:
        try:
            response = api.request(method, url, content=body, headers={"content-type": "application/json"})
            status, text = response.status_code, response.text[:200]
        except Exception as error:  # noqa: BLE001 - the test client re-raises what the app did not handle
            status, text = 500, repr(error)[:200]
        assert status != 401, (url, text)  # every attempt really reached the route
        if status >= 500:
            failures.append((url, body[:80] if body else body, status, text))
    assert not failures, "\n".join(map(str, failures))
