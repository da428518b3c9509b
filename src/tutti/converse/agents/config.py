"""Per-workspace settings of the agent, stored as one JSON row (`agent_config`) over these defaults.

    handoff_keywords   words that always bring a person (e.g. "律師", "lawsuit")
    rules              [{"tag": "vip", "reason": "vip", "team_id": 3}] — a contact holding the tag is
                       handed to a person (to that team) whatever they ask
    default_team_id    where hand-offs go when nothing says otherwise (else the team marked default)
    min_confidence     a floor above the knowledge base's own calibrated threshold (null: use in_scope)
    allow_pii_in_prompt  whether the LLM may see the contact's name/e-mail/phone (default: no)
    negative_threshold sentiment score from which a message goes to a person (default 3)
    llm                false turns the LLM path off for this workspace even when one is configured
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tutti.converse.agents.models import AgentConfig
from tutti.platform.db import utcnow
from tutti.platform.errors import InvalidInput

DEFAULTS: dict = {
    "handoff_keywords": [],
    "rules": [],
    "default_team_id": None,
    "min_confidence": None,
    "allow_pii_in_prompt": False,
    "negative_threshold": 3,
    "llm": True,
}


def get_config(db: Session, *, workspace_id: int) -> dict:
    row = db.get(AgentConfig, workspace_id)
    return {**DEFAULTS, **(row.settings if row else {})}


def _check(settings: dict) -> dict:
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InvalidInput(f"unknown agent settings: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}", field=min(unknown))
    keywords = settings.get("handoff_keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) and 0 < len(k.strip()) <= 100 for k in keywords) or len(keywords) > 500:
        raise InvalidInput("handoff_keywords must be a list of up to 500 words of 1-100 characters", field="handoff_keywords")
    rules = settings.get("rules", [])
    if not isinstance(rules, list) or len(rules) > 100:
        raise InvalidInput("rules must be a list of up to 100 rules", field="rules")
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("tag"), str) or not rule["tag"].strip():
            raise InvalidInput(f"rule {index}: needs a 'tag' (a contact holding it is handed to a person)", field=f"rules.{index}.tag")
        if set(rule) - {"tag", "reason", "team_id"}:
            raise InvalidInput(f"rule {index}: only tag, reason and team_id are understood", field=f"rules.{index}")
        if rule.get("team_id") is not None and not isinstance(rule["team_id"], int):
            raise InvalidInput(f"rule {index}: team_id must be a team's id", field=f"rules.{index}.team_id")
    floor = settings.get("min_confidence")
    if floor is not None and (not isinstance(floor, int | float) or isinstance(floor, bool) or not 0 <= floor <= 1):
        raise InvalidInput("min_confidence must be between 0 and 1, or null", field="min_confidence")
    threshold = settings.get("negative_threshold", 3)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold <= 0:
        raise InvalidInput("negative_threshold must be a positive number", field="negative_threshold")
    for flag in ("allow_pii_in_prompt", "llm"):
        if flag in settings and not isinstance(settings[flag], bool):
            raise InvalidInput(f"{flag} must be true or false", field=flag)
    team = settings.get("default_team_id")
    if team is not None and (not isinstance(team, int) or isinstance(team, bool)):
        raise InvalidInput("default_team_id must be a team's id or null", field="default_team_id")
    return settings


def update_config(db: Session, *, workspace_id: int, changes: dict) -> dict:
    """Change some settings (the others keep their values); returns the whole configuration."""
    _check(changes)
    from tutti.converse.conversations import teams

    for team_id in [changes.get("default_team_id")] + [r.get("team_id") for r in changes.get("rules", [])]:
        if team_id is not None:
            teams.get_team(db, workspace_id=workspace_id, team_id=team_id)  # NotFound for another workspace's team
    row = db.get(AgentConfig, workspace_id)
    if row is None:
        row = AgentConfig(workspace_id=workspace_id, settings={})
        db.add(row)
    row.settings = {**(row.settings or {}), **changes}
    row.updated_at = utcnow()
    db.flush()
    return {**DEFAULTS, **row.settings}
