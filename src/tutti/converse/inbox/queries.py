"""What the inbox shows: queue counts, conversation lists, one conversation's messages, the profile beside it.

Reads only; every change goes through tutti.converse.conversations.service, which records and publishes it.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from tutti.audience.models import Contact, Identity, Order
from tutti.converse.conversations.models import Conversation, Message, Team, TeamMember
from tutti.converse.inbox.models import CannedResponse
from tutti.platform.errors import InvalidInput, NotFound
from tutti.platform.models import Membership, User

OPEN = ("bot", "waiting", "assigned", "follow_up")
PAGE = 50


def queue_counts(db: Session, *, workspace_id: int, user_id: int) -> dict[str, int]:
    """The queue counts in one pass over the workspace's open conversations (the queues of
    conversations.service.list_conversations; resolved ones are not counted)."""
    my_teams = select(TeamMember.team_id).where(TeamMember.workspace_id == workspace_id, TeamMember.user_id == user_id)
    row = db.execute(
        select(
            func.count(case((Conversation.assignee_user_id == user_id, 1))),
            func.count(case((and_(Conversation.team_id.in_(my_teams), Conversation.status != "bot"), 1))),
            func.count(case((and_(Conversation.status == "waiting", Conversation.assignee_user_id.is_(None)), 1))),
            func.count(case((Conversation.status == "bot", 1))),
            func.count(case((Conversation.status == "follow_up", 1))),
            func.count(),
        ).where(Conversation.workspace_id == workspace_id, Conversation.status.in_(OPEN))
    ).one()
    return dict(zip(("mine", "team", "unassigned", "bot", "follow_up", "all"), row, strict=True))


def decorate(db: Session, *, conversations: list[Conversation], needle: str = "") -> list[dict]:
    """Rows for the list: the contact's name, the assignee, the team and the newest message's preview."""
    from tutti.converse.conversations.service import last_messages

    if not conversations:
        return []
    contact_names = dict(db.execute(select(Contact.id, Contact.name).where(Contact.id.in_({c.contact_id for c in conversations}))).all())
    user_ids = {c.assignee_user_id for c in conversations if c.assignee_user_id}
    users = {uid: name or email for uid, name, email in db.execute(select(User.id, User.name, User.email).where(User.id.in_(user_ids)))} if user_ids else {}
    team_ids = {c.team_id for c in conversations if c.team_id}
    team_names = dict(db.execute(select(Team.id, Team.name).where(Team.id.in_(team_ids))).all()) if team_ids else {}
    last = last_messages(db, conversation_ids=[c.id for c in conversations])
    rows = []
    for c in conversations:
        message = last.get(c.id)
        preview = (message.text or f"[{message.kind}]")[:80] if message else ""
        row = {"id": c.id, "status": c.status, "channel": c.channel, "contact_id": c.contact_id,
               "contact_name": contact_names.get(c.contact_id), "assignee": users.get(c.assignee_user_id),
               "team": team_names.get(c.team_id), "tags": c.tags or [], "subject": c.subject,
               "last_message_at": c.last_message_at or c.created_at, "preview": preview,
               "last_author": message.author if message else None}
        if needle and needle not in " ".join(str(v or "") for v in (row["contact_name"], c.subject, preview, *row["tags"])).lower():
            continue
        rows.append(row)
    return rows


def get_conversation(db: Session, *, workspace_id: int, conversation_id: int) -> Conversation:
    conversation = db.get(Conversation, conversation_id)
    if conversation is None or conversation.workspace_id != workspace_id:
        raise NotFound(f"no conversation with id {conversation_id}")
    return conversation


def messages(db: Session, *, workspace_id: int, conversation_id: int, limit: int = 200) -> list[dict]:
    rows = db.execute(
        select(Message, User.name, User.email).outerjoin(User, User.id == Message.user_id)
        .where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id)
        .order_by(Message.id.desc()).limit(limit)
    ).all()
    return [
        {"id": m.id, "author": m.author, "kind": m.kind, "text": m.text, "payload": m.payload or {},
         "created_at": m.created_at, "channel": m.channel, "user": (name or email) if m.user_id else None}
        for m, name, email in reversed(rows)
    ]


def profile_extras(db: Session, *, workspace_id: int, contact_id: int, conversation_id: int) -> dict:
    """Beside the audience profile: recent orders with status, campaigns received, past conversations."""
    orders = db.execute(
        select(Order.external_id, Order.status, Order.total, Order.currency, Order.placed_at)
        .where(Order.workspace_id == workspace_id, Order.contact_id == contact_id)
        .order_by(Order.placed_at.desc()).limit(5)
    ).all()
    past = db.execute(
        select(Conversation.id, Conversation.channel, Conversation.status, Conversation.topic, Conversation.created_at)
        .where(Conversation.workspace_id == workspace_id, Conversation.contact_id == contact_id,
               Conversation.id != conversation_id)
        .order_by(Conversation.id.desc()).limit(5)
    ).all()
    return {
        "orders": [dict(r._mapping) for r in orders],
        "past": [dict(r._mapping) for r in past],
        "campaigns": campaigns_received(db, workspace_id=workspace_id, contact_id=contact_id),
    }


def campaigns_received(db: Session, *, workspace_id: int, contact_id: int, limit: int = 5) -> list[dict]:
    """The contact's latest deliveries, when Reach is installed (Converse does not depend on it)."""
    try:
        from tutti.reach.campaigns.models import Campaign, Delivery
    except ImportError:
        return []
    rows = db.execute(
        select(Campaign.name, Delivery.channel, Delivery.status, Delivery.sent_at, Delivery.created_at)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.workspace_id == workspace_id, Delivery.contact_id == contact_id)
        .order_by(Delivery.id.desc()).limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]


