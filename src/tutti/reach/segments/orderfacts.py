"""Order facts per contact, folded incrementally from new and changed orders (a watermark, as for the daily
event counts).

`order_summary` (per live buyer: orders, spent, last order time) and `order_bought` (per contact and
category / sku: when it was last bought) are derived from `orders` and `order_line` for the orders up to
`order_fact_watermark.last_order_id` and the changes up to `last_change_id`. A contact is *unfolded* when
it has an order above the first or a change above the second (`order_fact_change`: an existing order
recorded again or its status changed, a merge, an erasure — told by Audience's hooks). The compiler reads
the state for folded contacts and the orders themselves for unfolded ones, so a count is exact whenever
fold last ran.

Unlike event counts, these facts are not sums that new rows add to (a refund lowers a maximum, an erasure
takes a buyer out of the RFM ranking), so a fold recomputes each unfolded contact from its orders rather
than adding to its row. Watermarks are read as for events: on PostgreSQL ids commit out of order, so the
highest ids are read while holding SHARE locks on `orders` and `order_fact_change` for an instant.
"""

from __future__ import annotations

from sqlalchemy import delete, func, literal, select, text, union, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from tutti.audience.models import Contact, Order, OrderLine
from tutti.platform.db import Database, utcnow
from tutti.platform.sql import insert_ignore
from tutti.reach.segments.models import OrderBought, OrderFactChange, OrderFactWatermark, OrderSummary

# orders that count: not cancelled, not wholly refunded (audience/commerce.py statuses)
NOT_COUNTED_STATUSES = ("cancelled", "refunded")
# past this many unfolded contacts a fold rebuilds the workspace in one pass (cheaper than per-contact work)
REBUILD_OVER = 200_000


def counted_orders(workspace_id: int) -> list[ColumnElement]:
    return [Order.workspace_id == workspace_id, Order.status.not_in(NOT_COUNTED_STATUSES)]


def spent():
    return Order.total - Order.refunded_total


def _mark(column, workspace_id: int):
    return func.coalesce(select(column).where(OrderFactWatermark.workspace_id == workspace_id).scalar_subquery(), 0)


def unfolded_contacts(workspace_id: int, *, marks: tuple[int, int] | None = None) -> Select:
    """Contacts whose facts the state does not hold yet: an order or a change above the watermark. `marks`
    read beforehand let the planner see how few rows that is; without them the statement reads them. A
    mark older than the state is harmless: its extra contacts are read from their orders, exactly."""
    if marks is None:
        last_order = _mark(OrderFactWatermark.last_order_id, workspace_id)
        last_change = _mark(OrderFactWatermark.last_change_id, workspace_id)
    else:
        last_order, last_change = marks
    # its own alias, never correlated: it sits inside queries that read `orders` themselves
    o = Order.__table__.alias("newer_orders")
    newer = select(o.c.contact_id).where(o.c.workspace_id == workspace_id, o.c.id > last_order).correlate(None)
    changed = (select(OrderFactChange.contact_id).where(OrderFactChange.workspace_id == workspace_id, OrderFactChange.id > last_change)
               .correlate(None))
    return union(newer, changed)


def buyers_count(workspace_id: int, *, unfolded) -> ColumnElement:
    """How many live buyers there are, without counting the summary's rows: the fold's count of them, less
    those of unfolded contacts, plus the unfolded contacts who are buyers by their orders. Read in one
    statement with the summary, so the three agree."""
    folded = func.coalesce(select(OrderFactWatermark.buyers).where(OrderFactWatermark.workspace_id == workspace_id).scalar_subquery(), 0)
    stale = select(func.count()).select_from(OrderSummary).where(
        OrderSummary.workspace_id == workspace_id, OrderSummary.contact_id.in_(unfolded)).scalar_subquery()
    fresh = select(func.count()).select_from(live_buyer_facts(workspace_id, only=unfolded).subquery("fresh_buyers")).scalar_subquery()
    return folded - stale + fresh


def live_buyer_facts(workspace_id: int, *, only=None) -> Select:
    """(contact_id, orders, spent, last_order_at) of live contacts with orders that count, from the orders."""
    where = [*counted_orders(workspace_id), Contact.merged_into_id.is_(None), Contact.erased_at.is_(None)]
    if only is not None:
        where.append(Order.contact_id.in_(only))
    return (select(Order.contact_id, func.count().label("orders"), func.sum(spent()).label("spent"),
                   func.max(Order.placed_at).label("last_order_at"))
            .join(Contact, Contact.id == Order.contact_id).where(*where).group_by(Order.contact_id))


def bought_facts(workspace_id: int, *, only=None) -> Select:
    """(contact_id, kind, value, last_at) from the orders: the last counted order with a line (not refunded)
    of each category and each sku."""
    def per(kind: str, column) -> Select:
        where = [*counted_orders(workspace_id), OrderLine.workspace_id == workspace_id, OrderLine.status == "ok", column.is_not(None)]
        if only is not None:
            where.append(Order.contact_id.in_(only))
        return (select(Order.contact_id, literal(kind).label("kind"), column.label("value"), func.max(Order.placed_at).label("last_at"))
                .join(OrderLine, OrderLine.order_id == Order.id).where(*where).group_by(Order.contact_id, column))
    return union_all(per("category", OrderLine.category), per("sku", OrderLine.sku))


