"""Conversations: customer messages in, the agent's and people's messages out, and the life of a conversation
(bot → waiting → assigned → follow-up → resolved, reopened by a new customer message).

Everything runs in the caller's transaction; real-time events and deliveries to channels happen after
its commit (events.py). Every automated answer and hand-off is recorded in `agent_decision` with why."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from tutti.converse.conversations import events, teams
from tutti.converse.conversations.models import (
    AUTHORS,
    CONVERSATION_CHANNELS,
    MESSAGE_KINDS,
    STATUSES,
    AgentDecision,
    Conversation,
    Message,
    MessageKey,
    TeamMember,
)
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.models import Membership
from tutti.platform.sql import insert_ignore

log = logging.getLogger("tutti.conversations")

# A customer writing again within this time continues (reopens) the conversation; later starts a new one.
REOPEN_WINDOW = timedelta(days=7)
# How long after resolving a lone "1".."5" counts as the CSAT score rather than a new question.
CSAT_WINDOW = timedelta(days=3)
# A resolution the customer comes back on within this time did not really resolve it (metrics).
REOPEN_SOON = timedelta(hours=24)
# A conversation the bot answered and the customer left alone this long counts as resolved by the bot.
BOT_IDLE = timedelta(hours=2)
HISTORY = 20  # messages the agent sees
MAX_TEXT = 5000
QUEUES = ("mine", "team", "unassigned", "waiting", "bot", "follow_up", "resolved", "open", "all")


# --- shapes ------------------------------------------------------------------------------------------


def message_dict(message: Message) -> dict:
    return {"id": message.id, "conversation_id": message.conversation_id, "author": message.author, "user_id": message.user_id,
            "kind": message.kind, "text": message.text, "payload": message.payload or {}, "channel": message.channel,
            "created_at": message.created_at}


def conversation_dict(conversation: Conversation) -> dict:
    c = conversation
    return {"id": c.id, "contact_id": c.contact_id, "channel": c.channel, "channel_id": c.channel_id, "status": c.status,
            "assignee_user_id": c.assignee_user_id, "team_id": c.team_id, "subject": c.subject, "topic": c.topic,
            "tags": list(c.tags or []), "language": c.language, "pending_action": c.pending_action, "created_at": c.created_at,
            "first_customer_message_at": c.first_customer_message_at, "first_response_at": c.first_response_at,
            "first_human_response_at": c.first_human_response_at, "handed_off_at": c.handed_off_at, "resolved_at": c.resolved_at,
            "reopened_count": c.reopened_count, "handled_by_bot_only": c.handled_by_bot_only, "last_message_at": c.last_message_at,
            "follow_up_at": c.follow_up_at, "csat_score": c.csat_score, "csat_comment": c.csat_comment}


def _changed(db: Session, conversation: Conversation) -> None:
    events.publish(db, conversation.workspace_id, {"type": "conversation", "conversation_id": conversation.id,
                                                   "conversation": conversation_dict(conversation)})


# --- lookups -----------------------------------------------------------------------------------------


def get_conversation(db: Session, *, workspace_id: int, conversation_id: int, lock: bool = False) -> Conversation:
    query = select(Conversation).where(Conversation.id == conversation_id, Conversation.workspace_id == workspace_id)
    if lock and db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    conversation = db.scalar(query)
    if conversation is None:
        raise NotFound(f"no conversation with id {conversation_id}", field="conversation_id")
    return conversation


def messages_of(db: Session, *, workspace_id: int, conversation_id: int, after_id: int | None = None, before_id: int | None = None,
                limit: int = 200, include_notes: bool = True) -> list[Message]:
    """Messages oldest first; `after_id` for what is new since, `before_id` for older pages."""
    query = select(Message).where(Message.workspace_id == workspace_id, Message.conversation_id == conversation_id)
    if not include_notes:
        query = query.where(Message.kind != "note")
    if after_id:
        query = query.where(Message.id > after_id)
    if before_id:
        rows = list(db.scalars(query.where(Message.id < before_id).order_by(Message.id.desc()).limit(limit)))
        return rows[::-1]
    if after_id:
        return list(db.scalars(query.order_by(Message.id).limit(limit)))
    return list(db.scalars(query.order_by(Message.id.desc()).limit(limit)))[::-1]


def decisions_of(db: Session, *, workspace_id: int, conversation_id: int) -> list[AgentDecision]:
    return list(db.scalars(select(AgentDecision).where(AgentDecision.workspace_id == workspace_id,
                                                       AgentDecision.conversation_id == conversation_id).order_by(AgentDecision.id)))


def _check_user(db: Session, workspace_id: int, user_id: int | None, field: str = "user_id") -> None:
    if user_id is not None and db.scalar(select(Membership.user_id).where(Membership.workspace_id == workspace_id,
                                                                          Membership.user_id == user_id)) is None:
        raise NotFound(f"user {user_id} is not a member of this workspace", field=field)


def _check_text(text: str | None, kind: str) -> str | None:
    if kind not in MESSAGE_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(MESSAGE_KINDS)}", field="kind")
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidInput(f"a message has at most {MAX_TEXT} characters", field="text")
    if kind == "text" and not (text or "").strip():
        raise InvalidInput("a text message needs text", field="text")
    return text


# --- opening ------------------------------------------------------------------------------------------


def _open(db: Session, *, workspace_id: int, contact_id: int, channel: str, channel_id: int | None, now: datetime,
          text: str | None, kind: str) -> tuple[Conversation, str]:
    """The conversation this customer message belongs to: the open one, a recently resolved one reopened,
    or a new one. Returns (conversation, "open" | "reopened" | "new" | "csat")."""
    current = db.scalar(select(Conversation).where(Conversation.workspace_id == workspace_id, Conversation.contact_id == contact_id,
                                                   Conversation.channel == channel).order_by(Conversation.id.desc()).limit(1))
    if current is not None and current.status != "resolved":
        if channel_id is not None and current.channel_id is None:
            current.channel_id = channel_id
        return current, "open"
    if current is not None and current.resolved_at and now - current.resolved_at < REOPEN_WINDOW:
        if (kind == "text" and current.csat_score is None and now - current.resolved_at < CSAT_WINDOW
                and (text or "").strip() in {"1", "2", "3", "4", "5"}):
            return current, "csat"
        current.status = "assigned" if current.assignee_user_id else ("waiting" if not current.handled_by_bot_only else "bot")
        current.reopened_soon = current.reopened_soon or now - current.resolved_at < REOPEN_SOON
        current.resolved_at = None
        current.reopened_at = now
        current.reopened_count += 1
        return current, "reopened"
    conversation = Conversation(workspace_id=workspace_id, contact_id=contact_id, channel=channel, channel_id=channel_id, status="bot",
                                tags=[], created_at=now, handled_by_bot_only=True, reopened_count=0)
    db.add(conversation)
    db.flush()
    return conversation, "new"


def _add_message(db: Session, conversation: Conversation, *, author: str, text: str | None, kind: str = "text", payload: dict | None = None,
                 user_id: int | None = None, external_id: str | None = None, at: datetime | None = None) -> Message:
    assert author in AUTHORS
    message = Message(workspace_id=conversation.workspace_id, conversation_id=conversation.id, channel=conversation.channel, author=author,
                      user_id=user_id, kind=kind, text=text, payload=payload or {}, external_id=external_id, created_at=at or utcnow())
    db.add(message)
    db.flush()
    if kind != "note":
        conversation.last_message_at = message.created_at
    events.publish(db, conversation.workspace_id, {"type": "message", "conversation_id": conversation.id, "message": message_dict(message)})
    return message


def _deliver(db: Session, conversation: Conversation, message: Message, reply_token: str | None = None) -> None:
    """Send a bot/agent message to the customer's channel after the commit (web: the realtime event is the delivery)."""
    if conversation.channel not in ("line", "email"):
        return
    message_id, token = message.id, reply_token

    def send() -> None:
        from tutti.converse.conversations import outbound

        outbound.schedule(message_id, token)

    events.after_commit(db, send)


