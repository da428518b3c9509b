"""The widget's settings per workspace: its public key, the identity-verification secret, who may embed it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow


class WidgetConfig(Base):
    """One per workspace. `public_key` is printed in the page's script tag (not a secret); `secret` signs
    identities the shop vouches for (HMAC-SHA256 of the user id) and never leaves the server side."""

    __tablename__ = "widget_config"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), unique=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    # origins allowed to embed the widget (CORS), e.g. ["https://shop.example"]; [] = any origin
    allowed_origins: Mapped[list] = mapped_column(Json, default=list)
    color: Mapped[str] = mapped_column(String(16), default="#4f46e5")
    title: Mapped[dict] = mapped_column(Json, default=dict)  # {"zh-TW": "…", "en": "…"}
    greeting: Mapped[dict] = mapped_column(Json, default=dict)  # {"zh-TW": "…", "en": "…"}
    require_identity: Mapped[bool] = mapped_column(Boolean, default=False)  # refuse anonymous visitors
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
