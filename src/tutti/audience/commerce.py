"""Commerce: the product catalogue, orders and their lines.

Everything here is set-based, because orders arrive in batches (the tracking API, order imports): a batch
costs a handful of statements whatever its size. Orders are idempotent by the shop's own order id
(`external_id`): recording an order again updates it and replaces its lines. Refunds and cancellations
are statuses; order rows are never deleted, so revenue history can always be explained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tutti.audience.models import ORDER_STATUSES, Order, OrderLine, Product
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput, NotFound
from tutti.platform.sql import upsert_rows

PRODUCT_FIELDS = ("name", "category", "brand", "price", "currency", "url", "image_url", "properties")
LINE_STATUSES = ("ok", "refunded", "cancelled")

# Other parts that keep state derived from orders (segments' order facts) register here to hear which
# contacts' existing orders changed, so Audience never imports their tables. Each hook gets
# (db, workspace_id, contact_ids), inside the transaction that made the change.
ORDER_CHANGE_HOOKS: list[Callable[[Session, int, list[int]], None]] = []


def _orders_changed(db: Session, workspace_id: int, contact_ids) -> None:
    ids = sorted({c for c in contact_ids if c is not None})
    if ids:
        for hook in ORDER_CHANGE_HOOKS:
            hook(db, workspace_id, ids)
_LIMITS = {"sku": 100, "name": 300, "category": 200, "brand": 200, "url": 1000, "image_url": 1000}


@dataclass
class NewOrderLine:
    sku: str | None
    name: str | None = None
    category: str | None = None
    quantity: int = 1
    unit_price: float = 0.0
    product_id: int | None = None


@dataclass
class NewOrder:
    contact_id: int
    external_id: str
    placed_at: datetime
    total: float
    status: str = "completed"
    currency: str = "TWD"
    subtotal: float | None = None
    discount: float = 0.0
    shipping: float = 0.0
    tax: float = 0.0
    channel: str | None = None
    properties: dict = field(default_factory=dict)
    lines: list[NewOrderLine] = field(default_factory=list)


def _text(value, key: str, *, required: bool = False) -> str | None:
    if value is None or str(value).strip() == "":
        if required:
            raise InvalidInput(f"{key} is required", field=key)
        return None
    return str(value).strip()[: _LIMITS.get(key, 300)]


def _money(value, key: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{key}: expected an amount, got a boolean", field=key)
    try:
        return round(float(str(value).replace(",", "")), 2)
    except ValueError:
        raise InvalidInput(f"{key}: '{value}' is not an amount", field=key) from None


def _currency(value, default: str | None = None) -> str | None:
    if value is None or str(value).strip() == "":
        return default
    code = str(value).strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise InvalidInput(f"currency: '{value}' is not a 3-letter currency code", field="currency")
    return code


# --- products ----------------------------------------------------------------------------------------


def product_row(workspace_id: int, product: dict, now: datetime) -> dict:
    sku = _text(product.get("sku"), "sku", required=True)
    return {
        "workspace_id": workspace_id,
        "sku": sku,
        "name": _text(product.get("name"), "name") or sku,
        "category": _text(product.get("category"), "category"),
        "brand": _text(product.get("brand"), "brand"),
        "price": _money(product.get("price"), "price"),
        "currency": _currency(product.get("currency")),
        "url": _text(product.get("url"), "url"),
        "image_url": _text(product.get("image_url"), "image_url"),
        "properties": product.get("properties") or {},
        "created_at": now,
        "updated_at": now,
    }


def upsert_products(db: Session, *, workspace_id: int, products: list[dict]) -> dict[str, int]:
    """Create or update products by sku in one statement; returns {sku: product id}.

    Fields a product dict leaves out (or sets to None) keep their stored value, so a "Product Viewed"
    event carrying only sku and name never wipes the price an import set."""
    now = utcnow()
    by_sku: dict[str, dict] = {}
    for index, product in enumerate(products):
        try:
            row = product_row(workspace_id, product, now)
        except InvalidInput as error:
            raise InvalidInput(f"product {index}: {error.message}", field=error.field, details={"index": index}) from None
        earlier = by_sku.get(row["sku"])
        if earlier:  # the same sku twice in one batch: later values win, earlier ones fill the gaps
            row = {k: (v if v not in (None, {}) else earlier[k]) for k, v in row.items()}
        by_sku[row["sku"]] = row
    if not by_sku:
        return {}
    # Read first, write only what changed: product events repeat the same catalogue all day long, and a
    # read costs far less than rewriting rows (and their index entries) on every batch.
    columns = [getattr(Product, k) for k in PRODUCT_FIELDS]
    stored = {row[0]: row for row in db.execute(select(Product.sku, Product.id, *columns).where(
        Product.workspace_id == workspace_id, Product.sku.in_(list(by_sku))))}
    ids = {sku: row[1] for sku, row in stored.items()}
    # one statement per set of present columns keeps "absent means unchanged" without per-row SQL
    groups: dict[tuple[str, ...], list[dict]] = {}
    for sku, row in by_sku.items():
        present = tuple(k for k in PRODUCT_FIELDS if row[k] not in (None, {}) or k == "name")
        current = stored.get(sku)
        if current is not None and all(row[k] == current[2 + PRODUCT_FIELDS.index(k)] for k in present):
            continue
        groups.setdefault(present, []).append(row)
    for present, rows in groups.items():
        upsert_rows(db, Product, rows, conflict=("workspace_id", "sku"), update=(*present, "updated_at"))
    if groups:
        ids.update(product_ids(db, workspace_id=workspace_id, skus=[r["sku"] for rows in groups.values() for r in rows]))
    return ids


def product_ids(db: Session, *, workspace_id: int, skus: list[str]) -> dict[str, int]:
    if not skus:
        return {}
    rows = db.execute(select(Product.sku, Product.id).where(Product.workspace_id == workspace_id, Product.sku.in_(set(skus))))
    return {sku: product_id for sku, product_id in rows}


# --- orders ------------------------------------------------------------------------------------------


def _order_row(workspace_id: int, order: NewOrder, now: datetime) -> dict:
    external_id = _text(order.external_id, "external_id", required=True)
    if order.status not in ORDER_STATUSES:
        raise InvalidInput(f"order {external_id}: status '{order.status}' is not one of {', '.join(ORDER_STATUSES)}", field="status")
    if order.placed_at is None:
        raise InvalidInput(f"order {external_id}: placed_at is required", field="placed_at")
    total = _money(order.total, "total")
    if total is None:
        raise InvalidInput(f"order {external_id}: total is required", field="total")
    return {
        "workspace_id": workspace_id,
        "contact_id": order.contact_id,
        "external_id": external_id,
        "status": order.status,
        "currency": _currency(order.currency, "TWD"),
        "subtotal": _money(order.subtotal, "subtotal"),
        "discount": _money(order.discount, "discount") or 0.0,
        "shipping": _money(order.shipping, "shipping") or 0.0,
        "tax": _money(order.tax, "tax") or 0.0,
        "total": total,
        "refunded_total": 0.0,
        "channel": _text(order.channel, "channel"),
        "placed_at": order.placed_at,
        "updated_at": now,
        "properties": order.properties or {},
    }


_ORDER_UPDATE = ("contact_id", "status", "currency", "subtotal", "discount", "shipping", "tax", "total", "channel",
                 "placed_at", "updated_at", "properties")


def record_orders(db: Session, *, workspace_id: int, orders: list[NewOrder]) -> list[int]:
    """Create or update orders by external_id, replacing their lines; returns the order ids in input order.

    Four statements per batch: upsert orders, read their ids, delete their old lines, insert the lines.
    Lines without a product_id are linked to the catalogue product with the same sku, if there is one."""
    now = utcnow()
    rows: dict[str, dict] = {}
    lines: dict[str, list[NewOrderLine]] = {}
    order_keys: list[str] = []
    for order in orders:
        row = _order_row(workspace_id, order, now)
        key = row["external_id"]
        rows[key] = row  # the same order twice in one batch: the later record is the current one
        lines[key] = list(order.lines)
        order_keys.append(key)
    if not rows:
        return []
    # an existing order recorded again may change its status, total, lines or even its contact: both the
    # contact it had and the one it gets are told (new orders need no telling: they are new ids)
    before = dict(db.execute(select(Order.external_id, Order.contact_id)
                             .where(Order.workspace_id == workspace_id, Order.external_id.in_(list(rows)))).all())
    upsert_rows(db, Order, list(rows.values()), conflict=("workspace_id", "external_id"), update=_ORDER_UPDATE)
    if before:
        _orders_changed(db, workspace_id, [*before.values(), *(rows[key]["contact_id"] for key in before)])
    ids = dict(db.execute(select(Order.external_id, Order.id).where(Order.workspace_id == workspace_id, Order.external_id.in_(list(rows)))).all())
    db.execute(delete(OrderLine).where(OrderLine.workspace_id == workspace_id, OrderLine.order_id.in_(list(ids.values())))
               .execution_options(synchronize_session=False))
    unlinked = {line.sku for group in lines.values() for line in group if line.product_id is None and line.sku}
    catalogue = product_ids(db, workspace_id=workspace_id, skus=[str(s) for s in unlinked])
    line_rows = []
    for key, group in lines.items():
        for line in group:
            sku = _text(line.sku, "sku")
            try:
                quantity = int(line.quantity if line.quantity is not None else 1)
            except (TypeError, ValueError):
                raise InvalidInput(f"order {key}: quantity '{line.quantity}' is not a whole number", field="quantity") from None
            line_rows.append({
                "workspace_id": workspace_id,
                "order_id": ids[key],
                "product_id": line.product_id if line.product_id is not None else catalogue.get(sku),
                "sku": sku,
                "name": _text(line.name, "name"),
                "category": _text(line.category, "category"),
                "quantity": quantity,
                "unit_price": _money(line.unit_price, "unit_price") or 0.0,
                "status": "ok",
            })
    if line_rows:
        db.execute(OrderLine.__table__.insert(), line_rows)
    return [ids[key] for key in order_keys]


def set_order_status(
    db: Session,
    *,
    workspace_id: int,
    external_id: str,
    status: str,
    refunded_total: float | None = None,
    line_skus: list[str] | None = None,
) -> Order:
    """Change an order's status. A refund records how much went back (the whole total unless told);
    `line_skus` marks those lines refunded or cancelled (a partial refund without an amount refunds
    the value of those lines)."""
    if status not in ORDER_STATUSES:
        raise InvalidInput(f"status '{status}' is not one of {', '.join(ORDER_STATUSES)}", field="status")
    order = db.scalar(select(Order).where(Order.workspace_id == workspace_id, Order.external_id == str(external_id)))
    if order is None:
        raise NotFound(f"no order with id '{external_id}'", field="order_id")
    line_status = {"refunded": "refunded", "partially_refunded": "refunded", "cancelled": "cancelled"}.get(status)
    if line_skus and line_status:
        db.execute(update(OrderLine).where(OrderLine.order_id == order.id, OrderLine.sku.in_([str(s) for s in line_skus]))
                   .values(status=line_status).execution_options(synchronize_session=False))
    elif line_status and status != "partially_refunded":
        db.execute(update(OrderLine).where(OrderLine.order_id == order.id).values(status=line_status)
                   .execution_options(synchronize_session=False))
    amount = _money(refunded_total, "refunded_total")
    if amount is None and status == "refunded":
        amount = order.total
    if amount is None and status == "partially_refunded" and line_skus:
        amount = sum(q * p for q, p in db.execute(
            select(OrderLine.quantity, OrderLine.unit_price).where(OrderLine.order_id == order.id, OrderLine.status == "refunded")))
    order.status = status
    if amount is not None:
        order.refunded_total = round(min(float(amount), float(order.total)), 2)
    order.updated_at = utcnow()
    db.flush()
    _orders_changed(db, workspace_id, [order.contact_id])
    return order


@dataclass
class OrderView:
    """An order with its lines, for the profile and timeline."""

    order: Order
    lines: list[OrderLine]

    def __getattr__(self, name):  # order fields read straight through: view.total, view.status …
        if name in ("order", "lines") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.order, name)


def orders_of(db: Session, *, workspace_id: int, contact_id: int, limit: int = 50) -> list[OrderView]:
    """A contact's orders, newest first, each with its lines (two queries)."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", field="limit")
    orders = list(db.scalars(select(Order).where(Order.workspace_id == workspace_id, Order.contact_id == contact_id)
                             .order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit)))
    by_order: dict[int, list[OrderLine]] = {o.id: [] for o in orders}
    if orders:
        for line in db.scalars(select(OrderLine).where(OrderLine.order_id.in_(list(by_order))).order_by(OrderLine.id)):
            by_order[line.order_id].append(line)
    return [OrderView(order=o, lines=by_order[o.id]) for o in orders]


def get_order(db: Session, *, workspace_id: int, external_id: str) -> OrderView:
    order = db.scalar(select(Order).where(Order.workspace_id == workspace_id, Order.external_id == str(external_id)))
    if order is None:
        raise NotFound(f"no order with id '{external_id}'", field="order_id")
    lines = list(db.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.id)))
    return OrderView(order=order, lines=lines)
