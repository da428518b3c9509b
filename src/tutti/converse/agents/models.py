"""The agent's per-workspace configuration: hand-off keywords and rules, thresholds, privacy of prompts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, Json, UTCDateTime, utcnow


class AgentConfig(Base):
    """One row per workspace; a missing row means the defaults (see agents.config.DEFAULTS)."""

    __tablename__ = "agent_config"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True)
    settings: Mapped[dict] = mapped_column(Json, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