# --- customer messages -----------------------------------------------------------------------------------


def receive_customer_message(
    db: Session,
    *,
    workspace_id: int,
    contact_id: int,
    channel: str,
    text: str | None,
    kind: str = "text",
    payload: dict | None = None,
    external_id: str | None = None,
    reply_token: str | None = None,
    channel_id: int | None = None,
    run_agent: bool = True,
) -> Message:
    """Store a customer's message (once per external_id), and let the agent answer unless a person has it.

    Returns the customer's message; a repeat of an external_id returns the first one and does nothing."""
    from tutti.audience import contacts

    if channel not in CONVERSATION_CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CONVERSATION_CHANNELS)}", field="channel")
    text = _check_text(text, kind)
    if external_id is not None:
        external_id = str(external_id)[:128]
        if not insert_ignore(db, MessageKey, [{"workspace_id": workspace_id, "channel": channel, "external_id": external_id, "message_id": 0}],
                             conflict=("workspace_id", "channel", "external_id")):
            earlier = db.scalar(select(MessageKey.message_id).where(MessageKey.workspace_id == workspace_id, MessageKey.channel == channel,
                                                                    MessageKey.external_id == external_id))
            existing = db.get(Message, earlier) if earlier else None
            if existing is not None:
                return existing
            raise Conflict(f"message {external_id} is being stored by another request", field="external_id")
    contact = contacts.live_contact(db, workspace_id=workspace_id, contact_id=contact_id)
    now = utcnow()
    conversation, how = _open(db, workspace_id=workspace_id, contact_id=contact.id, channel=channel, channel_id=channel_id, now=now,
                              text=text, kind=kind)
    message = _add_message(db, conversation, author="customer", text=text, kind=kind, payload=payload, external_id=external_id, at=now)
    if external_id is not None:
        db.execute(update(MessageKey).where(MessageKey.workspace_id == workspace_id, MessageKey.channel == channel,
                                            MessageKey.external_id == external_id).values(message_id=message.id))
    if conversation.first_customer_message_at is None:
        conversation.first_customer_message_at = now
    if conversation.subject is None and text and kind == "text":
        conversation.subject = text.strip()[:300]
    if how == "csat":
        conversation.csat_score, conversation.csat_at = int(text.strip()), now
        _changed(db, conversation)
        return message
    if conversation.status == "follow_up":  # the customer answered what the person was waiting for
        conversation.status = "assigned" if conversation.assignee_user_id else "waiting"
    if run_agent and conversation.status == "bot":
        _run_agent(db, conversation, message, reply_token)
    _changed(db, conversation)
    return message


