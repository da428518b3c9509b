"""REST API of conversations, teams, the agent's configuration and the service metrics (Bearer API key).

Permissions (see docs/agents.md):
- conversations.read  (owner, admin, marketer, agent): queues, a conversation with its messages, teams
- conversations.work  (owner, admin, agent): messages as customer or agent, notes, tags, assign, resolve,
  reopen, follow-up, CSAT, bulk actions, outbound, copilot
- converse.manage     (owner, admin): teams and their members, the agent's configuration
- converse.metrics    (everyone, analysts included: only aggregates): the metrics
Analysts do not read conversations: they hold customers' own words; the figures are theirs.

Importing this module also registers the LINE intake (line_intake.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session

import tutti.converse.line_intake  # noqa: F401 - appends the LINE event handler
from tutti.audience import contacts
from tutti.audience.schemas import Identities
from tutti.converse.agents import config as agent_config
from tutti.converse.agents import copilot
from tutti.converse.conversations import metrics, service, teams
from tutti.converse.conversations.models import Message
from tutti.platform.api import allowed
from tutti.platform.auth import ApiContext, get_db
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput
from tutti.platform.schemas import ERROR_RESPONSES, Body, Id, IdPath, JsonObject, QueryText, Text, UtcDatetime

router = APIRouter(responses=ERROR_RESPONSES)

Queue = Literal["mine", "team", "unassigned", "waiting", "bot", "follow_up", "resolved", "open", "all"]
Status = Literal["bot", "waiting", "assigned", "follow_up", "resolved"]
ChannelName = Literal["web", "line", "api", "email"]
Kind = Literal["text", "sticker", "image", "postback"]


# --- shapes ----------------------------------------------------------------------------------------


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    author: str = Field(examples=["customer"], description="customer, bot, agent or system")
    user_id: int | None
    kind: str = Field(examples=["text"], description="text, sticker, image, postback, note (internal) or event")
    text: str | None = Field(examples=["我的訂單什麼時候到？"])
    payload: dict
    channel: str
    created_at: datetime


class ConversationOut(BaseModel):
    id: int
    contact_id: int
    channel: str = Field(examples=["line"])
    channel_id: int | None
    status: str = Field(examples=["waiting"])
    assignee_user_id: int | None
    team_id: int | None
    subject: str | None
    topic: str | None
    tags: list[str]
    language: str | None
    pending_action: dict | None
    created_at: datetime
    first_customer_message_at: datetime | None
    first_response_at: datetime | None
    first_human_response_at: datetime | None
    handed_off_at: datetime | None
    resolved_at: datetime | None
    reopened_count: int
    handled_by_bot_only: bool
    last_message_at: datetime | None
    follow_up_at: datetime | None
    csat_score: int | None
    csat_comment: str | None
    last_message: MessageOut | None = None


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class DecisionOut(BaseModel):
    id: int
    message_id: int | None
    action: str = Field(examples=["handoff"])
    knowledge_id: int | None
    confidence: float | None
    reason: str = Field(examples=["the customer asked for a person ('真人')"])
    tool: str | None
    handoff_reason: str | None
    detail: dict
    latency_ms: float | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
    decisions: list[DecisionOut]


class CustomerMessageIn(Body):
    contact_id: Id | None = Field(default=None, description="the contact writing; or give identities")
    identities: Identities | None = Field(default=None, description="who is writing, when the contact id is not known (created if new)")
    channel: ChannelName = "api"
    text: Text(5000) | None = Field(default=None, examples=["我的訂單什麼時候到？"])
    kind: Kind = "text"
    payload: JsonObject = Field(default_factory=dict)
    external_id: Text(128) | None = Field(default=None, description="the channel's message id: a repeat is stored once")

    @model_validator(mode="after")
    def _who(self):
        if (self.contact_id is None) == (self.identities is None):
            raise ValueError("give either contact_id or identities")
        return self


class CustomerMessageOut(BaseModel):
    message: MessageOut
    conversation: ConversationOut
    replies: list[MessageOut] = Field(description="what the bot answered (and any hand-off note is not included)")


class AgentMessageIn(Body):
    text: Text(5000, 1) = Field(examples=["您好，我幫您查一下訂單。"])
    user_id: Id | None = Field(default=None, description="the person writing (a member of the workspace)")


class NoteIn(Body):
    text: Text(5000, 1)
    user_id: Id | None = None


class AssignIn(Body):
    user_id: Id | None = None
    team_id: Id | None = None


class ResolveIn(Body):
    ask_csat: bool = True
    user_id: Id | None = None


class FollowUpIn(Body):
    until: UtcDatetime | None = None


class TagsIn(Body):
    add: list[Text(100, 1)] = Field(default_factory=list, max_length=50)
    remove: list[Text(100, 1)] = Field(default_factory=list, max_length=50)


class CsatIn(Body):
    score: int = Field(ge=1, le=5)
    comment: Text(2000) | None = None


class BulkIn(Body):
    conversation_ids: list[Id] = Field(min_length=1, max_length=500)
    action: Literal["resolve", "assign", "tag", "follow_up", "reopen"]
    user_id: Id | None = None
    team_id: Id | None = None
    tags: list[Text(100, 1)] = Field(default_factory=list, max_length=50)


class BulkOut(BaseModel):
    done: int
    errors: list[dict]


class OutboundIn(Body):
    contact_ids: list[Id] = Field(default_factory=list, max_length=1000)
    segment_id: Id | None = None
    channel: ChannelName = "line"
    text: Text(5000, 1)
    user_id: Id | None = None


class OutboundOut(BaseModel):
    conversation_ids: list[int]


class SuggestionList(BaseModel):
    items: list[dict]


class SummaryOut(BaseModel):
    conversation_id: int
    text: str
    by: str = Field(description="extractive or llm")
    intents: list[str]
    knowledge: list[str]
    customer_messages: int


class TeamMemberOut(BaseModel):
    user_id: int
    online: bool
    last_assigned_at: datetime | None


class TeamOut(BaseModel):
    id: int
    name: str
    assignment: str
    business_hours: dict
    out_of_hours_message: dict
    is_default: bool
    open_now: bool
    members: list[TeamMemberOut]


class TeamList(BaseModel):
    items: list[TeamOut]


Hours = dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[list[Text(5)]]]


class TeamIn(Body):
    name: Text(100, 1) = Field(examples=["客服"])
    assignment: Literal["round_robin", "manual"] = "round_robin"
    business_hours: Hours = Field(default_factory=dict, examples=[{"mon": [["09:00", "18:00"]]}])
    out_of_hours_message: dict[Literal["zh-TW", "en"], Text(1000)] = Field(default_factory=dict)
    is_default: bool = False
    members: list[Id] = Field(default_factory=list, max_length=200)


class TeamPatch(Body):
    name: Text(100, 1) | None = None
    assignment: Literal["round_robin", "manual"] | None = None
    business_hours: Hours | None = None
    out_of_hours_message: dict[Literal["zh-TW", "en"], Text(1000)] | None = None
    is_default: bool | None = None


class MemberIn(Body):
    online: bool = False


class AgentConfigIn(Body):
    handoff_keywords: list[Text(100, 1)] | None = Field(default=None, max_length=500, examples=[["律師", "lawsuit"]])
    rules: list[JsonObject] | None = Field(default=None, max_length=100, examples=[[{"tag": "VIP", "reason": "vip", "team_id": 1}]])
    default_team_id: Id | None = None
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    allow_pii_in_prompt: bool | None = None
    negative_threshold: float | None = Field(default=None, gt=0)
    llm: bool | None = None


# --- helpers ---------------------------------------------------------------------------------------


def _conversation(db: Session, conversation, last: Message | None = None) -> dict:
    data = service.conversation_dict(conversation)
    data["last_message"] = service.message_dict(last) if last is not None else None
    return data


def _detail(db: Session, ctx: ApiContext, conversation_id: int) -> dict:
    conversation = service.get_conversation(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id)
    messages = service.messages_of(db, workspace_id=ctx.workspace_id, conversation_id=conversation.id)
    decisions = service.decisions_of(db, workspace_id=ctx.workspace_id, conversation_id=conversation.id)
    return {**_conversation(db, conversation, messages[-1] if messages else None),
            "messages": [service.message_dict(m) for m in messages],
            "decisions": [{"id": d.id, "message_id": d.message_id, "action": d.action, "knowledge_id": d.knowledge_id, "confidence": d.confidence,
                           "reason": d.reason, "tool": d.tool, "handoff_reason": d.handoff_reason, "detail": d.detail or {},
                           "latency_ms": d.latency_ms, "created_at": d.created_at} for d in decisions]}


# --- conversations -----------------------------------------------------------------------------------


@router.get("/conversations", response_model=ConversationPage, tags=["conversations"])
def list_conversations(
    queue: Queue = "all",
    user_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="for queue=mine/team: whose")] = None,
    team_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: Status | None = None,
    channel: ChannelName | None = None,
    contact_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    cursor: QueryText(200) = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ctx: ApiContext = allowed("conversations.read"),
    db: Session = get_db,
) -> dict:
    """A queue of conversations, most recently active first, keyset-paginated. Queues: mine, team (of
    user_id, or team_id), unassigned, waiting, bot, follow_up, resolved, open, all. Permission: conversations.read."""
    page, next_cursor = service.list_conversations(db, workspace_id=ctx.workspace_id, queue=queue, user_id=user_id, team_id=team_id,
                                                   status=status, channel=channel, contact_id=contact_id, cursor=cursor, limit=limit)
    last = service.last_messages(db, conversation_ids=[c.id for c in page])
    return {"items": [_conversation(db, c, last.get(c.id)) for c in page], "next_cursor": next_cursor}


@router.post("/conversations/messages", response_model=CustomerMessageOut, status_code=201, tags=["conversations"])
def post_customer_message(body: CustomerMessageIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """A message from a customer (for channels without their own intake, and tests): stored once per
    external_id, the agent answers unless a person has the conversation. Permission: conversations.work."""
    if body.contact_id is not None:
        contact_id = contacts.live_contact(db, workspace_id=ctx.workspace_id, contact_id=body.contact_id).id
    else:
        identities = body.identities.model_dump(exclude_none=True)
        if not identities:
            raise InvalidInput("give at least one identity", field="identities")
        contact, _ = contacts.upsert(db, workspace_id=ctx.workspace_id, identities=identities, source="converse", region=ctx.region, actor=ctx.actor)
        contact_id = contact.id
    message = service.receive_customer_message(db, workspace_id=ctx.workspace_id, contact_id=contact_id, channel=body.channel, text=body.text,
                                               kind=body.kind, payload=body.payload, external_id=body.external_id)
    conversation = service.get_conversation(db, workspace_id=ctx.workspace_id, conversation_id=message.conversation_id)
    replies = [m for m in service.messages_of(db, workspace_id=ctx.workspace_id, conversation_id=conversation.id, after_id=message.id,
                                              include_notes=False) if m.author == "bot"]
    return {"message": service.message_dict(message), "conversation": _conversation(db, conversation),
            "replies": [service.message_dict(m) for m in replies]}


@router.post("/conversations/bulk", response_model=BulkOut, tags=["conversations"])
def bulk(body: BulkIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """One action on up to 500 conversations: resolve, assign, tag, follow_up, reopen. Permission: conversations.work."""
    return service.bulk(db, workspace_id=ctx.workspace_id, conversation_ids=body.conversation_ids, action=body.action, user_id=body.user_id,
                        team_id=body.team_id, tags=body.tags)


@router.post("/conversations/outbound", response_model=OutboundOut, status_code=201, tags=["conversations"])
def outbound(body: OutboundIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Start (or continue) a conversation with contacts or each member of a segment, with a person's message.
    Permission: conversations.work."""
    ids = service.start_outbound(db, workspace_id=ctx.workspace_id, text=body.text, channel=body.channel, user_id=body.user_id,
                                 contact_ids=body.contact_ids, segment_id=body.segment_id)
    return {"conversation_ids": ids}


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail, tags=["conversations"])
def get_conversation(conversation_id: IdPath, ctx: ApiContext = allowed("conversations.read"), db: Session = get_db) -> dict:
    """A conversation with its messages (notes included) and the agent's decisions, each with why.
    Permission: conversations.read."""
    return _detail(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/messages", response_model=MessageOut, status_code=201, tags=["conversations"])
def post_agent_message(conversation_id: IdPath, body: AgentMessageIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """A person's reply to the customer (sent to their channel). Permission: conversations.work."""
    return service.message_dict(service.post_agent_message(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id,
                                                           user_id=body.user_id, text=body.text))


@router.post("/conversations/{conversation_id}/notes", response_model=MessageOut, status_code=201, tags=["conversations"])
def add_note(conversation_id: IdPath, body: NoteIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """An internal note (never shown to the customer). Permission: conversations.work."""
    return service.message_dict(service.add_note(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, user_id=body.user_id,
                                                 text=body.text))


def _changed(db: Session, ctx: ApiContext, conversation_id: int) -> dict:
    return _conversation(db, service.get_conversation(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id))


@router.post("/conversations/{conversation_id}/assign", response_model=ConversationOut, tags=["conversations"])
def assign(conversation_id: IdPath, body: AssignIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Give the conversation to a person and/or a team (a round-robin team picks the person). Permission: conversations.work."""
    service.assign(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, user_id=body.user_id, team_id=body.team_id)
    return _changed(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/resolve", response_model=ConversationOut, tags=["conversations"])
def resolve(conversation_id: IdPath, body: ResolveIn | None = None, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Resolve: names the topic (tagging the contact `topic:<name>`) and asks for CSAT. Permission: conversations.work."""
    body = body or ResolveIn()
    service.resolve(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, ask_csat=body.ask_csat, by_user_id=body.user_id)
    return _changed(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/reopen", response_model=ConversationOut, tags=["conversations"])
def reopen(conversation_id: IdPath, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Reopen a resolved conversation (409 if it is not resolved). Permission: conversations.work."""
    service.reopen(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id)
    return _changed(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/follow-up", response_model=ConversationOut, tags=["conversations"])
def follow_up(conversation_id: IdPath, body: FollowUpIn | None = None, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Park the conversation until `until` (or the customer's next message). Permission: conversations.work."""
    service.follow_up(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, until=(body or FollowUpIn()).until)
    return _changed(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/tags", response_model=ConversationOut, tags=["conversations"])
def tags(conversation_id: IdPath, body: TagsIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Add and remove the conversation's tags. Permission: conversations.work."""
    service.set_tags(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, add=body.add, remove=body.remove)
    return _changed(db, ctx, conversation_id)


@router.post("/conversations/{conversation_id}/csat", response_model=ConversationOut, tags=["conversations"])
def csat(conversation_id: IdPath, body: CsatIn, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Record the customer's satisfaction score (1-5) and comment. Permission: conversations.work."""
    service.record_csat(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id, score=body.score, comment=body.comment)
    return _changed(db, ctx, conversation_id)


@router.get("/conversations/{conversation_id}/suggestions", response_model=SuggestionList, tags=["conversations"])
def suggestions(conversation_id: IdPath, ctx: ApiContext = allowed("conversations.work"), db: Session = get_db) -> dict:
    """Suggested replies to the customer's last message (knowledge answers, or the LLM's draft). Permission: conversations.work."""
    return {"items": copilot.suggest_replies(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id)}


@router.get("/conversations/{conversation_id}/summary", response_model=SummaryOut, tags=["conversations"])
def summary(conversation_id: IdPath, ctx: ApiContext = allowed("conversations.read"), db: Session = get_db) -> dict:
    """A summary of the conversation for the person opening it. Permission: conversations.read."""
    return copilot.summarise(db, workspace_id=ctx.workspace_id, conversation_id=conversation_id)


# --- teams ---------------------------------------------------------------------------------------------


def _teams(db: Session, ctx: ApiContext, found: list) -> list[dict]:
    members = teams.members_of(db, workspace_id=ctx.workspace_id, team_ids=[t.id for t in found])
    return [{"id": t.id, "name": t.name, "assignment": t.assignment, "business_hours": t.business_hours or {},
             "out_of_hours_message": t.out_of_hours_message or {}, "is_default": t.is_default, "open_now": teams.is_open(db, t),
             "members": [{"user_id": m.user_id, "online": m.online, "last_assigned_at": m.last_assigned_at} for m in members[t.id]]}
            for t in found]


@router.get("/teams", response_model=TeamList, tags=["teams"])
def list_teams(ctx: ApiContext = allowed("conversations.read"), db: Session = get_db) -> dict:
    """Teams with their members (who is online) and whether they are open now. Permission: conversations.read."""
    return {"items": _teams(db, ctx, teams.list_teams(db, workspace_id=ctx.workspace_id))}


@router.post("/teams", response_model=TeamOut, status_code=201, tags=["teams"])
def create_team(body: TeamIn, ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> dict:
    """Create a team (round_robin or manual assignment, business hours per weekday in the workspace's time
    zone, an out-of-hours message in zh-TW and English). Permission: converse.manage."""
    team = teams.create_team(db, workspace_id=ctx.workspace_id, name=body.name, assignment=body.assignment, business_hours=body.business_hours,
                             out_of_hours_message=body.out_of_hours_message, is_default=body.is_default, members=body.members)
    return _teams(db, ctx, [team])[0]


@router.get("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
def get_team(team_id: IdPath, ctx: ApiContext = allowed("conversations.read"), db: Session = get_db) -> dict:
    """One team. Permission: conversations.read."""
    return _teams(db, ctx, [teams.get_team(db, workspace_id=ctx.workspace_id, team_id=team_id)])[0]


@router.patch("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
def update_team(team_id: IdPath, body: TeamPatch, ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> dict:
    """Change a team. Permission: converse.manage."""
    team = teams.update_team(db, workspace_id=ctx.workspace_id, team_id=team_id, changes=body.model_dump(exclude_unset=True))
    return _teams(db, ctx, [team])[0]


@router.delete("/teams/{team_id}", status_code=204, response_class=Response, tags=["teams"])
def delete_team(team_id: IdPath, ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> Response:
    """Delete a team; its conversations keep going, without a team. Permission: converse.manage."""
    teams.delete_team(db, workspace_id=ctx.workspace_id, team_id=team_id)
    return Response(status_code=204)


@router.put("/teams/{team_id}/members/{user_id}", response_model=TeamOut, tags=["teams"])
def put_member(team_id: IdPath, user_id: IdPath, body: MemberIn | None = None, ctx: ApiContext = allowed("converse.manage"),
               db: Session = get_db) -> dict:
    """Add a workspace member to the team, or set whether they are online. Permission: converse.manage."""
    teams.add_member(db, workspace_id=ctx.workspace_id, team_id=team_id, user_id=user_id, online=(body or MemberIn()).online)
    return _teams(db, ctx, [teams.get_team(db, workspace_id=ctx.workspace_id, team_id=team_id)])[0]


@router.delete("/teams/{team_id}/members/{user_id}", status_code=204, response_class=Response, tags=["teams"])
def delete_member(team_id: IdPath, user_id: IdPath, ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> Response:
    """Take a person out of the team. Permission: converse.manage."""
    teams.remove_member(db, workspace_id=ctx.workspace_id, team_id=team_id, user_id=user_id)
    return Response(status_code=204)


# --- agent configuration and metrics ---------------------------------------------------------------------


@router.get("/agent-config", tags=["agent"])
def get_agent_config(ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> dict[str, Any]:
    """The agent's settings: hand-off keywords and tag rules, default team, confidence floor, whether prompts
    may carry personal data, the sentiment threshold, whether the LLM is used. Permission: converse.manage."""
    return agent_config.get_config(db, workspace_id=ctx.workspace_id)


@router.patch("/agent-config", tags=["agent"])
def patch_agent_config(body: AgentConfigIn, ctx: ApiContext = allowed("converse.manage"), db: Session = get_db) -> dict[str, Any]:
    """Change some of the agent's settings. Permission: converse.manage."""
    return agent_config.update_config(db, workspace_id=ctx.workspace_id, changes=body.model_dump(exclude_unset=True))


@router.get("/converse/metrics", tags=["agent"])
def get_metrics(
    since: Annotated[UtcDatetime | None, Query(description="start (default: 30 days ago)")] = None,
    until: Annotated[UtcDatetime | None, Query(description="end, exclusive (default: now)")] = None,
    ctx: ApiContext = allowed("converse.metrics"),
    db: Session = get_db,
) -> dict[str, Any]:
    """Automated resolution rate, hand-off rate and reasons, first response times (p50/p90, anyone and
    people), resolution time, CSAT, volume by channel/team/person/day, for conversations started in the
    range. Permission: converse.metrics (every role)."""
    until = until or utcnow()
    since = since or until - timedelta(days=30)
    if until - since > timedelta(days=400):
        raise InvalidInput("the range is at most 400 days", field="since")
    return metrics.dashboard(db, workspace_id=ctx.workspace_id, since=since, until=until)