def contact_identities(db: Session, *, contact_id: int) -> list[tuple[str, str]]:
    return list(db.execute(select(Identity.kind, Identity.value).where(Identity.contact_id == contact_id)).all())


def members(db: Session, *, workspace_id: int) -> list[dict]:
    rows = db.execute(
        select(User.id, User.name, User.email, Membership.role).join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id, User.disabled_at.is_(None)).order_by(User.name, User.email)
    ).all()
    return [{"id": uid, "name": name or email, "role": role} for uid, name, email, role in rows]


def teams(db: Session, *, workspace_id: int) -> list[Team]:
    return list(db.scalars(select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)))


# --- canned responses -----------------------------------------------------------------------------


def canned_responses(db: Session, *, workspace_id: int) -> list[CannedResponse]:
    return list(db.scalars(select(CannedResponse).where(CannedResponse.workspace_id == workspace_id)
                           .order_by(CannedResponse.shortcut)))


def save_canned(db: Session, *, workspace_id: int, name: str, shortcut: str, text_zh: str, text_en: str,
                canned_id: int | None = None) -> CannedResponse:
    name, shortcut = name.strip(), shortcut.strip().lstrip("/").lower()
    if not name:
        raise InvalidInput("a canned response needs a name", field="name")
    if not shortcut or not shortcut.replace("-", "").replace("_", "").isalnum() or len(shortcut) > 40:
        raise InvalidInput("the shortcut is one word of letters, digits, - or _", field="shortcut")
    if not (text_zh.strip() or text_en.strip()):
        raise InvalidInput("write the text in at least one language", field="text_zh")
    clash = db.scalar(select(CannedResponse.id).where(CannedResponse.workspace_id == workspace_id,
                                                      CannedResponse.shortcut == shortcut))
    if clash is not None and clash != canned_id:
        raise InvalidInput(f"the shortcut /{shortcut} is taken", field="shortcut")
    if canned_id is not None:
        canned = db.get(CannedResponse, canned_id)
        if canned is None or canned.workspace_id != workspace_id:
            raise NotFound(f"no canned response with id {canned_id}")
    else:
        canned = CannedResponse(workspace_id=workspace_id)
        db.add(canned)
    canned.name, canned.shortcut, canned.text_zh, canned.text_en = name[:100], shortcut, text_zh.strip(), text_en.strip()
    db.flush()
    return canned


def delete_canned(db: Session, *, workspace_id: int, canned_id: int) -> None:
    canned = db.get(CannedResponse, canned_id)
    if canned is None or canned.workspace_id != workspace_id:
        raise NotFound(f"no canned response with id {canned_id}")
    db.delete(canned)


# --- metrics --------------------------------------------------------------------------------------


def metrics(db: Session, *, workspace_id: int, since, until) -> dict:
    """The dashboard's figures: the conversations service computes them (the API shows the same)."""
    from tutti.converse.conversations import metrics as service_metrics

    return service_metrics.dashboard(db, workspace_id=workspace_id, since=since, until=until)