def _history(db: Session, conversation: Conversation, before_id: int) -> list[dict]:
    rows = db.execute(select(Message.author, Message.text, Message.kind).where(
        Message.conversation_id == conversation.id, Message.id < before_id, Message.kind != "note", Message.author != "system")
        .order_by(Message.id.desc()).limit(HISTORY)).all()
    return [{"author": author, "text": text, "kind": kind} for author, text, kind in reversed(rows)]


def _run_agent(db: Session, conversation: Conversation, message: Message, reply_token: str | None) -> None:
    from tutti.converse.agents import router

    if message.kind != "text":
        if (message.payload or {}).get("needs_person") or message.kind == "image":
            # a photo (a broken item, a receipt) or a file: only a person can look at it
            decision = router.Decision(action="handoff", handoff_reason="non_text", reason=f"the customer sent a {message.kind}",
                                       language=conversation.language or "zh-TW")
            _record(db, conversation, message, decision)
            handoff(db, conversation=conversation, reason="non_text", decision=decision, reply_token=reply_token, quiet=True)
        # a sticker, a postback, a location: kept for people to see; the bot does not guess what it means
        return
    try:
        decision = router.decide(db, workspace_id=conversation.workspace_id, contact_id=conversation.contact_id, text=message.text or "",
                                 history=_history(db, conversation, message.id), pending=conversation.pending_action)
    except Exception as error:
        log.exception("agent failed", extra={"conversation_id": conversation.id})
        decision = router.Decision(action="handoff", handoff_reason="agent_error", reason=f"the agent failed: {str(error)[:200]}",
                                   language=conversation.language or "zh-TW")
    conversation.language = decision.language
    if decision.pending_action is not None:
        conversation.pending_action = decision.pending_action
    elif decision.clear_pending:
        conversation.pending_action = None
    _record(db, conversation, message, decision)
    if decision.action == "handoff":
        if decision.handoff_reason == "low_confidence":
            _note_gap(db, conversation, message, decision)
        handoff(db, conversation=conversation, reason=decision.handoff_reason or "low_confidence", team_id=decision.team,
                decision=decision, reply_token=reply_token)
        return
    post_bot_message(db, conversation=conversation, text=decision.answer or "", reply_token=reply_token,
                     payload={k: v for k, v in (("knowledge_id", decision.knowledge_id), ("source", decision.source),
                                                ("tool", decision.tool), ("confidence", decision.confidence)) if v is not None})


