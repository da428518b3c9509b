"""Background work of converse: importing this module registers its huey tasks."""

import tutti.converse.conversations.jobs  # noqa: F401,E402 - deliveries to channels, follow-ups
