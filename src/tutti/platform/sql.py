"""Set-based writes that both SQLite and PostgreSQL understand (INSERT … ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(db: Session, model):
    dialect = db.get_bind().dialect.name
    table = model.__table__ if hasattr(model, "__table__") else model
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def insert_ignore(db: Session, model, rows: Sequence[dict], *, conflict: Sequence[str]) -> int:
    """Insert rows, skipping those that collide on `conflict`. Returns how many were inserted."""
    if not rows:
        return 0
    statement = _insert(db, model).on_conflict_do_nothing(index_elements=list(conflict))
    # counted through RETURNING: a driver's executemany rowcount is -1 on PostgreSQL
    statement = statement.returning(statement.table.c[conflict[0]])
    return len(db.execute(statement, list(rows)).all())


def upsert_rows(db: Session, model, rows: Sequence[dict], *, conflict: Sequence[str], update: Sequence[str]) -> None:
    """Insert rows, overwriting the `update` columns of those that collide on `conflict`."""
    if not rows:
        return
    statement = _insert(db, model)
    statement = statement.on_conflict_do_update(index_elements=list(conflict), set_={c: statement.excluded[c] for c in update})
    db.execute(statement, list(rows))
