"""Tables of the knowledge base: FAQ items with several phrasings, articles split into passages, the
per-workspace version that invalidates in-memory indexes, and the questions the agent could not answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutti.platform.db import Base, BigId, Json, UTCDateTime, utcnow

# out_of_scope: an item whose phrasings are questions to hand off, never answered (see calibration.py)
KINDS = ("faq", "article", "out_of_scope")
LANGUAGES = ("zh-TW", "en", "both")
GAP_STATUSES = ("open", "added", "dismissed")


class KnowledgeItem(Base):
    """One answer: an FAQ entry (answered by `answer`) or an article (Markdown, split into passages)."""

    __tablename__ = "knowledge_item"
    __table_args__ = (UniqueConstraint("workspace_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))  # the id in imported files, e.g. "ship-001"
    kind: Mapped[str] = mapped_column(String(16), default="faq")
    title: Mapped[str] = mapped_column(String(300), default="")
    answer: Mapped[str] = mapped_column(Text, default="")  # Markdown
    language: Mapped[str] = mapped_column(String(16), default="both")  # zh-TW, en or both
    topic: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list] = mapped_column(Json, default=list)
    team: Mapped[str | None] = mapped_column(String(100))  # who takes a hand-off about this item
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class KnowledgePhrasing(Base):
    """One way of asking for an item. The vector is stored with the key of the text and model it was
    made from, so indexes load without embedding again and a changed text is embedded anew."""

    __tablename__ = "knowledge_phrasing"
    __table_args__ = (Index("ix_knowledge_phrasing_workspace", "workspace_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("knowledge_item.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    embedding_key: Mapped[str | None] = mapped_column(String(40))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class KnowledgePassage(Base):
    """A piece of an article (a heading's section or a paragraph), searched like a phrasing."""

    __tablename__ = "knowledge_passage"
    __table_args__ = (Index("ix_knowledge_passage_workspace", "workspace_id", "item_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(BigId, ForeignKey("knowledge_item.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    heading: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    embedding_key: Mapped[str | None] = mapped_column(String(40))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)


class KnowledgeCalibrationQuestion(Base):
    """A real question with the item that answers it (None: none does, the agent should hand off), kept
    to calibrate the workspace's confidence: never searched, never learnt from by the classifier
    (questions.py, calibration.fit)."""

    __tablename__ = "knowledge_calibration_question"
    __table_args__ = (Index("ix_knowledge_calibration_question_workspace", "workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    # the item deleted: its questions go too (whether another item answers them is not known)
    item_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("knowledge_item.id", ondelete="CASCADE"))
    embedding_key: Mapped[str | None] = mapped_column(String(40))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KnowledgeVersion(Base):
    """Bumped by every change to a workspace's knowledge; in-memory indexes rebuild when it moves."""

    __tablename__ = "knowledge_version"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, default=0)
    # random, set when the row is created: a cached index is never mistaken for one of another database
    # (or of a recreated workspace) that happens to reach the same version number
    token: Mapped[str] = mapped_column(String(32), default="")
    # the workspace's own confidence calibration (calibration.Calibration as JSON), fitted by the knowledge
    # job after each change, and the version it was fitted at: too slow to fit while a customer waits
    calibration: Mapped[dict | None] = mapped_column(Json)
    calibrated_version: Mapped[int | None] = mapped_column(Integer)


class KnowledgeGap(Base):
    """A question the agent handed off for low confidence: the raw material of the gaps report."""

    __tablename__ = "knowledge_gap"
    __table_args__ = (Index("ix_knowledge_gap_workspace", "workspace_id", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    best_item_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("knowledge_item.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contact.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default="open")
    added_item_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("knowledge_item.id", ondelete="SET NULL")
    )
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
