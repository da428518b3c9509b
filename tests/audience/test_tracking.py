"""The Segment-compatible tracking API: every call type, de-duplication, limits, auth, tenancy, e-commerce."""

import base64
import gzip

import orjson
import pytest
from sqlalchemy import func, select

from tutti.audience import commerce
from tutti.audience.models import AttributeDefinition, Contact, Event, Identity, Order, OrderLine, Product
from tutti.platform import metrics

LINE_UID = "U" + "c" * 32


def basic(write_key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


@pytest.fixture
def shop(make_workspace):
    workspace_id, _, write_key = make_workspace("Tea Shop")
    return workspace_id, write_key


def count(database, model, **where):
    with database.read_session() as db:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return db.scalar(query)


def contact_of(database, workspace_id, kind, value):
    with database.read_session() as db:
        contact_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value == value))
        return db.get(Contact, contact_id) if contact_id else None


def test_identify_creates_contact_with_identities_profile_and_attributes(client, database, shop):
    workspace_id, key = shop
    answer = client.post("/v1/identify", headers=basic(key), json={
        "userId": "M001", "anonymousId": "anon-1", "messageId": "m-1", "timestamp": "2025-03-01T10:00:00+08:00",
        "context": {"locale": "zh-TW", "ip": "1.2.3.4"},
        "traits": {"email": " Mei@Example.com ", "phone": "0912-345-678", "lineUserId": LINE_UID, "firstName": "小美",
                   "lastName": "王", "gender": "女", "birthday": "1990-05-01", "address": {"city": "台北市"},
                   "plan": "gold", "points": 120, "vip": True},
    })
    assert answer.status_code == 200 and answer.json() == {"success": True}
    person = contact_of(database, workspace_id, "external_id", "M001")
    assert person is not None
    assert (person.name, person.gender, str(person.birthday), person.city, person.locale) == ("王小美", "female", "1990-05-01", "台北市", "zh-TW")
    assert person.attributes == {"plan": "gold", "points": 120, "vip": True}
    for kind, value in [("anonymous_id", "anon-1"), ("email", "mei@example.com"), ("phone", "+886912345678"), ("line_uid", LINE_UID)]:
        assert contact_of(database, workspace_id, kind, value).id == person.id, kind
    with database.read_session() as db:
        event = db.scalar(select(Event).where(Event.message_id == "m-1"))
        assert (event.kind, event.name, event.contact_id, event.context["ip"]) == ("identify", "identify", person.id, "1.2.3.4")
        assert event.occurred_at.isoformat() == "2025-03-01T02:00:00+00:00"
        assert person.last_seen_at is not None


def test_track_page_screen_group_are_events_on_the_right_contact(client, database, shop):
    workspace_id, key = shop
    batch = {"batch": [
        {"type": "track", "userId": "M1", "event": "Signed Up", "properties": {"plan": "free"}, "messageId": "t1"},
        {"type": "page", "anonymousId": "a1", "name": "首頁", "properties": {"title": "Home"},
         "context": {"page": {"url": "https://shop.tw/", "path": "/"}}, "messageId": "p1"},
        {"type": "screen", "userId": "M1", "name": "Cart", "messageId": "s1"},
        {"type": "group", "userId": "M1", "groupId": "company-9", "traits": {"name": "ACME"}, "messageId": "g1"},
    ], "context": {"library": {"name": "test"}}}
    assert client.post("/v1/batch", headers=basic(key), json=batch).status_code == 200
    with database.read_session() as db:
        stored = {e.message_id: e for e in db.scalars(select(Event).where(Event.workspace_id == workspace_id))}
    assert {m: (e.kind, e.name) for m, e in stored.items()} == {
        "t1": ("track", "Signed Up"), "p1": ("page", "首頁"), "s1": ("screen", "Cart"), "g1": ("group", "group")}
    assert stored["p1"].properties == {"title": "Home", "name": "首頁", "url": "https://shop.tw/", "path": "/"}
    assert stored["g1"].properties == {"groupId": "company-9", "traits": {"name": "ACME"}}
    assert stored["t1"].context == {"library": {"name": "test"}}  # the batch's context reaches each message
    m1 = contact_of(database, workspace_id, "external_id", "M1").id
    assert stored["t1"].contact_id == stored["s1"].contact_id == stored["g1"].contact_id == m1
    assert stored["p1"].contact_id == contact_of(database, workspace_id, "anonymous_id", "a1").id != m1


