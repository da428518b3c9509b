"""Background work of converse: importing this module registers its huey tasks."""

import tutti.converse.conversations.jobs  # noqa: F401,E402 - deliveries to channels, follow-ups
import tutti.converse.line_intake  # noqa: F401,E402 - the LINE event handler, for workers that handle webhooks
import tutti.converse.knowledge.jobs  # noqa: F401,E402 - embedding imported knowledge