def _note_gap(db: Session, conversation: Conversation, message: Message, decision) -> None:
    """A question the knowledge base could not answer goes to its gaps report."""
    try:
        from tutti.converse.knowledge import service as knowledge

        with db.begin_nested():
            knowledge.record_unanswered(db, workspace_id=conversation.workspace_id, question=message.text or "",
                                        confidence=decision.confidence or 0.0, best_item_id=decision.knowledge_id, reason=decision.reason,
                                        contact_id=conversation.contact_id, conversation_id=conversation.id)
    except Exception:
        log.exception("could not record the unanswered question", extra={"conversation_id": conversation.id})


def _record(db: Session, conversation: Conversation, message: Message | None, decision) -> AgentDecision:
    detail = dict(decision.detail or {})
    for key in ("intent", "language", "source", "sentiment"):
        value = getattr(decision, key, None)
        if value not in (None, 0.0, ""):
            detail[key] = value
    if decision.tool_result is not None:
        detail["tool_result"] = json.loads(json.dumps(decision.tool_result, default=str))
    if decision.sources:
        detail["sources"] = decision.sources
    row = AgentDecision(workspace_id=conversation.workspace_id, conversation_id=conversation.id, message_id=message.id if message else None,
                        action=decision.action, knowledge_id=decision.knowledge_id, confidence=decision.confidence,
                        reason=(decision.reason or "")[:300], tool=decision.tool, handoff_reason=decision.handoff_reason,
                        detail=detail, latency_ms=decision.latency_ms)
    db.add(row)
    db.flush()
    return row


def post_bot_message(db: Session, *, conversation: Conversation, text: str, payload: dict | None = None, reply_token: str | None = None,
                     kind: str = "text") -> Message:
    message = _add_message(db, conversation, author="bot", text=text, kind=kind, payload=payload)
    if conversation.first_response_at is None:
        conversation.first_response_at = message.created_at
    _deliver(db, conversation, message, reply_token)
    return message


def _system(db: Session, conversation: Conversation, text: str, payload: dict | None = None, kind: str = "event") -> Message:
    return _add_message(db, conversation, author="system", text=text, kind=kind, payload=payload)


# --- hand-off -------------------------------------------------------------------------------------------


def handoff(db: Session, *, conversation: Conversation, reason: str, team_id: int | None = None, decision=None,
            reply_token: str | None = None, quiet: bool = False) -> Conversation:
    """Give the conversation to people: waiting, routed to a team, a summary note for them, the customer told
    (in their language; the team's out-of-hours message when it is closed), round-robin when the team does it."""
    from tutti.converse.agents import copilot
    from tutti.converse.agents.config import get_config
    from tutti.converse.agents.language import say

    now = utcnow()
    config = get_config(db, workspace_id=conversation.workspace_id)
    team = teams.default_team(db, workspace_id=conversation.workspace_id, preferred=team_id or conversation.team_id or config["default_team_id"])
    conversation.status = "waiting"
    conversation.handed_off_at = conversation.handed_off_at or now
    conversation.handled_by_bot_only = False
    conversation.pending_action = None
    conversation.team_id = team.id if team else None
    language = conversation.language or (decision.language if decision else "zh-TW")
    summary = copilot.handoff_summary(db, conversation=conversation, reason=reason, decision=decision)
    _system(db, conversation, summary["text"], payload={"summary": summary, "handoff_reason": reason,
                                                        "team_id": conversation.team_id}, kind="note")
    open_now = team is None or teams.is_open(db, team, now)
    if not quiet or not open_now:
        if open_now:
            text = (decision.answer if decision and decision.answer else None) or say("handoff", language)
        else:
            custom = (team.out_of_hours_message or {}) if team else {}
            text = custom.get(language) or custom.get("en") or say("handoff_closed", language)
        post_bot_message(db, conversation=conversation, text=text, reply_token=reply_token, payload={"handoff": reason})
    if team is not None and team.assignment == "round_robin" and open_now:
        user_id = teams.next_assignee(db, workspace_id=conversation.workspace_id, team=team)
        if user_id is not None:
            conversation.assignee_user_id = user_id
            conversation.status = "assigned"
            _system(db, conversation, f"assigned to user {user_id} (round robin)", payload={"assignee_user_id": user_id, "by": "round_robin"})
    _changed(db, conversation)
    return conversation


