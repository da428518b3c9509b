"""Commerce: products by sku, orders idempotent by the shop's order id, refunds and cancellations as statuses."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tutti.audience import commerce, contacts
from tutti.audience.commerce import NewOrder, NewOrderLine
from tutti.audience.models import Order, OrderLine, Product
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound


def contact(db, workspace_id, external_id="C1"):
    return contacts.upsert(db, workspace_id=workspace_id, identities={"external_id": external_id}, actor=Actor.cli())[0].id


def order(contact_id, external_id="A1", total=1200, lines=None, **kw):
    return NewOrder(contact_id=contact_id, external_id=external_id, placed_at=kw.pop("placed_at", utcnow()), total=total,
                    lines=lines if lines is not None else [NewOrderLine(sku="TEA-1", name="烏龍茶", quantity=2, unit_price=400),
                                                           NewOrderLine(sku="CUP-1", name="Cup", quantity=1, unit_price=400)], **kw)


def test_upsert_products_creates_then_updates_without_wiping_absent_fields(database, workspace_id):
    with database.session() as db:
        ids = commerce.upsert_products(db, workspace_id=workspace_id, products=[
            {"sku": "TEA-1", "name": "烏龍茶", "price": 400, "category": "tea", "currency": "twd"},
            {"sku": "CUP-1", "name": "Cup", "price": "1,200"},
        ])
    assert set(ids) == {"TEA-1", "CUP-1"}
    with database.session() as db:
        again = commerce.upsert_products(db, workspace_id=workspace_id, products=[{"sku": "TEA-1", "name": "凍頂烏龍茶"}])
        assert again == {"TEA-1": ids["TEA-1"]}
        tea = db.get(Product, ids["TEA-1"])
        assert (tea.name, tea.price, tea.category, tea.currency) == ("凍頂烏龍茶", 400, "tea", "TWD")
        assert db.get(Product, ids["CUP-1"]).price == 1200
        assert db.scalar(select(func.count()).select_from(Product)) == 2


def test_products_reject_bad_input_naming_the_row(database, workspace_id):
    with database.session() as db, pytest.raises(InvalidInput, match="product 1: price"):
        commerce.upsert_products(db, workspace_id=workspace_id, products=[{"sku": "A"}, {"sku": "B", "price": "free"}])
    with database.session() as db, pytest.raises(InvalidInput, match="product 0: sku is required"):
        commerce.upsert_products(db, workspace_id=workspace_id, products=[{"name": "no sku"}])


def test_recording_the_same_order_again_updates_it_and_replaces_lines(database, workspace_id):
    with database.session() as db:
        buyer = contact(db, workspace_id)
        commerce.upsert_products(db, workspace_id=workspace_id, products=[{"sku": "TEA-1", "name": "烏龍茶"}])
        first = commerce.record_orders(db, workspace_id=workspace_id, orders=[order(buyer), order(buyer, "A2", total=50, lines=[])])
    with database.session() as db:
        second = commerce.record_orders(db, workspace_id=workspace_id, orders=[
            order(buyer, total=800, lines=[NewOrderLine(sku="TEA-1", quantity=2, unit_price=400)])])
    assert second == [first[0]]
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(Order)) == 2
        views = commerce.orders_of(db, workspace_id=workspace_id, contact_id=buyer)
        a1 = next(v for v in views if v.external_id == "A1")
        assert a1.total == 800 and [(line.sku, line.quantity) for line in a1.lines] == [("TEA-1", 2)]
        assert a1.lines[0].product_id is not None  # linked to the catalogue by sku
        assert db.scalar(select(func.count()).select_from(OrderLine)) == 1


def test_refunds_and_cancellations_are_statuses_never_deletions(database, workspace_id):
    with database.session() as db:
        buyer = contact(db, workspace_id)
        commerce.record_orders(db, workspace_id=workspace_id, orders=[order(buyer, "A1"), order(buyer, "A2"), order(buyer, "A3")])
        commerce.set_order_status(db, workspace_id=workspace_id, external_id="A1", status="refunded")
        commerce.set_order_status(db, workspace_id=workspace_id, external_id="A2", status="partially_refunded", line_skus=["CUP-1"])
        commerce.set_order_status(db, workspace_id=workspace_id, external_id="A3", status="cancelled")
    with database.session() as db:
        views = {v.external_id: v for v in commerce.orders_of(db, workspace_id=workspace_id, contact_id=buyer)}
        assert (views["A1"].status, views["A1"].refunded_total) == ("refunded", 1200)
        assert {line.status for line in views["A1"].lines} == {"refunded"}
        assert (views["A2"].status, views["A2"].refunded_total) == ("partially_refunded", 400)
        assert {line.sku: line.status for line in views["A2"].lines} == {"TEA-1": "ok", "CUP-1": "refunded"}
        assert views["A3"].status == "cancelled" and {line.status for line in views["A3"].lines} == {"cancelled"}
        assert db.scalar(select(func.count()).select_from(OrderLine)) == 6
        with pytest.raises(NotFound):
            commerce.set_order_status(db, workspace_id=workspace_id, external_id="nope", status="refunded")
        with pytest.raises(InvalidInput, match="status"):
            commerce.set_order_status(db, workspace_id=workspace_id, external_id="A1", status="lost")


def test_orders_are_scoped_by_workspace(database, make_workspace):
    shop_a, _, _ = make_workspace("A")
    shop_b, _, _ = make_workspace("B")
    with database.session() as db:
        a = contact(db, shop_a)
        b = contact(db, shop_b)
        commerce.record_orders(db, workspace_id=shop_a, orders=[order(a, "SAME")])
        commerce.record_orders(db, workspace_id=shop_b, orders=[order(b, "SAME", total=5, lines=[])])
    with database.session() as db:
        assert [v.total for v in commerce.orders_of(db, workspace_id=shop_a, contact_id=a)] == [1200]
        assert commerce.orders_of(db, workspace_id=shop_b, contact_id=a) == []
        with pytest.raises(NotFound):
            commerce.get_order(db, workspace_id=shop_b, external_id="nothing")


def test_orders_of_is_newest_first(database, workspace_id):
    now = utcnow()
    with database.session() as db:
        buyer = contact(db, workspace_id)
        commerce.record_orders(db, workspace_id=workspace_id, orders=[
            order(buyer, "OLD", placed_at=now - timedelta(days=3)), order(buyer, "NEW", placed_at=now)])
        assert [v.external_id for v in commerce.orders_of(db, workspace_id=workspace_id, contact_id=buyer)] == ["NEW", "OLD"]
