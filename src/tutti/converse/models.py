"""The tables of converse: importing this module registers all of them (migrations and tests rely on it)."""

from tutti.converse.agents.models import *  # noqa: F401,F403,E402 - agent_config
from tutti.converse.conversations.models import *  # noqa: F401,F403,E402 - team, conversation, message, agent_decision
from tutti.converse.inbox.models import *  # noqa: F401,F403,E402 - canned_response
from tutti.converse.widget.models import *  # noqa: F401,F403,E402 - widget_config
from tutti.converse.knowledge.models import *  # noqa: F401,F403,E402 - knowledge_item, knowledge_phrasing, knowledge_passage, knowledge_version, knowledge_gap
