"""The tables of reach: importing this module registers all of them (migrations and tests rely on it)."""

import tutti.reach.campaigns.models  # noqa: F401
import tutti.reach.segments.models  # noqa: F401
import tutti.reach.templates.models  # noqa: F401
import tutti.reach.tracking.models  # noqa: F401
