"""The knowledge base: items, their phrasings and passages, import/export, and `match`.

Every change bumps the workspace's knowledge version in the same transaction, so the in-memory index of
that workspace (tutti.converse.knowledge.index) is rebuilt on the next question. Vectors are computed by
`ensure_embeddings` (after an import, by the CLI or a background job; otherwise lazily by the first
question) and stored on the rows, keyed by the text and model they came from.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from tutti.ai import embeddings
from tutti.converse.knowledge import files
from tutti.converse.knowledge.files import Record
from tutti.converse.knowledge.models import (
    KINDS,
    LANGUAGES,
    KnowledgeCalibrationQuestion,
    KnowledgeItem,
    KnowledgePassage,
    KnowledgePhrasing,
    KnowledgeVersion,
)
from tutti.platform import audit
from tutti.platform.audit import Actor
from tutti.platform.db import utcnow
from tutti.platform.errors import Conflict, InvalidInput, NotFound
from tutti.platform.sql import insert_ignore

MAX_PHRASINGS = 200
MAX_ANSWER = 20_000


def version(db: Session, *, workspace_id: int) -> int:
    return (
        db.scalar(select(KnowledgeVersion.version).where(KnowledgeVersion.workspace_id == workspace_id)) or 0
    )


def version_key(db: Session, *, workspace_id: int) -> tuple[int, str, int | None]:
    """(version, token, calibrated version): changes whenever the workspace's knowledge changes, and when a
    calibration of it has been fitted."""
    row = db.execute(
        select(KnowledgeVersion.version, KnowledgeVersion.token, KnowledgeVersion.calibrated_version).where(
            KnowledgeVersion.workspace_id == workspace_id
        )
    ).first()
    return (row[0], row[1], row[2]) if row else (0, "", None)


def stored_calibration(db: Session, *, workspace_id: int) -> tuple[dict | None, int | None]:
    """The workspace's last fitted calibration (JSON) and the knowledge version it was fitted at."""
    row = db.execute(
        select(KnowledgeVersion.calibration, KnowledgeVersion.calibrated_version).where(
            KnowledgeVersion.workspace_id == workspace_id
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


def store_calibration(db: Session, *, workspace_id: int, calibration: dict, at_version: int) -> None:
    db.execute(
        update(KnowledgeVersion)
        .where(KnowledgeVersion.workspace_id == workspace_id)
        .values(calibration=calibration, calibrated_version=at_version)
    )


def bump_version(db: Session, *, workspace_id: int) -> None:
    first = {"workspace_id": workspace_id, "version": 0, "token": secrets.token_hex(8)}
    insert_ignore(db, KnowledgeVersion, [first], conflict=("workspace_id",))
    db.execute(
        update(KnowledgeVersion)
        .where(KnowledgeVersion.workspace_id == workspace_id)
        .values(version=KnowledgeVersion.version + 1)
    )


# --- reading ---------------------------------------------------------------------------------------------


def get_item(db: Session, *, workspace_id: int, item_id: int) -> KnowledgeItem:
    item = db.get(KnowledgeItem, item_id)
    if item is None or item.workspace_id != workspace_id:
        raise NotFound(f"no knowledge item {item_id} in this workspace")
    return item


def phrasings_of(db: Session, *, workspace_id: int, item_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in item_ids}
    if not item_ids:
        return out
    rows = db.execute(
        select(KnowledgePhrasing.item_id, KnowledgePhrasing.text)
        .where(KnowledgePhrasing.workspace_id == workspace_id, KnowledgePhrasing.item_id.in_(item_ids))
        .order_by(KnowledgePhrasing.item_id, KnowledgePhrasing.position, KnowledgePhrasing.id)
    )
    for item_id, text in rows:
        out[item_id].append(text)
    return out


def as_dict(item: KnowledgeItem, phrasings: list[str]) -> dict:
    return {
        "id": item.id,
        "external_id": item.external_id,
        "kind": item.kind,
        "title": item.title,
        "answer": item.answer,
        "language": item.language,
        "topic": item.topic,
        "tags": list(item.tags or []),
        "team": item.team,
        "enabled": item.enabled,
        "phrasings": phrasings,
        "updated_at": item.updated_at.isoformat() if item.updated_at else None,
    }


def list_items(
    db: Session,
    *,
    workspace_id: int,
    search: str | None = None,
    topic: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """Items (as dicts with their phrasings), filtered by a text search over title, answer, id and
    phrasings, and the total matching."""
    query = select(KnowledgeItem).where(KnowledgeItem.workspace_id == workspace_id)
    if topic:
        query = query.where(KnowledgeItem.topic == topic)
    if kind:
        query = query.where(KnowledgeItem.kind == kind)
    if search and search.strip():
        pattern = f"%{search.strip().lower()}%"
        in_phrasings = select(KnowledgePhrasing.item_id).where(
            KnowledgePhrasing.workspace_id == workspace_id, func.lower(KnowledgePhrasing.text).like(pattern)
        )
        query = query.where(
            or_(
                func.lower(KnowledgeItem.title).like(pattern),
                func.lower(KnowledgeItem.answer).like(pattern),
                func.lower(KnowledgeItem.external_id).like(pattern),
                KnowledgeItem.id.in_(in_phrasings),
            )
        )
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.scalars(query.order_by(KnowledgeItem.external_id).limit(limit).offset(offset)))
    phrasings = phrasings_of(db, workspace_id=workspace_id, item_ids=[i.id for i in items])
    return [as_dict(item, phrasings[item.id]) for item in items], total


def topics(db: Session, *, workspace_id: int) -> list[str]:
    rows = db.scalars(
        select(KnowledgeItem.topic)
        .where(KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.topic.is_not(None))
        .distinct()
    )
    return sorted(rows)


# --- writing ---------------------------------------------------------------------------------------------


def _check(record: Record) -> Record:
    if record.kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    if record.language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    if not record.answer.strip() and record.kind != "out_of_scope":
        raise InvalidInput("the answer is empty", field="answer")
    if len(record.answer) > MAX_ANSWER:
        raise InvalidInput(f"the answer is longer than {MAX_ANSWER} characters", field="answer")
    phrasings = list(dict.fromkeys(p.strip() for p in record.phrasings if p and p.strip()))
    if len(phrasings) > MAX_PHRASINGS:
        raise InvalidInput(f"at most {MAX_PHRASINGS} phrasings per item", field="phrasings")
    if record.kind in ("faq", "out_of_scope") and not phrasings:
        raise InvalidInput(f"an {'FAQ' if record.kind == 'faq' else 'out-of-scope'} item needs at least one question",
                           field="phrasings")
    record.phrasings = phrasings
    record.title = (record.title or (phrasings[0] if phrasings else record.external_id)).strip()[:300]
    return record


def _write_children(db: Session, *, workspace_id: int, item: KnowledgeItem, record: Record) -> None:
    db.execute(delete(KnowledgePhrasing).where(KnowledgePhrasing.item_id == item.id))
    db.execute(delete(KnowledgePassage).where(KnowledgePassage.item_id == item.id))
    db.add_all(
        KnowledgePhrasing(
            workspace_id=workspace_id,
            item_id=item.id,
            position=i,
            text=text,
            language=files.guess_language([text]),
        )
        for i, text in enumerate(record.phrasings)
    )
    db.add_all(
        KnowledgePassage(workspace_id=workspace_id, item_id=item.id, position=i, heading=h[:300], text=t)
        for i, (h, t) in enumerate(passages_of(record))
    )


def passages_of(record: Record) -> list[tuple[str, str]]:
    """What is searched besides the phrasings: an article's sections, or an FAQ item's answer (a question
    often shares its facts with the answer rather than with any stored phrasing)."""
    if record.kind == "article":
        return files.split_passages(record.answer, record.title)
    return [(record.title, record.answer)]


def _apply(item: KnowledgeItem, record: Record) -> None:
    item.kind, item.title, item.answer = record.kind, record.title, record.answer
    item.language, item.topic, item.team = record.language, record.topic, record.team
    item.tags = list(record.tags)
    item.updated_at = utcnow()


def create_item(
    db: Session,
    *,
    workspace_id: int,
    actor: Actor,
    external_id: str | None = None,
    answer: str,
    phrasings: list[str] = (),
    title: str = "",
    kind: str = "faq",
    language: str | None = None,
    topic: str | None = None,
    team: str | None = None,
    tags: list[str] = (),
    enabled: bool = True,
) -> KnowledgeItem:
    external_id = (external_id or "").strip() or _next_id(db, workspace_id=workspace_id)
    if not files._ID.match(external_id):
        raise InvalidInput("the id may use letters, digits and - _ . : / (at most 200)", field="external_id")
    exists = db.scalar(
        select(KnowledgeItem.id).where(
            KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.external_id == external_id
        )
    )
    if exists:
        raise Conflict(f"a knowledge item with id '{external_id}' exists", field="external_id")
    record = _check(
        Record(
            external_id=external_id,
            answer=answer or "",
            title=title or "",
            kind=kind,
            language=language or files.guess_language(list(phrasings) or [answer or ""]),
            topic=topic or None,
            team=team or None,
            tags=list(tags),
            phrasings=list(phrasings),
        )
    )
    item = KnowledgeItem(workspace_id=workspace_id, external_id=external_id, enabled=enabled)
    _apply(item, record)
    db.add(item)
    db.flush()
    _write_children(db, workspace_id=workspace_id, item=item, record=record)
    bump_version(db, workspace_id=workspace_id)
    audit.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="knowledge.create",
        target_kind="knowledge_item",
        target_id=item.id,
        detail={"external_id": external_id},
    )
    return item


def _next_id(db: Session, *, workspace_id: int) -> str:
    count = db.scalar(select(func.count()).where(KnowledgeItem.workspace_id == workspace_id)) or 0
    while True:
        count += 1
        candidate = f"faq-{count:04d}"
        if not db.scalar(
            select(KnowledgeItem.id).where(
                KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.external_id == candidate
            )
        ):
            return candidate


_FIELDS = ("answer", "title", "kind", "language", "topic", "team", "tags", "phrasings", "enabled")


def update_item(
    db: Session, *, workspace_id: int, actor: Actor, item_id: int, changes: dict
) -> KnowledgeItem:
    """Change the given fields (any of answer, title, kind, language, topic, team, tags, phrasings,
    enabled)."""
    item = get_item(db, workspace_id=workspace_id, item_id=item_id)
    unknown = sorted(set(changes) - set(_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field '{unknown[0]}'", field=unknown[0])
    current = phrasings_of(db, workspace_id=workspace_id, item_ids=[item.id])[item.id]
    record = Record(
        external_id=item.external_id,
        answer=changes.get("answer", item.answer),
        title=changes.get("title", item.title),
        kind=changes.get("kind", item.kind),
        language=changes.get("language", item.language),
        topic=changes.get("topic", item.topic),
        team=changes.get("team", item.team),
        tags=list(changes.get("tags", item.tags) or []),
        phrasings=list(changes.get("phrasings", current) or []),
    )
    record = _check(record)
    _apply(item, record)
    if "enabled" in changes:
        item.enabled = bool(changes["enabled"])
    if record.phrasings != current or "answer" in changes or "kind" in changes or "title" in changes:
        _write_children(db, workspace_id=workspace_id, item=item, record=record)
    bump_version(db, workspace_id=workspace_id)
    audit.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="knowledge.update",
        target_kind="knowledge_item",
        target_id=item.id,
        detail={"fields": sorted(changes)},
    )
    return item


def delete_item(db: Session, *, workspace_id: int, actor: Actor, item_id: int) -> None:
    item = get_item(db, workspace_id=workspace_id, item_id=item_id)
    db.execute(delete(KnowledgePhrasing).where(KnowledgePhrasing.item_id == item.id))
    db.execute(delete(KnowledgePassage).where(KnowledgePassage.item_id == item.id))
    db.delete(item)
    bump_version(db, workspace_id=workspace_id)
    audit.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="knowledge.delete",
        target_kind="knowledge_item",
        target_id=item_id,
        detail={"external_id": item.external_id},
    )


def import_file(
    db: Session, *, workspace_id: int, actor: Actor, filename: str, data: bytes | str, replace: bool = False
) -> dict:
    """Import a CSV/JSONL/Markdown file: all or nothing (any problem → InvalidInput listing the rows).
    Items with a known id are updated, new ids created; `replace` also deletes items not in the file."""
    records = files.parse(filename, data)
    return import_records(
        db, workspace_id=workspace_id, actor=actor, records=records, replace=replace, source=filename
    )


def import_records(
    db: Session,
    *,
    workspace_id: int,
    actor: Actor,
    records: list[Record],
    replace: bool = False,
    source: str = "api",
) -> dict:
    problems = []
    for record in records:
        try:
            _check(record)
        except InvalidInput as error:
            problems.append({"row": record.row, "field": error.field, "message": error.message})
    if problems:
        raise InvalidInput(
            f"{len(problems)} problem(s): row {problems[0]['row']}: {problems[0]['message']}",
            field="file",
            details=problems[:50],
        )
    existing = dict(
        db.execute(
            select(KnowledgeItem.external_id, KnowledgeItem.id).where(
                KnowledgeItem.workspace_id == workspace_id
            )
        ).all()
    )
    created = updated = 0
    items: list[tuple[KnowledgeItem, Record]] = []
    for record in records:
        if record.external_id in existing:
            item = db.get(KnowledgeItem, existing[record.external_id])
            updated += 1
        else:
            item = KnowledgeItem(workspace_id=workspace_id, external_id=record.external_id, enabled=True)
            db.add(item)
            created += 1
        _apply(item, record)
        items.append((item, record))
    db.flush()
    touched = [item.id for item, _ in items]
    # set-based: drop the children of every touched item, then insert all phrasings/passages in batches
    for start in range(0, len(touched), 500):
        part = touched[start : start + 500]
        db.execute(delete(KnowledgePhrasing).where(KnowledgePhrasing.item_id.in_(part)))
        db.execute(delete(KnowledgePassage).where(KnowledgePassage.item_id.in_(part)))
    phrasing_rows, passage_rows = [], []
    for item, record in items:
        phrasing_rows.extend(
            {
                "workspace_id": workspace_id,
                "item_id": item.id,
                "position": i,
                "text": text,
                "language": files.guess_language([text]),
            }
            for i, text in enumerate(record.phrasings)
        )
        passage_rows.extend(
            {"workspace_id": workspace_id, "item_id": item.id, "position": i, "heading": h[:300], "text": t}
            for i, (h, t) in enumerate(passages_of(record))
        )
    for rows, model in ((phrasing_rows, KnowledgePhrasing), (passage_rows, KnowledgePassage)):
        for start in range(0, len(rows), 1000):
            db.execute(model.__table__.insert(), rows[start : start + 1000])
    deleted = 0
    if replace:
        keep = {record.external_id for record in records}
        gone = [item_id for external_id, item_id in existing.items() if external_id not in keep]
        for start in range(0, len(gone), 500):
            part = gone[start : start + 500]
            db.execute(delete(KnowledgePhrasing).where(KnowledgePhrasing.item_id.in_(part)))
            db.execute(delete(KnowledgePassage).where(KnowledgePassage.item_id.in_(part)))
            db.execute(delete(KnowledgeItem).where(KnowledgeItem.id.in_(part)))
        deleted = len(gone)
    bump_version(db, workspace_id=workspace_id)
    summary = {
        "created": created,
        "updated": updated,
        "deleted": deleted,
        "phrasings": len(phrasing_rows),
        "passages": len(passage_rows),
    }
    audit.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="knowledge.import",
        target_kind="knowledge",
        detail={"source": source[:200], **summary},
    )
    return summary


