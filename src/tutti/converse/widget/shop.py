"""The demo shop: a small 好日子生活選物 storefront with the chat widget on it, so a newcomer can try the
AI agent as a customer would (DESIGN flow 4). Served only when the demo workspace exists.

`?member=<external id>` plays a signed-in customer: the page prints data-user-id and the HMAC that a
real shop's server would compute, so "where is my order?" answers with that member's real orders.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from tutti.audience.models import Contact, Identity, Order, Product
from tutti.converse.widget import service
from tutti.platform.db import get_database
from tutti.web.pages import render_public
from tutti.web.session import request_locale

router = APIRouter(include_in_schema=False)

FALLBACK_PRODUCTS = [
    {"name": "手工陶瓷馬克杯", "price": 680, "category": "餐廚"},
    {"name": "有機棉浴巾", "price": 890, "category": "寢浴"},
    {"name": "天然大豆香氛蠟燭", "price": 520, "category": "香氛"},
    {"name": "台灣檜木砧板", "price": 1280, "category": "餐廚"},
    {"name": "亞麻抱枕套", "price": 450, "category": "居家"},
    {"name": "凍頂烏龍茶 150g", "price": 600, "category": "食品"},
]
DEMO_MEMBERS = 3


def demo_workspace_id(db) -> int | None:
    from tutti.audience.demo import find_demo

    found = find_demo(db)
    return found[0] if found else None


def _products(db, workspace_id: int) -> list[dict]:
    rows = db.execute(select(Product.name, Product.price, Product.category, Product.image_url)
                      .where(Product.workspace_id == workspace_id).order_by(Product.id).limit(12)).all()
    return [dict(r._mapping) for r in rows] or FALLBACK_PRODUCTS


def _members(db, workspace_id: int) -> list[dict]:
    """A few members with an external id and recent orders, to play as signed-in customers."""
    latest = (select(Order.contact_id, func.max(Order.placed_at).label("at")).where(Order.workspace_id == workspace_id)
              .group_by(Order.contact_id).order_by(func.max(Order.placed_at).desc()).limit(DEMO_MEMBERS * 4).subquery())
    rows = db.execute(
        select(Identity.value, Contact.name).join(latest, latest.c.contact_id == Identity.contact_id)
        .join(Contact, Contact.id == Identity.contact_id)
        .where(Identity.workspace_id == workspace_id, Identity.kind == "external_id").order_by(latest.c.at.desc())
        .limit(DEMO_MEMBERS)
    ).all()
    return [{"external_id": value, "name": name} for value, name in rows]


@router.get("/shop")
def shop(request: Request, member: str = ""):
    locale = request_locale(request)
    with get_database().session() as db:
        workspace_id = demo_workspace_id(db)
        if workspace_id is None:
            return render_public(request, "converse/shop_missing.html", locale=locale, status=404)
        config = service.config_for(db, workspace_id=workspace_id)
        members = _members(db, workspace_id)
        signed = None
        if member and any(m["external_id"] == member for m in members):
            name = next(m["name"] for m in members if m["external_id"] == member)
            signed = {"id": member, "hash": service.identity_hash(config.secret, member), "name": name}
        context = {"key": config.public_key, "products": _products(db, workspace_id), "members": members, "signed": signed,
                   "color": config.color}
    return render_public(request, "converse/shop.html", locale=locale, **context)
