"""The variables a message can use, for many contacts at once (a few queries per thousand contacts).

Per contact: `contact_id`, the profile fields (`name`, `first_name`, `gender`, `birthday`, `locale`,
`city`, `timezone`), `email`, `phone`, every custom attribute (as `attributes.<key>` and, unless it
shadows a field above, as `<key>`), `tags` (names), `last_order` (`external_id`, `total`, `currency`,
`placed_at`, `products`) and `unsubscribe_url`. Empty values are left out, so `default` supplies the
fallback: `{{ name | default("朋友") }}`.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from tutti.audience.models import Contact, ContactTag, Identity, Order, OrderLine, Tag
from tutti.audience.tags import active_filter
from tutti.reach.tracking import codes

CHUNK = 2000
PROFILE = ("name", "gender", "locale", "city", "timezone")
VARIABLES = ("contact_id", "name", "first_name", "gender", "birthday", "locale", "city", "timezone", "email", "phone",
             "attributes", "tags", "last_order", "unsubscribe_url")


def _first_name(name: str) -> str:
    name = name.strip()
    if " " in name:
        return name.split()[0]
    # Chinese names: the family name is the first character (two for a few compound ones); people are
    # greeted by the given name, so "王小明" is 小明
    if len(name) in (3, 4) and all("\u4e00" <= c <= "\u9fff" for c in name):
        return name[1:] if len(name) == 3 else name[2:]
    return name


def load_contexts(db: Session, *, workspace_id: int, contact_ids: list[int]) -> dict[int, dict]:
    """{contact id: variables}. Unknown or erased ids are left out."""
    result: dict[int, dict] = {}
    ids = list(dict.fromkeys(contact_ids))
    for start in range(0, len(ids), CHUNK):
        result.update(_load_chunk(db, workspace_id, ids[start:start + CHUNK]))
    return result


def _load_chunk(db: Session, workspace_id: int, ids: list[int]) -> dict[int, dict]:
    contexts: dict[int, dict] = {}
    columns = [Contact.id, Contact.birthday, Contact.attributes, *(getattr(Contact, f) for f in PROFILE)]
    rows = db.execute(select(*columns).where(Contact.workspace_id == workspace_id, Contact.id.in_(ids),
                                             Contact.erased_at.is_(None)))
    for contact_id, birthday, attributes, *profile in rows:
        context: dict = {"contact_id": contact_id}
        custom = {k: v for k, v in (attributes or {}).items() if v is not None and v != ""}
        context.update({k: v for k, v in custom.items() if k not in VARIABLES})
        context["attributes"] = custom
        for key, value in zip(PROFILE, profile, strict=True):
            if value not in (None, ""):
                context[key] = value
        if context.get("name"):
            context["first_name"] = _first_name(context["name"])
        if birthday is not None:
            context["birthday"] = birthday.isoformat()
        context["tags"] = []
        context["unsubscribe_url"] = codes.unsubscribe_url(workspace_id, contact_id)
        contexts[contact_id] = context
    if not contexts:
        return contexts
    found = list(contexts)
    identities = db.execute(select(Identity.contact_id, Identity.kind, Identity.value)
                            .where(Identity.workspace_id == workspace_id, Identity.contact_id.in_(found),
                                   Identity.kind.in_(("email", "phone")))
                            .order_by(Identity.id))
    for contact_id, kind, value in identities:
        contexts[contact_id].setdefault(kind, value)  # the first recorded e-mail / phone
    tags = db.execute(select(ContactTag.contact_id, Tag.name).join(Tag, Tag.id == ContactTag.tag_id)
                      .where(ContactTag.workspace_id == workspace_id, ContactTag.contact_id.in_(found), active_filter())
                      .order_by(Tag.name))
    for contact_id, name in tags:
        contexts[contact_id]["tags"].append(name)
    latest = (select(Order.contact_id, func.max(Order.placed_at).label("placed_at"))
              .where(Order.workspace_id == workspace_id, Order.contact_id.in_(found),
                     Order.status.notin_(("cancelled", "refunded")))
              .group_by(Order.contact_id).subquery())
    orders = db.execute(select(Order.id, Order.contact_id, Order.external_id, Order.total, Order.currency, Order.placed_at)
                        .join(latest, and_(latest.c.contact_id == Order.contact_id, latest.c.placed_at == Order.placed_at))
                        .where(Order.workspace_id == workspace_id).order_by(Order.id))
    by_order: dict[int, dict] = {}
    for order_id, contact_id, external_id, total, currency, placed_at in orders:
        order = {"external_id": external_id, "total": total, "currency": currency,
                 "placed_at": placed_at.date().isoformat(), "products": []}
        contexts[contact_id]["last_order"] = order  # two orders at the same instant: the later id wins
        by_order[order_id] = order
    if by_order:
        lines = db.execute(select(OrderLine.order_id, OrderLine.name).where(OrderLine.order_id.in_(list(by_order)))
                           .order_by(OrderLine.id))
        for order_id, name in lines:
            if name:
                by_order[order_id]["products"].append(name)
    return contexts


def sample_context(workspace_id: int = 0) -> dict:
    """Made-up variables for previews when no contact is chosen."""
    return {"contact_id": 0, "name": "王小明", "first_name": "小明", "city": "台北市", "email": "mei@example.com",
            "phone": "+886912345678", "tags": ["VIP"], "attributes": {"points": 1280}, "points": 1280,
            "last_order": {"external_id": "SO-1001", "total": 1280.0, "currency": "TWD", "placed_at": "2026-01-01",
                           "products": ["耶加雪菲咖啡豆"]},
            "unsubscribe_url": codes.unsubscribe_url(workspace_id or 1, 1) if workspace_id else "#unsubscribe"}
