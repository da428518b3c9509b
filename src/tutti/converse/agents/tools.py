"""The agent's tools: live data of ONE contact, read (and, after confirmation, changed) through Audience's
services. Every tool takes the contact id the conversation belongs to and nothing else identifies a
person: an order number in the text is looked up among this contact's orders only, so a customer can
never read someone else's order by guessing its number.

Each tool returns a JSON-able dict (what the LLM sees, and what `render` turns into a reply offline).
`TOOLS` describes them for OpenAI tool calling; `changes=True` marks those that need the customer's yes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tutti.audience import commerce, consent, contacts, tags
from tutti.audience.models import Order, OrderLine, Product
from tutti.converse.agents.language import STATUS_WORDS, say
from tutti.platform.audit import Actor
from tutti.platform.errors import TuttiError


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict
    changes: bool = False

    def schema(self) -> dict:
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


_NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}
TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("order_status", "The status of the customer's own order: the one named by order_number, else their latest.",
         {"type": "object", "properties": {"order_number": {"type": "string", "description": "an order number the customer gave"}},
          "additionalProperties": False}),
    Tool("order_list", "The customer's own recent orders.", _NO_ARGS),
    Tool("product_search", "Products from the catalogue matching a query, or recommendations for this customer when the query is empty.",
         {"type": "object", "properties": {"query": {"type": "string"}}, "additionalProperties": False}),
    Tool("my_profile", "The customer's own membership tier, points and tags.", _NO_ARGS),
    Tool("unsubscribe", "Unsubscribe the customer from marketing e-mail and SMS (asks them to confirm first).", _NO_ARGS, changes=True),
    Tool("update_email", "Change the customer's e-mail address (asks them to confirm first).",
         {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"], "additionalProperties": False}, changes=True),
)}


def _order_dict(order) -> dict:
    return {"order_number": order.external_id, "status": order.status, "placed_at": order.placed_at.date().isoformat(),
            "total": float(order.total), "currency": order.currency,
            "items": [{"name": line.name or line.sku, "quantity": line.quantity, "status": line.status} for line in getattr(order, "lines", [])],
            "tracking": {k: v for k, v in (order.properties or {}).items() if k in ("tracking_number", "carrier", "shipped_at", "eta")}}


_ORDERISH = re.compile(r"#?[A-Za-z]{0,6}[-_]?\d{3,}[\w\-]*")


def _find_order(db: Session, workspace_id: int, contact_id: int, refs: list[str]):
    """The first of `refs` that is one of THIS contact's orders (case and dash insensitive)."""
    if not refs:
        return None
    wanted = {re.sub(r"[\s#]", "", r).upper() for r in refs}
    rows = db.execute(select(Order.external_id).where(Order.workspace_id == workspace_id, Order.contact_id == contact_id,
                                                       func.upper(Order.external_id).in_(wanted))).scalars().all()
    return rows[0] if rows else None


def order_status(db: Session, *, workspace_id: int, contact_id: int, order_number: str | None = None, refs: list[str] | None = None) -> dict:
    refs = ([order_number] if order_number else []) + list(refs or [])
    if refs:
        found = _find_order(db, workspace_id, contact_id, refs)
        named = order_number or next((r for r in refs if _ORDERISH.fullmatch(r)), None)
        if found is None and named:  # a number was given and it is not theirs: say so, show nothing
            return {"found": False, "order_number": named}
        if found is not None:
            view = commerce.get_order(db, workspace_id=workspace_id, external_id=found)
            return {"found": True, "order": _order_dict(view)}
    latest = commerce.orders_of(db, workspace_id=workspace_id, contact_id=contact_id, limit=1)
    if not latest:
        return {"found": False, "order_number": None}
    return {"found": True, "order": _order_dict(latest[0])}


def order_list(db: Session, *, workspace_id: int, contact_id: int, limit: int = 5) -> dict:
    views = commerce.orders_of(db, workspace_id=workspace_id, contact_id=contact_id, limit=limit)
    return {"orders": [_order_dict(v) for v in views]}