def recompute(db: Session, *, workspace_id: int, only=None) -> None:
    """Replace the state of the contacts in `only` (a subquery of contact ids; None: the whole workspace)
    with what their orders say now. Set-based: four statements whatever the number of contacts."""
    for model in (OrderSummary, OrderBought):
        gone = delete(model).where(model.workspace_id == workspace_id)
        if only is not None:
            gone = gone.where(model.contact_id.in_(only))
        db.execute(gone.execution_options(synchronize_session=False))
    facts = live_buyer_facts(workspace_id, only=only).subquery()
    db.execute(OrderSummary.__table__.insert().from_select(
        ["workspace_id", "contact_id", "orders", "spent", "last_order_at"],
        select(literal(workspace_id), facts.c.contact_id, facts.c.orders, facts.c.spent, facts.c.last_order_at)))
    bought = bought_facts(workspace_id, only=only).subquery()
    db.execute(OrderBought.__table__.insert().from_select(
        ["workspace_id", "contact_id", "kind", "value", "last_at"],
        select(literal(workspace_id), bought.c.contact_id, bought.c.kind, bought.c.value, bought.c.last_at)))


def safe_max_ids(database: Database, *, workspace_id: int) -> tuple[int, int]:
    """The highest order id and change id below which nothing can still appear (see the module's note)."""
    with database.session() as db:
        if db.get_bind().dialect.name == "postgresql":
            db.execute(text("SET LOCAL lock_timeout = '10s'"))
            db.execute(text("LOCK TABLE orders, order_fact_change IN SHARE MODE"))
        order_id = db.scalar(select(func.coalesce(func.max(Order.id), 0)).where(Order.workspace_id == workspace_id))
        change_id = db.scalar(select(func.coalesce(func.max(OrderFactChange.id), 0)).where(OrderFactChange.workspace_id == workspace_id))
        return order_id, change_id


def fold(database: Database, *, workspace_id: int) -> tuple[int, int]:
    """Bring the workspace's order facts up to the newest orders and changes; returns the new watermark
    (last_order_id, last_change_id). The first fold (no watermark yet) builds the whole workspace."""
    upto_order, upto_change = safe_max_ids(database, workspace_id=workspace_id)
    with database.session() as db:
        first = insert_ignore(db, OrderFactWatermark, [{"workspace_id": workspace_id, "last_order_id": 0, "last_change_id": 0,
                                                        "buyers": 0, "updated_at": utcnow()}], conflict=("workspace_id",)) == 1
        # the row lock makes a second fold of the same workspace wait, then see the moved watermark
        last_order, last_change = db.execute(select(OrderFactWatermark.last_order_id, OrderFactWatermark.last_change_id)
                                             .where(OrderFactWatermark.workspace_id == workspace_id).with_for_update()).one()
        if not first and last_order >= upto_order and last_change >= upto_change:
            return last_order, last_change
        changed = union(
            select(Order.contact_id).where(Order.workspace_id == workspace_id, Order.id > last_order, Order.id <= upto_order),
            select(OrderFactChange.contact_id).where(OrderFactChange.workspace_id == workspace_id, OrderFactChange.id > last_change,
                                                     OrderFactChange.id <= upto_change)).subquery()
        if first or db.scalar(select(func.count()).select_from(changed)) > REBUILD_OVER:
            recompute(db, workspace_id=workspace_id)
        else:
            recompute(db, workspace_id=workspace_id, only=select(changed.c.contact_id))
        # folded changes are never read again (readers look above the watermark): the log stays short. The
        # newest row stays: SQLite gives a new row the highest id + 1, which must stay above the watermark
        db.execute(delete(OrderFactChange).where(OrderFactChange.workspace_id == workspace_id, OrderFactChange.id < upto_change)
                   .execution_options(synchronize_session=False))
        buyers = db.scalar(select(func.count()).select_from(OrderSummary).where(OrderSummary.workspace_id == workspace_id))
        db.execute(OrderFactWatermark.__table__.update().where(OrderFactWatermark.workspace_id == workspace_id)
                   .values(last_order_id=max(last_order, upto_order), last_change_id=max(last_change, upto_change), buyers=buyers,
                           updated_at=utcnow()))
        return max(last_order, upto_order), max(last_change, upto_change)


def note_changes(db: Session, workspace_id: int, contact_ids) -> None:
    """Record contacts whose facts changed (Audience's order, merge and erase hooks call this)."""
    now = utcnow()
    rows = [{"workspace_id": workspace_id, "contact_id": c, "at": now} for c in sorted(set(contact_ids))]
    if rows:
        db.execute(OrderFactChange.__table__.insert(), rows)


def workspaces_behind(db: Session) -> list[int]:
    """Workspaces with orders or changes above their watermark (an id-index range scan per workspace)."""
    from tutti.platform.models import Workspace

    def mark(column):
        return func.coalesce(select(column).where(OrderFactWatermark.workspace_id == Workspace.id).scalar_subquery(), 0)

    newer = select(Order.id).where(Order.workspace_id == Workspace.id, Order.id > mark(OrderFactWatermark.last_order_id)).exists()
    changed = select(OrderFactChange.id).where(OrderFactChange.workspace_id == Workspace.id,
                                               OrderFactChange.id > mark(OrderFactWatermark.last_change_id)).exists()
    return list(db.scalars(select(Workspace.id).where(newer | changed)))
