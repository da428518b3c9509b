"""Helpers for the conversation and agent tests: a shop with contacts, orders, a team and a stand-in
knowledge base where a test needs to fix what the knowledge base answers."""

from __future__ import annotations

from datetime import timedelta

from tutti.audience import commerce, consent, contacts, tags
from tutti.converse.knowledge.matching import Match
from tutti.platform import workspaces
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow

ACTOR = Actor.cli()


def make_contact(db, workspace_id: int, email: str, *, name: str = "林美玲", attributes: dict | None = None, orders: list[tuple] = (),
                 line_uid: str | None = None) -> int:
    identities = {"email": email}
    if line_uid:
        identities["line_uid"] = line_uid
    contact, _ = contacts.upsert(db, workspace_id=workspace_id, identities=identities, profile={"name": name}, attributes=attributes or {},
                                 actor=ACTOR)
    if orders:
        commerce.record_orders(db, workspace_id=workspace_id, orders=[
            commerce.NewOrder(contact_id=contact.id, external_id=number, placed_at=utcnow() - timedelta(days=days), total=total, status=status,
                              lines=[commerce.NewOrderLine(sku=f"SKU-{number}", name=f"玫瑰精華液 {number}", quantity=1, unit_price=total)])
            for number, status, total, days in orders])
    return contact.id


def make_agent_user(db, workspace_id: int, email: str, role: str = "agent") -> int:
    user = workspaces.create_user(db, email=email, password=None, name=email.split("@")[0])
    workspaces.add_member(db, workspace_id=workspace_id, user_id=user.id, role=role, actor=ACTOR)
    return user.id


def subscribe(db, workspace_id: int, contact_id: int, *channels: str) -> None:
    for channel in channels:
        consent.set_consent(db, workspace_id=workspace_id, contact_id=contact_id, channel=channel, status="subscribed", source="test")


def tag(db, workspace_id: int, contact_id: int, name: str) -> None:
    tags.apply(db, workspace_id=workspace_id, contact_ids=[contact_id], tag=name)


class FixedKnowledge:
    """Stands in for the knowledge base's match (monkeypatched on the router) so a test fixes its answer:
    questions containing a key get that answer in scope; anything else is out of scope."""

    def __init__(self, answers: dict[str, tuple[int, str, str]], *, team: str | None = None):
        self.answers = answers  # key phrase -> (item id, title, answer)
        self.team = team
        self.asked: list[str] = []

    def __call__(self, db, workspace_id: int, text: str) -> Match:
        self.asked.append(text)
        for key, (item_id, title, answer) in self.answers.items():
            if key in text.lower():
                return Match(item_id=item_id, confidence=0.93, answer=answer, title=title, in_scope=True, reason="test",
                             source={"kind": "faq", "external_id": f"K{item_id}", "title": title}, team=self.team, topic=title)
        return Match(item_id=None, confidence=0.12, answer=None, title=None, source=None, in_scope=False, reason="out of scope (test)",
                     team=self.team)