def product_search(db: Session, *, workspace_id: int, contact_id: int | None, query: str = "", limit: int = 3) -> dict:
    """The catalogue is the shop's, not a person's: any words of the query, else what this contact's
    categories suggest (things they have not bought), else the best sellers. `searched` lists the query's
    words and `matched` says whether any product matched them: best sellers are no answer to "do you sell
    dog food?" (the router hands that off)."""
    words = _query_words(query)
    base = select(Product).where(Product.workspace_id == workspace_id)
    products: list[Product] = []
    if words:
        conditions = [or_(func.lower(Product.name).contains(w), func.lower(func.coalesce(Product.category, "")).contains(w)) for w in words]
        found = list(db.scalars(base.where(or_(*conditions)).order_by(Product.id).limit(200)))
        # most query words in the name first
        found.sort(key=lambda p: -sum(w in (p.name or "").lower() for w in words) - 0.5 * sum(w in (p.category or "").lower() for w in words))
        products = found[:limit]
    matched = bool(products)
    if not products and contact_id is not None:
        bought = select(OrderLine.product_id).join(Order, Order.id == OrderLine.order_id).where(
            Order.workspace_id == workspace_id, Order.contact_id == contact_id, OrderLine.product_id.is_not(None))
        categories = select(Product.category).where(Product.id.in_(bought), Product.category.is_not(None))
        products = list(db.scalars(base.where(Product.category.in_(categories), Product.id.not_in(bought)).order_by(Product.id).limit(limit)))
    if not products:
        sellers = (select(OrderLine.product_id, func.count().label("n")).where(OrderLine.workspace_id == workspace_id, OrderLine.product_id.is_not(None))
                   .group_by(OrderLine.product_id).order_by(func.count().desc()).limit(limit).subquery())
        products = list(db.scalars(base.join(sellers, sellers.c.product_id == Product.id).order_by(sellers.c.n.desc())))
    return {"products": [{"name": p.name, "price": p.price, "currency": p.currency, "url": p.url, "category": p.category} for p in products[:limit]],
            "searched": words, "matched": matched}


def _query_words(query: str) -> list[str]:
    from tutti.converse.agents.signals import fold

    folded = fold(query or "")
    try:
        from tutti.ai.text import tokens

        pieces = tokens(folded)
    except Exception:  # noqa: BLE001 - without jieba: runs of letters/characters
        pieces = re.findall(r"[\w\u3400-\u9fff]+", folded)
    return [w for w in dict.fromkeys(pieces) if len(w) >= 2 and w not in _QUERY_NOISE][:8]


_QUERY_NOISE = {"一些", "一下", "我們", "你們", "什麼", "哪些", "可以", "請問", "有沒有", "推薦我", "給我", "商品", "產品", "東西","推薦", "沒有", "有賣", "recommend", "you", "do", "sell", "have", "any", "some", "looking", "for", "what", "should",
                "buy", "想買", "想找", "please", "the", "and", "嗎"}


def my_profile(db: Session, *, workspace_id: int, contact_id: int) -> dict:
    contact = contacts.live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    attributes = contact.attributes or {}
    tier = next((attributes[k] for k in ("tier", "member_tier", "member_level", "level", "membership") if attributes.get(k) not in (None, "")), None)
    points = next((attributes[k] for k in ("points", "loyalty_points", "reward_points") if attributes.get(k) is not None), None)
    names = [t["name"] for t in tags.tags_of(db, contact_id=contact.id) if not t["name"].startswith("topic:")]
    return {"tier": tier, "points": points, "tags": names[:10]}


def unsubscribe(db: Session, *, workspace_id: int, contact_id: int, confirmed: bool = False) -> dict:
    """Which marketing channels would stop (unconfirmed), or stop them (confirmed)."""
    current = consent.consents_of(db, contact_id=contact_id)
    channels = [c for c in ("email", "sms") if current.get(c, {}).get("status") == "subscribed"]
    if confirmed:
        for channel in channels:
            consent.set_consent(db, workspace_id=workspace_id, contact_id=contact_id, channel=channel, status="unsubscribed", source="agent")
    return {"channels": channels, "done": confirmed}


def update_email(db: Session, *, workspace_id: int, contact_id: int, email: str, confirmed: bool = False) -> dict:
    """Replace the contact's e-mail. An address another contact holds is refused (never merged: that
    would hand this customer someone else's profile)."""
    from tutti.audience.identities import normalise

    try:
        value = normalise("email", email)
    except TuttiError:
        return {"ok": False, "error": "invalid_email", "email": email}
    contact = contacts.live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    held = contacts.identities_of(db, [contact.id])[contact.id]
    if ("email", value) in held:
        return {"ok": True, "email": value, "done": confirmed, "unchanged": True}
    if not confirmed:
        return {"ok": True, "email": value, "done": False}
    actor = Actor.system("agent")
    try:
        contacts.update_contact(db, workspace_id=workspace_id, contact_id=contact.id, add_identities=[("email", value)], actor=actor)
    except TuttiError:
        return {"ok": False, "error": "email_taken", "email": value}
    for kind, old in held:
        if kind == "email":
            contacts.remove_identity(db, workspace_id=workspace_id, contact_id=contact.id, kind="email", value=old, actor=actor)
    return {"ok": True, "email": value, "done": True}