def test_anonymous_visitor_then_identify_joins_one_profile_and_alias_merges(client, database, shop):
    workspace_id, key = shop
    client.post("/v1/page", headers=basic(key), json={"anonymousId": "visitor", "messageId": "v1"})
    client.post("/v1/identify", headers=basic(key), json={"anonymousId": "visitor", "userId": "M7", "messageId": "v2"})
    person = contact_of(database, workspace_id, "external_id", "M7")
    assert contact_of(database, workspace_id, "anonymous_id", "visitor").id == person.id
    assert count(database, Event, contact_id=person.id) == 2
    # alias: an old user id becomes the new one
    client.post("/v1/track", headers=basic(key), json={"userId": "old-login", "event": "Logged In", "messageId": "v3"})
    old = contact_of(database, workspace_id, "external_id", "old-login")
    answer = client.post("/v1/alias", headers=basic(key), json={"previousId": "old-login", "userId": "M7", "messageId": "v4"})
    assert answer.status_code == 200
    with database.read_session() as db:
        assert db.get(Contact, old.id).merged_into_id == person.id
        assert db.scalar(select(func.count()).select_from(Event).where(Event.contact_id == person.id)) == 4


def test_same_batch_sent_twice_stores_nothing_twice(client, database, shop):
    workspace_id, key = shop
    batch = {"batch": [
        {"type": "track", "userId": f"U{i % 3}", "event": "Product Viewed", "messageId": f"msg-{i}",
         "properties": {"product_id": f"SKU{i}", "name": f"Tea {i}", "price": 100 + i}} for i in range(20)]}
    batch["batch"].append(dict(batch["batch"][0]))  # the same message twice in one batch
    assert client.post("/v1/batch", headers=basic(key), json=batch).status_code == 200
    assert client.post("/v1/import", headers=basic(key), json=batch).status_code == 200
    assert count(database, Event, workspace_id=workspace_id) == 20
    assert count(database, Contact, workspace_id=workspace_id) == 3
    assert count(database, Product, workspace_id=workspace_id) == 20


def test_messages_without_message_id_are_deduplicated_by_content(client, database, shop):
    workspace_id, key = shop
    message = {"userId": "M1", "event": "Clicked", "timestamp": "2025-01-01T00:00:00Z"}
    for _ in range(2):
        assert client.post("/v1/track", headers=basic(key), json=message).status_code == 200
    assert count(database, Event, workspace_id=workspace_id) == 1


def test_bad_batch_is_refused_whole_listing_every_bad_index(client, database, shop):
    workspace_id, key = shop
    batch = {"batch": [
        {"type": "track", "userId": "ok", "event": "Fine", "messageId": "good-1"},
        {"type": "track", "event": "No one", "messageId": "bad-1"},
        {"type": "teleport", "userId": "x", "messageId": "bad-2"},
        {"type": "track", "userId": "x", "messageId": "bad-3"},
        {"type": "identify", "userId": "x", "timestamp": "yesterday", "messageId": "bad-4"},
    ]}
    answer = client.post("/v1/batch", headers=basic(key), json=batch)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert [d["index"] for d in error["details"]] == [1, 2, 3, 4]
    assert {d["field"] for d in error["details"]} == {"batch[1].userId", "batch[2].type", "batch[3].event", "batch[4].timestamp"}
    assert "nothing was stored" in error["message"] and answer.json()["message"] == error["message"]
    assert count(database, Event) == 0 and count(database, Contact) == 0


@pytest.mark.parametrize("body, field", [
    (b"{not json", "body"), (b"[1, 2]", "body"), (b'{"batch": "nope"}', "batch"),
])
def test_malformed_requests_are_400_naming_the_field(client, database, shop, body, field):
    _, key = shop
    answer = client.post("/v1/batch", headers={**basic(key), "Content-Type": "application/json"}, content=body)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == field
    assert count(database, Event) == 0


def test_size_limits_are_segments_and_store_nothing(client, database, shop):
    _, key = shop
    big = "x" * (33 * 1024)
    answer = client.post("/v1/track", headers=basic(key), json={"userId": "u", "event": "Big", "properties": {"blob": big}})
    assert answer.status_code == 400 and "32 KB" in answer.json()["error"]["message"]
    batch = {"batch": [{"type": "track", "userId": "u", "event": "Small", "messageId": "s"},
                       {"type": "track", "userId": "u", "event": "Big", "messageId": "b", "properties": {"blob": big}}]}
    answer = client.post("/v1/batch", headers=basic(key), json=batch)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "too_large" and error["details"][0]["index"] == 1 and "32 KB" in error["message"]
    huge = {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"m{i}", "properties": {"p": "y" * 20000}} for i in range(30)]}
    answer = client.post("/v1/batch", headers=basic(key), json=huge)
    assert answer.status_code == 400 and "500 KB" in answer.json()["error"]["message"]
    # a gzip bomb is stopped at the limit too
    bomb = gzip.compress(orjson.dumps({"batch": [], "pad": "0" * (2 * 1024 * 1024)}))
    answer = client.post("/v1/batch", headers={**basic(key), "Content-Encoding": "gzip"}, content=bomb)
    assert answer.status_code == 400 and "500 KB" in answer.json()["error"]["message"]
    assert count(database, Event) == 0 and count(database, Contact) == 0