# --- people's work ---------------------------------------------------------------------------------------


def post_agent_message(db: Session, *, workspace_id: int, conversation_id: int, user_id: int | None, text: str | None,
                       kind: str = "text", payload: dict | None = None) -> Message:
    """A person's reply to the customer: the conversation becomes theirs (if nobody had it) and leaves the bot."""
    text = _check_text(text, kind)
    if kind == "note":
        return add_note(db, workspace_id=workspace_id, conversation_id=conversation_id, user_id=user_id, text=text)
    _check_user(db, workspace_id, user_id)
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id, lock=True)
    message = _add_message(db, conversation, author="agent", text=text, kind=kind, payload=payload, user_id=user_id)
    conversation.first_response_at = conversation.first_response_at or message.created_at
    conversation.first_human_response_at = conversation.first_human_response_at or message.created_at
    conversation.handled_by_bot_only = False
    conversation.pending_action = None
    if conversation.assignee_user_id is None and user_id is not None:
        conversation.assignee_user_id = user_id
    if conversation.status in ("bot", "waiting", "resolved"):
        if conversation.status == "resolved":
            conversation.resolved_at = None
        conversation.status = "assigned"
    _deliver(db, conversation, message)
    _changed(db, conversation)
    return message


def add_note(db: Session, *, workspace_id: int, conversation_id: int, user_id: int | None, text: str) -> Message:
    """An internal note: people see it, the customer never does."""
    if not (text or "").strip():
        raise InvalidInput("a note needs text", field="text")
    _check_text(text, "note")
    _check_user(db, workspace_id, user_id)
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    return _add_message(db, conversation, author="agent", text=text, kind="note", user_id=user_id)


def set_tags(db: Session, *, workspace_id: int, conversation_id: int, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Conversation:
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    tags = list(conversation.tags or [])
    for tag in add:
        tag = (tag or "").strip()
        if not tag or len(tag) > 100:
            raise InvalidInput("a tag needs 1 to 100 characters", field="tags")
        if tag not in tags:
            tags.append(tag)
    tags = [t for t in tags if t not in set(remove)]
    if len(tags) > 50:
        raise InvalidInput("a conversation has at most 50 tags", field="tags")
    conversation.tags = tags
    _changed(db, conversation)
    return conversation


def assign(db: Session, *, workspace_id: int, conversation_id: int, user_id: int | None = None, team_id: int | None = None,
           by_user_id: int | None = None) -> Conversation:
    """Give the conversation to a person (and/or a team). With only a team and round robin, the team picks."""
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id, lock=True)
    _check_user(db, workspace_id, user_id)
    if team_id is not None:
        team = teams.get_team(db, workspace_id=workspace_id, team_id=team_id)
        conversation.team_id = team.id
        if user_id is None:
            conversation.assignee_user_id = None
            if team.assignment == "round_robin" and teams.is_open(db, team):
                user_id = teams.next_assignee(db, workspace_id=workspace_id, team=team)
    if user_id is None and team_id is None:
        raise InvalidInput("give user_id, team_id or both", field="user_id")
    if conversation.status == "bot":
        conversation.handled_by_bot_only = False
        conversation.handed_off_at = conversation.handed_off_at or utcnow()
    conversation.pending_action = None
    if user_id is not None:
        conversation.assignee_user_id = user_id
        conversation.status = "assigned"
        _system(db, conversation, f"assigned to user {user_id}", payload={"assignee_user_id": user_id, "by_user_id": by_user_id})
    else:
        conversation.status = "waiting"
        _system(db, conversation, f"moved to team {conversation.team_id}", payload={"team_id": conversation.team_id, "by_user_id": by_user_id})
    _changed(db, conversation)
    return conversation


def transfer(db: Session, *, workspace_id: int, conversation_id: int, team_id: int, by_user_id: int | None = None) -> Conversation:
    """Hand the conversation to another team (its round robin picks a person, if it does that)."""
    return assign(db, workspace_id=workspace_id, conversation_id=conversation_id, team_id=team_id, by_user_id=by_user_id)