def run(db: Session, name: str, *, workspace_id: int, contact_id: int | None, args: dict, refs: list[str] | None = None,
        confirmed: bool = False) -> dict:
    """Run a tool by name for this contact. Unknown tools raise KeyError (the caller hands off)."""
    tool = TOOLS[name]
    if contact_id is None and name != "product_search":
        return {"error": "no_contact"}
    args = {k: v for k, v in (args or {}).items() if k in tool.parameters.get("properties", {})}
    if name == "order_status":
        return order_status(db, workspace_id=workspace_id, contact_id=contact_id, order_number=args.get("order_number"), refs=refs)
    if name == "order_list":
        return order_list(db, workspace_id=workspace_id, contact_id=contact_id)
    if name == "product_search":
        return product_search(db, workspace_id=workspace_id, contact_id=contact_id, query=str(args.get("query") or ""))
    if name == "my_profile":
        return my_profile(db, workspace_id=workspace_id, contact_id=contact_id)
    if name == "unsubscribe":
        return unsubscribe(db, workspace_id=workspace_id, contact_id=contact_id, confirmed=confirmed)
    if name == "update_email":
        return update_email(db, workspace_id=workspace_id, contact_id=contact_id, email=str(args.get("email") or ""), confirmed=confirmed)
    raise KeyError(name)


def _money(value) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) and float(value).is_integer() else f"{value}"


def _order_text(order: dict, language: str, key: str = "order_status") -> str:
    status = STATUS_WORDS[language].get(order["status"], order["status"])
    text = say(key, language, order=order["order_number"], status=status, placed=order["placed_at"],
               currency=order["currency"], total=_money(order["total"]))
    tracking = order.get("tracking") or {}
    if key == "order_status" and tracking.get("tracking_number"):
        text += (f" 物流單號：{tracking.get('carrier', '')} {tracking['tracking_number']}" if language == "zh-TW"
                 else f" Tracking: {tracking.get('carrier', '')} {tracking['tracking_number']}")
    return text


def render(name: str, result: dict, language: str) -> str:
    """The reply a tool's result makes, in the customer's language (the offline path's answer)."""
    if result.get("error") == "no_contact":
        return say("need_contact", language)
    if name == "order_status":
        if not result["found"]:
            return say("order_not_found", language, order=result["order_number"]) if result.get("order_number") else say("order_none", language)
        return _order_text(result["order"], language)
    if name == "order_list":
        if not result["orders"]:
            return say("order_none", language)
        return say("order_list", language, lines="\n".join(_order_text(o, language, "order_line") for o in result["orders"]))
    if name == "product_search":
        if not result["products"]:
            return say("products_none", language)
        lines = [say("product_line", language, name=p["name"], price=f" {p['currency'] or ''} {_money(p['price'])}".rstrip() if p["price"] else "")
                 for p in result["products"]]
        return say("products", language, lines="\n".join(lines))
    if name == "my_profile":
        parts = []
        if result["tier"]:
            parts.append(say("tier", language, value=result["tier"]))
        if result["points"] is not None:
            parts.append(say("points", language, value=_money(result["points"])))
        if result["tags"]:
            parts.append(say("tags", language, value=", ".join(result["tags"])))
        return say("profile", language, parts="、".join(parts) if language == "zh-TW" else ", ".join(parts)) if parts else say("profile_none", language)
    if name == "unsubscribe":
        names = _channel_names(result["channels"], language)
        if not result["channels"]:
            return say("nothing_to_unsubscribe", language)
        return say("done_unsubscribe" if result["done"] else "confirm_unsubscribe", language, channels=names)
    if name == "update_email":
        if not result.get("ok"):
            return say("ask_email", language)
        return say("done_email" if result["done"] else "confirm_email", language, email=result["email"])
    return ""


def _channel_names(channels: list[str], language: str) -> str:
    words = {"zh-TW": {"email": "電子郵件", "sms": "簡訊"}, "en": {"email": "e-mail", "sms": "SMS"}}[language]
    return ("、" if language == "zh-TW" else " and ").join(words[c] for c in channels)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
