"""The figures of the service: how much the agent resolves, how fast people answer, how customers feel.

Over conversations started in [since, until):
- automated resolution rate: resolved, no person involved (no hand-off, no person's message or action),
  and not reopened within 24 h of being resolved — out of conversations with a customer message;
- hand-off rate and the reasons (from agent_decision, the decisions made in the range);
- first response time of anyone (bot or person) and of people (from the hand-off, or the first message
  when a person took it directly): p50 and p90 in seconds; resolution time likewise;
- CSAT average and count; volume by channel, team, person and day.
Percentiles are computed in Python from the range's rows so SQLite and PostgreSQL give the same figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutti.converse.conversations.models import AgentDecision, Conversation, Team
from tutti.platform.errors import InvalidInput
from tutti.platform.models import Membership, User


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..1) with linear interpolation, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 3)


def _spread(values: list[float]) -> dict:
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "count": len(values)}


def dashboard(db: Session, *, workspace_id: int, since: datetime, until: datetime) -> dict:
    if until <= since:
        raise InvalidInput("'until' must be after 'since'", field="until")
    rows = db.execute(
        select(Conversation.channel, Conversation.team_id, Conversation.assignee_user_id, Conversation.status, Conversation.created_at,
               Conversation.first_customer_message_at, Conversation.first_response_at, Conversation.first_human_response_at,
               Conversation.handed_off_at, Conversation.resolved_at, Conversation.reopened_count, Conversation.reopened_soon,
               Conversation.handled_by_bot_only, Conversation.csat_score)
        .where(Conversation.workspace_id == workspace_id, Conversation.created_at >= since, Conversation.created_at < until)
    ).all()
    with_customer = [r for r in rows if r.first_customer_message_at is not None]
    automated = [r for r in with_customer if r.status == "resolved" and r.handled_by_bot_only and not r.reopened_soon]
    handed = [r for r in with_customer if r.handed_off_at is not None]
    resolved = [r for r in with_customer if r.status == "resolved" and r.resolved_at is not None]
    first_any = [(r.first_response_at - r.first_customer_message_at).total_seconds() for r in with_customer
                 if r.first_response_at and r.first_response_at >= r.first_customer_message_at]
    first_human = [(r.first_human_response_at - (r.handed_off_at or r.first_customer_message_at)).total_seconds() for r in with_customer
                   if r.first_human_response_at and r.first_human_response_at >= (r.handed_off_at or r.first_customer_message_at)]
    first_bot = [(r.first_response_at - r.first_customer_message_at).total_seconds() for r in with_customer
                 if r.first_response_at and r.first_response_at >= r.first_customer_message_at
                 and (r.first_human_response_at is None or r.first_response_at < r.first_human_response_at)]
    resolution = [(r.resolved_at - r.first_customer_message_at).total_seconds() for r in resolved if r.resolved_at >= r.first_customer_message_at]
    scores = [r.csat_score for r in rows if r.csat_score]
    reasons = db.execute(
        select(AgentDecision.handoff_reason, func.count()).where(
            AgentDecision.workspace_id == workspace_id, AgentDecision.action == "handoff",
            AgentDecision.created_at >= since, AgentDecision.created_at < until)
        .group_by(AgentDecision.handoff_reason).order_by(func.count().desc())
    ).all()
    actions = dict(db.execute(select(AgentDecision.action, func.count()).where(
        AgentDecision.workspace_id == workspace_id, AgentDecision.created_at >= since, AgentDecision.created_at < until)
        .group_by(AgentDecision.action)).all())
    team_names = dict(db.execute(select(Team.id, Team.name).where(Team.workspace_id == workspace_id)).all())
    user_names = {uid: name or email for uid, name, email in db.execute(
        select(User.id, User.name, User.email).join(Membership, Membership.user_id == User.id).where(Membership.workspace_id == workspace_id))}
    by_day: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    by_team: dict[str, int] = {}
    by_person: dict[str, int] = {}
    for r in rows:
        day = r.created_at.date().isoformat()
        by_day[day] = by_day.get(day, 0) + 1
        by_channel[r.channel] = by_channel.get(r.channel, 0) + 1
        if r.team_id:
            name = team_names.get(r.team_id, f"#{r.team_id}")
            by_team[name] = by_team.get(name, 0) + 1
        if r.assignee_user_id:
            name = user_names.get(r.assignee_user_id, f"#{r.assignee_user_id}")
            by_person[name] = by_person.get(name, 0) + 1
    total = len(with_customer)
    first_any_spread, first_human_spread, resolution_spread = _spread(first_any), _spread(first_human), _spread(resolution)
    return {
        "since": since, "until": until,
        "conversations": len(rows),
        "with_customer": total,
        "resolved": len(resolved),
        "automated_resolutions": len(automated),
        "automated_resolution_rate": round(len(automated) / total, 4) if total else None,
        "handoffs": len(handed),
        "handoff_rate": round(len(handed) / total, 4) if total else None,
        "handoff_reasons": {reason or "other": n for reason, n in reasons},
        "decisions": actions,
        "first_response": first_any_spread,
        "first_bot_response": _spread(first_bot),
        "first_human_response": first_human_spread,
        "resolution": resolution_spread,
        # the dashboard's single figures (medians)
        "first_response_seconds": first_any_spread["p50"],
        "first_human_response_seconds": first_human_spread["p50"],
        "resolution_seconds": resolution_spread["p50"],
        "csat_average": round(sum(scores) / len(scores), 3) if scores else None,
        "csat_responses": len(scores),
        "by_day": dict(sorted(by_day.items())),
        "by_channel": by_channel,
        "by_team": by_team,
        "by_person": by_person,
    }
