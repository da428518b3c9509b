"""The audit log: who changed what. Services call `record` inside the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.platform.models import AuditLog


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, an API key, the CLI or the system itself."""

    kind: str  # user, api_key, cli, system
    id: int | None = None
    label: str = ""
    role: str = "owner"

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind="system", label=label)

    @classmethod
    def cli(cls) -> Actor:
        return cls(kind="cli", label="tutti cli")


def record(
    db: Session,
    *,
    workspace_id: int,
    actor: Actor,
    action: str,
    target_kind: str | None = None,
    target_id: object = None,
    detail: dict | None = None,
) -> None:
    db.add(
        AuditLog(
            workspace_id=workspace_id,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_label=actor.label,
            action=action,
            target_kind=target_kind,
            target_id=None if target_id is None else str(target_id),
            detail=detail or {},
        )
    )


def list_entries(db: Session, *, workspace_id: int, limit: int = 100, before_id: int | None = None) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.workspace_id == workspace_id)
    if before_id:
        query = query.where(AuditLog.id < before_id)
    return list(db.scalars(query.order_by(AuditLog.id.desc()).limit(limit)))
