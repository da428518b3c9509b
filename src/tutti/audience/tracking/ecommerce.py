"""Segment's e-commerce spec v2 in track calls: an Order Completed becomes an order with its lines, an Order
Refunded or Cancelled a status change, a product event rows of the catalogue. Pure: no database; `storing`
writes what this puts on the Message."""

from __future__ import annotations

import logging

from tutti.audience import commerce
from tutti.audience.tracking.message import Message, _plain_id, _Problems
from tutti.platform.errors import InvalidInput

log = logging.getLogger("tutti.tracking")

ORDER_COMPLETED = "Order Completed"
ORDER_STATUS_EVENTS = {"Order Refunded": "refunded", "Order Cancelled": "cancelled"}
PRODUCT_EVENTS = {"Product Viewed", "Product Added", "Product Clicked", "Product Removed", "Checkout Started", "Cart Viewed"}
_PRODUCT_KEYS = {"product_id", "sku", "name", "category", "brand", "price", "currency", "url", "image_url", "quantity"}


def _segment_product(raw: dict, currency: str | None) -> dict | None:
    """A Segment product object as a catalogue row (keyed by product_id, else sku), or None without an id."""
    key = raw.get("product_id") or raw.get("sku") or raw.get("id")
    if key is None or key == "" or isinstance(key, (dict, list)):
        return None
    extra = {k: v for k, v in raw.items() if k not in _PRODUCT_KEYS and not isinstance(v, (dict, list))}
    if raw.get("sku") and raw.get("product_id") and str(raw["sku"]) != str(raw["product_id"]):
        extra["sku"] = str(raw["sku"])
    return {"sku": str(key), "name": raw.get("name"), "category": raw.get("category"), "brand": raw.get("brand"),
            "price": raw.get("price"), "currency": raw.get("currency") or currency, "url": raw.get("url"),
            "image_url": raw.get("image_url"), "properties": extra}


def _amount(value, field_name: str) -> float | None:
    try:
        return commerce._money(value, field_name)
    except InvalidInput as error:
        raise _Problems([(f"properties.{field_name}", error.message)]) from None


def _commerce(m: Message, props: dict) -> None:
    """Segment's e-commerce spec v2: orders and the product catalogue."""
    name = m.name
    currency = props.get("currency") if isinstance(props.get("currency"), str) else None
    raw_products = props.get("products")
    if raw_products is not None and not isinstance(raw_products, list):
        raise _Problems([("properties.products", "must be a list")])
    if name == ORDER_COMPLETED:
        order_id = _plain_id(props.get("order_id"), "properties.order_id")
        if order_id is None:
            log.warning("tracking: message %d is an Order Completed without order_id; stored as an event only", m.index)
            return
        lines, products = [], []
        for i, raw in enumerate(raw_products or []):
            if not isinstance(raw, dict):
                raise _Problems([(f"properties.products[{i}]", "must be a JSON object")])
            product = _segment_product(raw, currency)
            price = _amount(raw.get("price"), f"products[{i}].price")
            quantity = raw.get("quantity", 1)
            if isinstance(quantity, bool) or not isinstance(quantity, (int, float, str)):
                raise _Problems([(f"properties.products[{i}].quantity", "must be a whole number")])
            try:
                quantity = int(float(quantity))
            except ValueError:
                raise _Problems([(f"properties.products[{i}].quantity", f"'{quantity}' is not a whole number")]) from None
            if product:
                products.append(product)
            lines.append(commerce.NewOrderLine(sku=product["sku"] if product else None, name=raw.get("name"),
                                               category=raw.get("category"), quantity=quantity, unit_price=price or 0.0))
        subtotal = _amount(props.get("subtotal"), "subtotal")
        discount = _amount(props.get("discount"), "discount") or 0.0
        shipping = _amount(props.get("shipping"), "shipping") or 0.0
        tax = _amount(props.get("tax"), "tax") or 0.0
        total = _amount(props.get("total"), "total")
        if total is None:
            total = _amount(props.get("revenue"), "revenue")
        if total is None:
            base = subtotal if subtotal is not None else sum(line.quantity * line.unit_price for line in lines)
            total = round(base - discount + shipping + tax, 2)
        try:
            code = commerce._currency(currency, "TWD")
        except InvalidInput as error:
            raise _Problems([("properties.currency", error.message)]) from None
        known = {"order_id", "total", "revenue", "subtotal", "discount", "shipping", "tax", "currency", "products"}
        m.order = commerce.NewOrder(
            contact_id=0, external_id=order_id, placed_at=m.occurred_at, total=total, subtotal=subtotal, discount=discount,
            shipping=shipping, tax=tax, currency=code, channel=str(props.get("channel") or "web")[:32],
            properties={k: v for k, v in props.items() if k not in known}, lines=lines)
        m.products = products
    elif name in ORDER_STATUS_EVENTS:
        order_id = _plain_id(props.get("order_id"), "properties.order_id")
        if order_id is None:
            raise _Problems([("properties.order_id", f"{name} needs the order_id of the order")])
        status = ORDER_STATUS_EVENTS[name]
        skus = None
        if status == "refunded" and raw_products:
            skus = [str(p.get("product_id") or p.get("sku")) for p in raw_products if isinstance(p, dict) and (p.get("product_id") or p.get("sku"))]
            status = "partially_refunded" if skus else status
        amount = _amount(props.get("total"), "total") if status != "cancelled" else None
        m.status_change = (order_id, status, skus, amount)
    elif name in PRODUCT_EVENTS:
        candidates = [p for p in raw_products or [] if isinstance(p, dict)] or [props]
        m.products = [p for p in (_segment_product(raw, currency) for raw in candidates) if p]
        clean = []
        for product in m.products:  # a bad price in a view event is not worth refusing the event for
            try:
                commerce.product_row(0, product, m.occurred_at)
                clean.append(product)
            except InvalidInput as error:
                log.warning("tracking: catalogue not updated from message %d: %s", m.index, error.message)
        m.products = clean
