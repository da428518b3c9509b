"""Segment's official Python library, unchanged except host and write key, against a real Tutti server."""

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError
from sqlalchemy import select

from tests.conftest import serving
from tutti.audience import commerce
from tutti.audience.models import Contact, Event, Identity, Product


@pytest.fixture
def server(app):
    with serving(app) as url:
        yield url


def test_official_segment_library_works_unchanged(server, database, make_workspace):
    workspace_id, _, write_key = make_workspace("Segment Shop")
    errors = []
    analytics = Client(write_key, host=server, sync_mode=True, on_error=lambda error, batch: errors.append(error), max_retries=0)
    analytics.identify("M100", {"email": "lin@example.com", "name": "林小姐", "tier": "gold"}, anonymous_id="anon-100")
    analytics.track("M100", "Coupon Claimed", {"coupon": "SPRING"})
    analytics.page("M100", "Shop", "首頁", {"url": "https://shop.example.tw/", "path": "/"})
    analytics.screen("M100", "App", "Cart")
    analytics.group("M100", "company-1", {"name": "ACME"})
    analytics.track(anonymous_id="visitor-9", event="Product Viewed", properties={"product_id": "TEA-9", "name": "金萱", "price": 350})
    analytics.alias("visitor-9", "M100")
    analytics.track("M100", "Order Completed", {"order_id": "SEG-1", "total": 700, "currency": "TWD",
                                                "products": [{"product_id": "TEA-9", "name": "金萱", "price": 350, "quantity": 2}]})
    analytics.flush()
    assert errors == []

    with database.read_session() as db:
        person_id = db.scalar(select(Identity.contact_id).where(Identity.workspace_id == workspace_id, Identity.kind == "external_id", Identity.value == "M100"))
        person = db.get(Contact, person_id)
        assert person.name == "林小姐" and person.attributes == {"tier": "gold"}
        identities = set(db.execute(select(Identity.kind, Identity.value).where(Identity.contact_id == person_id)))
        assert identities == {("external_id", "M100"), ("anonymous_id", "anon-100"), ("email", "lin@example.com"), ("anonymous_id", "visitor-9")}
        stored = db.execute(select(Event.kind, Event.name, Event.contact_id).where(Event.workspace_id == workspace_id)).all()
        assert sorted((kind, name) for kind, name, _ in stored) == sorted([
            ("identify", "identify"), ("track", "Coupon Claimed"), ("page", "首頁"), ("screen", "Cart"), ("group", "group"),
            ("track", "Product Viewed"), ("alias", "alias"), ("track", "Order Completed")])
        # the visitor's product view moved to the person when alias joined them
        assert {contact_id for _, _, contact_id in stored} == {person_id}
        orders = commerce.orders_of(db, workspace_id=workspace_id, contact_id=person_id)
        assert [(o.external_id, o.total, [(line.sku, line.quantity) for line in o.lines]) for o in orders] == [("SEG-1", 700, [("TEA-9", 2)])]
        assert db.scalar(select(Product.price).where(Product.workspace_id == workspace_id, Product.sku == "TEA-9")) == 350


def test_official_library_reports_a_bad_write_key(server, database):
    analytics = Client("wk_not_a_key", host=server, sync_mode=True, max_retries=0)
    with pytest.raises(APIError) as error:  # sync mode raises what the server answered
        analytics.track("u", "Something")
    assert error.value.status == 401 and "write key is not valid" in error.value.message
    with database.read_session() as db:
        assert db.scalar(select(Event.id)) is None