def test_gzip_body_and_write_key_in_body_are_accepted(client, database, shop):
    workspace_id, key = shop
    body = gzip.compress(orjson.dumps({"writeKey": key, "batch": [{"type": "track", "userId": "u", "event": "Zipped", "messageId": "z"}]}))
    answer = client.post("/v1/batch", headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, content=body)
    assert answer.status_code == 200
    assert count(database, Event, workspace_id=workspace_id, name="Zipped") == 1


def test_bad_write_key_is_401_and_stores_nothing(client, database, shop):
    _, key = shop
    message = {"userId": "u", "event": "E"}
    for headers in ({}, basic("wk_wrong"), {"Authorization": "Basic !!!"}):
        answer = client.post("/v1/track", headers=headers, json=message)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", headers
    assert client.post("/v1/track", json={**message, "writeKey": "wk_wrong"}).status_code == 401
    assert count(database, Event) == 0


def test_a_write_key_only_writes_into_its_own_workspace(client, database, make_workspace):
    shop_a, _, key_a = make_workspace("A")
    shop_b, _, key_b = make_workspace("B")
    client.post("/v1/identify", headers=basic(key_a), json={"userId": "same", "traits": {"email": "a@example.com"}, "messageId": "same-id"})
    client.post("/v1/identify", headers=basic(key_b), json={"userId": "same", "traits": {"email": "b@example.com"}, "messageId": "same-id"})
    a = contact_of(database, shop_a, "external_id", "same")
    b = contact_of(database, shop_b, "external_id", "same")
    assert a.workspace_id == shop_a and b.workspace_id == shop_b and a.id != b.id
    assert contact_of(database, shop_a, "email", "b@example.com") is None
    assert count(database, Event, workspace_id=shop_a) == 1 and count(database, Event, workspace_id=shop_b) == 1
    # a write key cannot reach the other shop's orders either
    order = {"userId": "same", "event": "Order Completed", "properties": {"order_id": "O1", "total": 100}}
    client.post("/v1/track", headers=basic(key_a), json=order)
    client.post("/v1/track", headers=basic(key_b), json={"userId": "same", "event": "Order Refunded", "properties": {"order_id": "O1"}})
    with database.read_session() as db:
        assert db.scalar(select(Order.status).where(Order.workspace_id == shop_a)) == "completed"
        assert db.scalar(select(func.count()).select_from(Order).where(Order.workspace_id == shop_b)) == 0


def test_bad_identity_traits_are_dropped_and_the_event_still_lands(client, database, shop):
    workspace_id, key = shop
    client.post("/v1/identify", headers=basic(key), json={"userId": "M5", "traits": {"email": "m5@example.com", "age": 30}})
    answer = client.post("/v1/identify", headers=basic(key), json={
        "userId": "M5", "messageId": "bad-traits",
        "traits": {"email": "not-an-email", "phone": "12", "lineUserId": "nope", "gender": "robot", "age": "thirty", "nick": "Mo"}})
    assert answer.status_code == 200
    person = contact_of(database, workspace_id, "external_id", "M5")
    with database.read_session() as db:
        kinds = set(db.scalars(select(Identity.kind).where(Identity.contact_id == person.id)))
        assert kinds == {"external_id", "email"}
        assert db.scalar(select(Event.contact_id).where(Event.message_id == "bad-traits")) == person.id
        types = dict(db.execute(select(AttributeDefinition.key, AttributeDefinition.type)).all())
    assert person.attributes == {"age": 30, "nick": "Mo"}  # "thirty" did not fit the number type
    assert types == {"age": "number", "nick": "string"} and person.gender is None