def export(db: Session, *, workspace_id: int, format: str) -> str:
    items, _ = list_items(db, workspace_id=workspace_id, limit=1_000_000)
    if format == "jsonl":
        return files.export_jsonl(items)
    if format == "csv":
        return files.export_csv(items)
    if format in ("md", "markdown"):
        return files.export_markdown([i for i in items if i["kind"] == "article"])
    raise InvalidInput("format must be csv, jsonl or markdown", field="format")


# --- vectors ---------------------------------------------------------------------------------------------


def ensure_embeddings(db: Session, *, workspace_id: int, batch: int = 256, questions: bool = True) -> int:
    """Embed every phrasing, passage and (unless `questions` is false: an index needs none) calibration
    question whose stored vector is missing or was made from another text or model. Returns how many were
    embedded. Phrasings are questions, so they are embedded as queries."""
    model = embeddings.model_id()
    done = 0
    tables = [(KnowledgePhrasing, "query"), (KnowledgePassage, "passage")]
    for table, kind in tables + ([(KnowledgeCalibrationQuestion, "query")] if questions else []):
        rows = db.execute(
            select(table.id, table.text, table.embedding_key).where(table.workspace_id == workspace_id)
        ).all()
        stale = [
            (row_id, text, key) for row_id, text, key in rows if key != embeddings.text_key(text, kind, model)
        ]
        for start in range(0, len(stale), batch):
            part = stale[start : start + batch]
            vectors = embeddings.embed([text for _, text, _ in part], kind=kind)
            db.execute(
                update(table),
                [
                    {
                        "id": row_id,
                        "embedding_key": embeddings.text_key(text, kind, model),
                        "embedding": embeddings.to_bytes(vector),
                    }
                    for (row_id, text, _), vector in zip(part, vectors)
                ],
            )
            done += len(part)
    return done


def match(db: Session, *, workspace_id: int, question: str):
    """The best knowledge for `question` with a calibrated confidence (see matching.Match)."""
    from tutti.converse.knowledge import matching

    return matching.match(db, workspace_id=workspace_id, question=question)


def record_unanswered(
    db: Session,
    *,
    workspace_id: int,
    question: str,
    confidence: float = 0.0,
    best_item_id: int | None = None,
    reason: str | None = None,
    contact_id: int | None = None,
    conversation_id: int | None = None,
) -> None:
    """Note a question the agent handed off for low confidence (the gaps report clusters them)."""
    from tutti.converse.knowledge import gaps

    gaps.record(
        db,
        workspace_id=workspace_id,
        question=question,
        confidence=confidence,
        best_item_id=best_item_id,
        reason=reason,
        contact_id=contact_id,
        conversation_id=conversation_id,
    )
