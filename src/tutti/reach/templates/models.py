"""The table of message templates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

TEMPLATE_CHANNELS = ("line", "email", "sms")


class Template(Base):
    """A reusable message for one channel. `content` is the channel's payload with Jinja2 in its text:
    LINE {"messages": [...]}, e-mail {"subject", "html", "text"}, SMS {"text"}."""

    __tablename__ = "template"
    __table_args__ = (Index("ix_template_workspace_name", "workspace_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(8))
    content: Mapped[dict] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