def follow_up(db: Session, *, workspace_id: int, conversation_id: int, until: datetime | None = None) -> Conversation:
    """Waiting for something (the customer, the warehouse): out of the active queues until `until` or a new message."""
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    conversation.status = "follow_up"
    conversation.follow_up_at = until
    conversation.handled_by_bot_only = False
    _changed(db, conversation)
    return conversation


def resolve(db: Session, *, workspace_id: int, conversation_id: int, ask_csat: bool = True, by_user_id: int | None = None) -> Conversation:
    """Close the conversation, name its topic (tagging the contact `topic:<name>` for marketing) and ask for CSAT."""
    from tutti.converse.agents import copilot

    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id, lock=True)
    if conversation.status == "resolved":
        return conversation
    now = utcnow()
    if by_user_id is not None:
        conversation.handled_by_bot_only = False
    conversation.status = "resolved"
    conversation.resolved_at = now
    conversation.pending_action = None
    try:
        copilot.record_topic(db, conversation=conversation)
    except Exception:
        log.exception("topic failed", extra={"conversation_id": conversation.id})
    _system(db, conversation, "resolved", payload={"by_user_id": by_user_id})
    if ask_csat and conversation.first_customer_message_at is not None:
        from tutti.converse.agents.language import say

        post_bot_message(db, conversation=conversation, text=say("csat", conversation.language or "zh-TW"), payload={"csat": True})
        conversation.last_message_at = now
    _changed(db, conversation)
    return conversation


def reopen(db: Session, *, workspace_id: int, conversation_id: int) -> Conversation:
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id, lock=True)
    if conversation.status != "resolved":
        raise Conflict(f"conversation {conversation_id} is not resolved (it is {conversation.status})", field="status")
    conversation.status = "assigned" if conversation.assignee_user_id else "waiting"
    conversation.reopened_soon = conversation.reopened_soon or (conversation.resolved_at is not None and utcnow() - conversation.resolved_at < REOPEN_SOON)
    conversation.resolved_at = None
    conversation.reopened_at = utcnow()
    conversation.reopened_count += 1
    conversation.handled_by_bot_only = False
    _system(db, conversation, "reopened")
    _changed(db, conversation)
    return conversation