def test_order_completed_records_order_and_catalogue_refund_and_cancel_change_status(client, database, shop):
    workspace_id, key = shop
    completed = {"userId": "M9", "event": "Order Completed", "messageId": "o1", "timestamp": "2025-04-01T12:00:00Z", "properties": {
        "order_id": "A-100", "total": 1130, "subtotal": 1200, "discount": 100, "shipping": 30, "currency": "TWD",
        "products": [{"product_id": "TEA-1", "sku": "T1", "name": "烏龍茶", "category": "tea", "price": 400, "quantity": 2},
                     {"product_id": "CUP-1", "name": "Cup", "price": 400, "quantity": 1}]}}
    viewed = {"userId": "M9", "event": "Product Viewed", "messageId": "pv", "properties": {"product_id": "POT-1", "name": "Pot", "price": 990, "brand": "Tutti"}}
    assert client.post("/v1/batch", headers=basic(key), json={"batch": [{"type": "track", **viewed}, {"type": "track", **completed}]}).status_code == 200
    buyer = contact_of(database, workspace_id, "external_id", "M9")
    with database.read_session() as db:
        views = commerce.orders_of(db, workspace_id=workspace_id, contact_id=buyer.id)
        assert len(views) == 1
        order = views[0]
        assert (order.external_id, order.total, order.subtotal, order.discount, order.shipping, order.status) == ("A-100", 1130, 1200, 100, 30, "completed")
        assert order.placed_at.isoformat() == "2025-04-01T12:00:00+00:00"
        assert sorted((line.sku, line.quantity, line.unit_price) for line in order.lines) == [("CUP-1", 1, 400), ("TEA-1", 2, 400)]
        assert all(line.product_id for line in order.lines)
        catalogue = {p.sku: p for p in db.scalars(select(Product).where(Product.workspace_id == workspace_id))}
        assert set(catalogue) == {"TEA-1", "CUP-1", "POT-1"} and catalogue["POT-1"].brand == "Tutti" and catalogue["POT-1"].price == 990
    refund = {"userId": "M9", "event": "Order Refunded", "messageId": "r1", "properties": {"order_id": "A-100", "products": [{"product_id": "CUP-1"}]}}
    assert client.post("/v1/track", headers=basic(key), json=refund).status_code == 200
    client.post("/v1/track", headers=basic(key), json={"userId": "M9", "event": "Order Completed", "messageId": "o2",
                                                        "properties": {"order_id": "A-101", "revenue": 500}})
    client.post("/v1/track", headers=basic(key), json={"userId": "M9", "event": "Order Cancelled", "messageId": "c1", "properties": {"order_id": "A-101"}})
    client.post("/v1/track", headers=basic(key), json={"userId": "M9", "event": "Order Refunded", "messageId": "r2", "properties": {"order_id": "unknown"}})
    with database.read_session() as db:
        orders = {v.external_id: v for v in commerce.orders_of(db, workspace_id=workspace_id, contact_id=buyer.id)}
        assert (orders["A-100"].status, orders["A-100"].refunded_total) == ("partially_refunded", 400)
        assert {line.sku: line.status for line in orders["A-100"].lines} == {"TEA-1": "ok", "CUP-1": "refunded"}
        assert (orders["A-101"].status, orders["A-101"].total) == ("cancelled", 500)
    assert count(database, Event, workspace_id=workspace_id) == 6  # every e-commerce call is an event too
    # a retried Order Completed neither duplicates the order nor undoes the refund
    assert client.post("/v1/track", headers=basic(key), json=completed).status_code == 200
    assert count(database, Order) == 2 and count(database, OrderLine) == 2
    with database.read_session() as db:
        assert db.scalar(select(Order.status).where(Order.external_id == "A-100")) == "partially_refunded"


def test_bad_order_amounts_refuse_the_message(client, database, shop):
    _, key = shop
    answer = client.post("/v1/track", headers=basic(key), json={"userId": "u", "event": "Order Completed",
                                                                "properties": {"order_id": "X", "total": "lots"}})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "properties.total"
    assert count(database, Order) == 0 and count(database, Event) == 0


def test_timestamps_follow_segment_rules(client, database, shop):
    workspace_id, key = shop
    batch = {"sentAt": "2025-01-01T00:00:10Z", "batch": [
        {"type": "track", "userId": "u", "event": "Given", "messageId": "a", "timestamp": "2024-12-31T23:00:00Z"},
        {"type": "track", "userId": "u", "event": "Skewed", "messageId": "b", "originalTimestamp": "2025-01-01T00:00:00Z"},
    ]}
    assert client.post("/v1/batch", headers=basic(key), json=batch).status_code == 200
    with database.read_session() as db:
        times = dict(db.execute(select(Event.message_id, Event.occurred_at)).all())
        received = db.scalar(select(Event.received_at).where(Event.message_id == "b"))
    assert times["a"].isoformat() == "2024-12-31T23:00:00+00:00"
    # the device's clock was 10 s behind when it sent: the event happened 10 s before we received it
    assert abs((received - times["b"]).total_seconds() - 10) < 2


def test_events_ingested_metric_counts_stored_events(client, shop):
    _, key = shop
    before = metrics.EVENTS_INGESTED.labels("track")._value.get()
    client.post("/v1/batch", headers=basic(key), json={"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"x{i}"} for i in range(3)]})
    assert metrics.EVENTS_INGESTED.labels("track")._value.get() - before == 3
