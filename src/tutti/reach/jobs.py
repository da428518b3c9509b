"""Background work of reach: importing this module registers its huey tasks."""

import tutti.reach.campaigns.jobs  # noqa: F401
import tutti.reach.segments.jobs  # noqa: F401
import tutti.reach.tracking.jobs  # noqa: F401