def resolve_idle_bot_conversations(db: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """Conversations the bot answered last and the customer has left alone for BOT_IDLE: resolved by the bot
    (no CSAT question: nobody is there to answer it). Returns how many."""
    now = now or utcnow()
    last_author = (select(Message.author).where(Message.conversation_id == Conversation.id, Message.kind != "note")
                   .order_by(Message.id.desc()).limit(1).scalar_subquery())
    ids = list(db.scalars(select(Conversation.id).where(Conversation.status == "bot", Conversation.last_message_at < now - BOT_IDLE,
                                                        last_author == "bot").order_by(Conversation.id).limit(limit)))
    for conversation_id in ids:
        conversation = db.get(Conversation, conversation_id)
        resolve(db, workspace_id=conversation.workspace_id, conversation_id=conversation_id, ask_csat=False)
    return len(ids)


def record_csat(db: Session, *, workspace_id: int, conversation_id: int, score: int, comment: str | None = None) -> Conversation:
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        raise InvalidInput("score must be a whole number from 1 to 5", field="score")
    if comment is not None and len(comment) > 2000:
        raise InvalidInput("a comment has at most 2,000 characters", field="comment")
    conversation = get_conversation(db, workspace_id=workspace_id, conversation_id=conversation_id)
    conversation.csat_score, conversation.csat_comment, conversation.csat_at = score, comment, utcnow()
    _changed(db, conversation)
    return conversation


BULK_ACTIONS = ("resolve", "assign", "tag", "follow_up", "reopen")


def bulk(db: Session, *, workspace_id: int, conversation_ids: Sequence[int], action: str, user_id: int | None = None,
         team_id: int | None = None, tags: Sequence[str] = (), by_user_id: int | None = None) -> dict:
    """One action on up to 500 conversations; returns how many changed and why the others did not."""
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(BULK_ACTIONS)}", field="action")
    ids = list(dict.fromkeys(conversation_ids))
    if not ids or len(ids) > 500:
        raise InvalidInput("give 1 to 500 conversation ids", field="conversation_ids")
    found = set(db.scalars(select(Conversation.id).where(Conversation.workspace_id == workspace_id, Conversation.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:  # all or nothing on ids: a list naming another workspace's conversations is a mistake, not a partial success
        raise NotFound(f"no conversations with ids {', '.join(map(str, missing[:20]))}", field="conversation_ids")
    done, errors = 0, []
    for conversation_id in ids:
        try:
            with db.begin_nested():
                if action == "resolve":
                    resolve(db, workspace_id=workspace_id, conversation_id=conversation_id, by_user_id=by_user_id)
                elif action == "assign":
                    assign(db, workspace_id=workspace_id, conversation_id=conversation_id, user_id=user_id, team_id=team_id, by_user_id=by_user_id)
                elif action == "tag":
                    set_tags(db, workspace_id=workspace_id, conversation_id=conversation_id, add=tags)
                elif action == "follow_up":
                    follow_up(db, workspace_id=workspace_id, conversation_id=conversation_id)
                else:
                    reopen(db, workspace_id=workspace_id, conversation_id=conversation_id)
            done += 1
        except (InvalidInput, NotFound, Conflict) as error:
            if isinstance(error, NotFound) and error.field in ("user_id", "team_id"):
                raise
            errors.append({"conversation_id": conversation_id, "error": error.message})
    return {"done": done, "errors": errors}


# --- outbound -----------------------------------------------------------------------------------------


def start_outbound(db: Session, *, workspace_id: int, text: str, channel: str, user_id: int | None, contact_ids: Sequence[int] = (),
                   segment_id: int | None = None, channel_id: int | None = None) -> list[int]:
    """A person starts (or continues) a conversation with a contact, or with each member of a segment.
    Set-based: conversations and messages are inserted in batches. Returns the conversation ids."""
    from tutti.audience import contacts

    text = _check_text(text, "text")
    if channel not in CONVERSATION_CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CONVERSATION_CHANNELS)}", field="channel")
    _check_user(db, workspace_id, user_id)
    ids = [contacts.live_contact(db, workspace_id=workspace_id, contact_id=c).id for c in dict.fromkeys(contact_ids)]
    if segment_id is not None:
        try:
            from tutti.reach.segments import service as segments
        except ImportError:
            raise InvalidInput("segments are not available in this installation", field="segment_id") from None
        segments.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        from tutti.reach.segments.models import SegmentMember

        ids += list(db.scalars(select(SegmentMember.contact_id).where(SegmentMember.workspace_id == workspace_id,
                                                                      SegmentMember.segment_id == segment_id)))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise InvalidInput("give contact_ids or a segment with members", field="contact_ids")
    now = utcnow()
    conversation_ids: list[int] = []
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        open_rows = dict(db.execute(select(Conversation.contact_id, func.max(Conversation.id)).where(
            Conversation.workspace_id == workspace_id, Conversation.channel == channel, Conversation.contact_id.in_(chunk),
            Conversation.status != "resolved").group_by(Conversation.contact_id)).all())
        new = [c for c in chunk if c not in open_rows]
        if new:
            rows = [{"workspace_id": workspace_id, "contact_id": c, "channel": channel, "channel_id": channel_id, "status": "assigned",
                     "assignee_user_id": user_id, "tags": [], "created_at": now, "first_response_at": now, "first_human_response_at": now,
                     "handled_by_bot_only": False, "reopened_count": 0, "last_message_at": now, "subject": text[:300]} for c in new]
            db.execute(Conversation.__table__.insert(), rows)
            open_rows.update(dict(db.execute(select(Conversation.contact_id, func.max(Conversation.id)).where(
                Conversation.workspace_id == workspace_id, Conversation.channel == channel, Conversation.contact_id.in_(new),
                Conversation.status != "resolved").group_by(Conversation.contact_id)).all()))
        batch = [open_rows[c] for c in chunk]
        db.execute(update(Conversation).where(Conversation.id.in_(batch)).values(last_message_at=now).execution_options(synchronize_session=False))
        db.execute(Message.__table__.insert(), [{"workspace_id": workspace_id, "conversation_id": cid, "channel": channel, "author": "agent",
                                                 "user_id": user_id, "kind": "text", "text": text, "payload": {"outbound": True},
                                                 "created_at": now} for cid in batch])
        conversation_ids += batch
    if channel in ("line", "email"):
        message_ids = list(db.scalars(select(Message.id).where(Message.workspace_id == workspace_id, Message.conversation_id.in_(conversation_ids),
                                                               Message.created_at == now, Message.author == "agent")))

        def send() -> None:
            from tutti.converse.conversations import outbound

            outbound.schedule_many(message_ids)

        events.after_commit(db, send)
    events.publish(db, workspace_id, {"type": "conversations", "conversation_ids": conversation_ids[:1000]})
    return conversation_ids


# --- queues ------------------------------------------------------------------------------------------------


def encode_cursor(at: datetime | None, conversation_id: int) -> str:
    raw = json.dumps([at.isoformat() if at else None, conversation_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime | None, int] | None:
    if not cursor:
        return None
    try:
        at, conversation_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return (datetime.fromisoformat(at) if at else None), int(conversation_id)
    except (ValueError, TypeError):
        raise InvalidInput("this cursor is not one we gave out", field="cursor") from None


def list_conversations(db: Session, *, workspace_id: int, queue: str = "all", user_id: int | None = None, team_id: int | None = None,
                       status: str | None = None, channel: str | None = None, contact_id: int | None = None, cursor: str | None = None,
                       limit: int = 50) -> tuple[list[Conversation], str | None]:
    """A queue of conversations, the most recently active first, one keyset page at a time.

    Queues: mine (assigned to user_id, not resolved), team (the teams of user_id, or team_id), unassigned
    (waiting for a person, nobody has it), waiting, bot, follow_up, resolved, open (not resolved), all."""
    if queue not in QUEUES:
        raise InvalidInput(f"queue must be one of {', '.join(QUEUES)}", field="queue")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be between 1 and 200", field="limit")
    query = select(Conversation).where(Conversation.workspace_id == workspace_id)
    if queue == "mine":
        if user_id is None:
            raise InvalidInput("the 'mine' queue needs a user", field="user_id")
        query = query.where(Conversation.assignee_user_id == user_id, Conversation.status != "resolved")
    elif queue == "team":
        if team_id is not None:
            query = query.where(Conversation.team_id == team_id)
        elif user_id is not None:
            query = query.where(Conversation.team_id.in_(select(TeamMember.team_id).where(TeamMember.workspace_id == workspace_id,
                                                                                         TeamMember.user_id == user_id)))
        else:
            raise InvalidInput("the 'team' queue needs team_id or a user", field="team_id")
        query = query.where(Conversation.status.in_(("waiting", "assigned", "follow_up")))
    elif queue == "unassigned":
        query = query.where(Conversation.status == "waiting", Conversation.assignee_user_id.is_(None))
    elif queue in ("waiting", "bot", "follow_up", "resolved"):
        query = query.where(Conversation.status == queue)
    elif queue == "open":
        query = query.where(Conversation.status != "resolved")
    if queue != "team" and team_id is not None:
        query = query.where(Conversation.team_id == team_id)
    if status is not None:
        query = query.where(Conversation.status == status)
    if channel is not None:
        query = query.where(Conversation.channel == channel)
    if contact_id is not None:
        query = query.where(Conversation.contact_id == contact_id)
    # conversations without messages yet sort as oldest; coalesce keeps the keyset total
    at = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    position = decode_cursor(cursor)
    if position is not None:
        before_at, before_id = position
        query = query.where(or_(at < before_at, and_(at == before_at, Conversation.id < before_id)))
    rows = list(db.scalars(query.order_by(at.desc(), Conversation.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(last.last_message_at or last.created_at, last.id)
    return page, next_cursor


def last_messages(db: Session, *, conversation_ids: list[int]) -> dict[int, Message]:
    """The newest message (not a note) of each conversation, for queue previews; two queries."""
    if not conversation_ids:
        return {}
    newest = (select(func.max(Message.id)).where(Message.conversation_id.in_(conversation_ids), Message.kind != "note",
                                                 Message.author != "system").group_by(Message.conversation_id))
    return {m.conversation_id: m for m in db.scalars(select(Message).where(Message.id.in_(newest)))}
