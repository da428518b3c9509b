"""What each role may do. One table, checked by the API and the UI alike."""

from __future__ import annotations

from tutti.platform.errors import Forbidden
from tutti.platform.models import ROLES

_EVERYONE = frozenset(ROLES)
_MANAGERS = frozenset({"owner", "admin"})
_MARKETING = frozenset({"owner", "admin", "marketer"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "contacts.read": _EVERYONE,
    "contacts.write": frozenset({"owner", "admin", "marketer", "agent"}),
    "contacts.merge": _MARKETING,
    "tags.manage": _MARKETING,
    "attributes.manage": _MARKETING,
    "imports.run": _MARKETING,
    "privacy.manage": _MANAGERS,
    "keys.manage": _MANAGERS,
    "users.manage": _MANAGERS,
    "audit.read": _MANAGERS,
    "workspace.manage": _MANAGERS,
    # conversations hold customers' own words: not for analysts, who get the figures (converse.metrics)
    "conversations.read": frozenset({"owner", "admin", "marketer", "agent"}),
    "conversations.work": frozenset({"owner", "admin", "agent"}),
    "converse.manage": _MANAGERS,
    "converse.metrics": _EVERYONE,
    "knowledge.read": _EVERYONE,  # the answers customers get are no secret; asking /knowledge/ask sends nothing
    "knowledge.manage": frozenset({"owner", "admin", "marketer", "agent"}),  # who answers customers keeps answers right
    "channels.read": _EVERYONE,  # campaigns, journeys and the inbox pick channels; secrets are never shown
    "channels.manage": _MANAGERS,
    "templates.manage": _MARKETING,
    "segments.read": _EVERYONE,
    "segments.manage": _MARKETING,
    "campaigns.read": _EVERYONE,
    "campaigns.send": _MARKETING,
}


def can(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def require(role: str, permission: str) -> None:
    if not can(role, permission):
        raise Forbidden(f"the role '{role}' may not do '{permission}'")


def check_role(role: str) -> str:
    if role not in ROLES:
        from tutti.platform.errors import InvalidInput

        raise InvalidInput(f"unknown role '{role}'; use one of {', '.join(ROLES)}", field="role")
    return role
