"""Teams: who answers, when they are open, and round-robin assignment among the members online."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tutti.converse.conversations.models import ASSIGNMENTS, Team, TeamMember
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.models import Membership, Workspace

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def check_hours(hours: dict | None) -> dict:
    """{"mon": [["09:00", "18:00"]], …}; days left out are closed; an empty dict means always open."""
    hours = hours or {}
    if not isinstance(hours, dict):
        raise InvalidInput("business_hours must be an object of weekday -> [[from, to], …]", field="business_hours")
    for day, spans in hours.items():
        if day not in DAYS:
            raise InvalidInput(f"business_hours: '{day}' is not a weekday; use {', '.join(DAYS)}", field=f"business_hours.{day}")
        if not isinstance(spans, list):
            raise InvalidInput(f"business_hours.{day} must be a list of [from, to]", field=f"business_hours.{day}")
        for span in spans:
            if (not isinstance(span, list | tuple) or len(span) != 2 or not all(isinstance(t, str) and _TIME.match(t) for t in span)
                    or span[0] >= span[1]):
                raise InvalidInput(f"business_hours.{day}: {span!r} is not [\"HH:MM\", \"HH:MM\"] with from before to",
                                   field=f"business_hours.{day}")
    return {day: [list(s) for s in spans] for day, spans in hours.items()}


def _check_messages(messages: dict | None) -> dict:
    messages = messages or {}
    if not isinstance(messages, dict) or set(messages) - {"zh-TW", "en"} or not all(isinstance(v, str) and len(v) <= 1000 for v in messages.values()):
        raise InvalidInput("out_of_hours_message must be {\"zh-TW\": \"…\", \"en\": \"…\"} (up to 1,000 characters each)",
                           field="out_of_hours_message")
    return messages


def get_team(db: Session, *, workspace_id: int, team_id: int) -> Team:
    team = db.get(Team, team_id)
    if team is None or team.workspace_id != workspace_id:
        raise NotFound(f"no team with id {team_id}", field="team_id")
    return team


def list_teams(db: Session, *, workspace_id: int) -> list[Team]:
    return list(db.scalars(select(Team).where(Team.workspace_id == workspace_id).order_by(Team.name)))


def members_of(db: Session, *, workspace_id: int, team_ids: list[int]) -> dict[int, list[TeamMember]]:
    result: dict[int, list[TeamMember]] = {t: [] for t in team_ids}
    if team_ids:
        for member in db.scalars(select(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.team_id.in_(team_ids))
                                 .order_by(TeamMember.user_id)):
            result[member.team_id].append(member)
    return result


def _check_name(db: Session, workspace_id: int, name: str, team_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("a team name needs 1 to 100 characters", field="name")
    other = db.scalar(select(Team.id).where(Team.workspace_id == workspace_id, Team.name == name))
    if other is not None and other != team_id:
        raise Conflict(f"there is a team named '{name}' already", field="name")
    return name


def create_team(db: Session, *, workspace_id: int, name: str, assignment: str = "round_robin", business_hours: dict | None = None,
                out_of_hours_message: dict | None = None, is_default: bool = False, members: list[int] | None = None) -> Team:
    if assignment not in ASSIGNMENTS:
        raise InvalidInput(f"assignment must be one of {', '.join(ASSIGNMENTS)}", field="assignment")
    team = Team(workspace_id=workspace_id, name=_check_name(db, workspace_id, name), assignment=assignment,
                business_hours=check_hours(business_hours), out_of_hours_message=_check_messages(out_of_hours_message), is_default=False)
    db.add(team)
    db.flush()
    if is_default:
        _make_default(db, workspace_id, team)
    for user_id in members or []:
        add_member(db, workspace_id=workspace_id, team_id=team.id, user_id=user_id)
    return team


def _make_default(db: Session, workspace_id: int, team: Team) -> None:
    db.execute(update(Team).where(Team.workspace_id == workspace_id, Team.id != team.id).values(is_default=False)
               .execution_options(synchronize_session="fetch"))
    team.is_default = True


def update_team(db: Session, *, workspace_id: int, team_id: int, changes: dict) -> Team:
    team = get_team(db, workspace_id=workspace_id, team_id=team_id)
    if "name" in changes:
        team.name = _check_name(db, workspace_id, changes["name"], team.id)
    if "assignment" in changes:
        if changes["assignment"] not in ASSIGNMENTS:
            raise InvalidInput(f"assignment must be one of {', '.join(ASSIGNMENTS)}", field="assignment")
        team.assignment = changes["assignment"]
    if "business_hours" in changes:
        team.business_hours = check_hours(changes["business_hours"])
    if "out_of_hours_message" in changes:
        team.out_of_hours_message = _check_messages(changes["out_of_hours_message"])
    if changes.get("is_default"):
        _make_default(db, workspace_id, team)
    elif changes.get("is_default") is False:
        team.is_default = False
    db.flush()
    return team


def delete_team(db: Session, *, workspace_id: int, team_id: int) -> None:
    db.delete(get_team(db, workspace_id=workspace_id, team_id=team_id))
    db.flush()


def add_member(db: Session, *, workspace_id: int, team_id: int, user_id: int, online: bool | None = None) -> TeamMember:
    get_team(db, workspace_id=workspace_id, team_id=team_id)
    if db.scalar(select(Membership.user_id).where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)) is None:
        raise NotFound(f"user {user_id} is not a member of this workspace", field="user_id")
    member = db.get(TeamMember, (team_id, user_id))
    if member is None:
        member = TeamMember(team_id=team_id, user_id=user_id, workspace_id=workspace_id, online=bool(online))
        db.add(member)
    elif online is not None:
        member.online = online
    db.flush()
    return member


def remove_member(db: Session, *, workspace_id: int, team_id: int, user_id: int) -> None:
    get_team(db, workspace_id=workspace_id, team_id=team_id)
    member = db.get(TeamMember, (team_id, user_id))
    if member is None:
        raise NotFound(f"user {user_id} is not in team {team_id}", field="user_id")
    db.delete(member)
    db.flush()


def set_online(db: Session, *, workspace_id: int, user_id: int, online: bool, team_id: int | None = None) -> int:
    """Mark a person online or away in all their teams (or one); returns how many memberships changed."""
    query = update(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.user_id == user_id)
    if team_id is not None:
        query = query.where(TeamMember.team_id == team_id)
    return db.execute(query.values(online=online).execution_options(synchronize_session="fetch")).rowcount


def default_team(db: Session, *, workspace_id: int, preferred: int | None = None) -> Team | None:
    """The team a hand-off goes to: the preferred one if it exists here, else the default, else the first."""
    if preferred is not None:
        team = db.get(Team, preferred)
        if team is not None and team.workspace_id == workspace_id:
            return team
    return db.scalar(select(Team).where(Team.workspace_id == workspace_id).order_by(Team.is_default.desc(), Team.id).limit(1))


def is_open(db: Session, team: Team, at: datetime | None = None) -> bool:
    """Whether the team works now, in the workspace's time zone. No hours configured: always open."""
    if not team.business_hours:
        return True
    zone = db.scalar(select(Workspace.timezone).where(Workspace.id == team.workspace_id)) or "Asia/Taipei"
    local = (at or utcnow()).astimezone(ZoneInfo(zone))
    day, clock = DAYS[local.weekday()], local.strftime("%H:%M")
    return any(start <= clock < end for start, end in team.business_hours.get(day, []))


def next_assignee(db: Session, *, workspace_id: int, team: Team) -> int | None:
    """Round robin: the online member assigned longest ago (never assigned first); marks them assigned now.

    The row is locked (FOR UPDATE on PostgreSQL; SQLite's write transaction already serialises), so two
    hand-offs at the same moment go to two people."""
    query = (select(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.team_id == team.id, TeamMember.online.is_(True))
             .order_by(TeamMember.last_assigned_at.is_not(None), TeamMember.last_assigned_at, TeamMember.user_id).limit(1))
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    member = db.scalar(query)
    if member is None:
        return None
    member.last_assigned_at = utcnow()
    # the same person's other teams remember it too, so someone in two teams is not served twice in a row
    db.execute(update(TeamMember).where(TeamMember.workspace_id == workspace_id, TeamMember.user_id == member.user_id)
               .values(last_assigned_at=member.last_assigned_at).execution_options(synchronize_session=False))
    return member.user_id
