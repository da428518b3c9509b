"""Benchmarks of Converse's AI agents, one JSON line per figure.

- Concurrency (helper "inbox"): `concurrent_widget_conversations()` — 200 widget visitors on loopback
  for a minute against a real `tutti serve`: messages/s, p95 latency from send to the bot's reply on the
  visitor's SSE stream, errors, lost messages (see bench/widget_concurrency.py).
- Decision latency (helper "knowledge"): `decision_latency()` — offline decisions with a 5,000-item
  knowledge base, p50/p95 (target p95 < 150 ms).

    .venv/bin/python bench/agent.py [--visitors 200] [--seconds 60] [--servers 1] [--skip-concurrency]
                                    [--items 5000] [--questions 300] [--skip-latency]

Decision latency: the demo brand's FAQ (src/tutti/converse/knowledge/data/faq.jsonl) is varied into N
items (each a copy of a demo item with its own id and numbered phrasings) and imported into a fresh SQLite
workspace through the import service. Embedding ~30k phrasings would take most of an hour on two shared
cores and measures nothing about decisions, so the stored vectors of the copies are the real e5 vectors of
the demo phrasings with a little noise (stored exactly as `ensure_embeddings` stores them). Questions (the
knowledge eval's validation questions) are then decided one at a time, each embedded live with e5 — the real
cost — through `tutti.converse.agents.router.decide` (offline, no contact) and through
`knowledge.service.match`. Prints p50/p95/max in ms and the one-off index build time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def concurrent_widget_conversations(*, visitors: int = 200, seconds: float = 60, servers: int = 1) -> dict:
    from widget_concurrency import concurrent_widget_conversations as run

    return run(visitors=visitors, seconds=seconds, servers=servers)


ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "src/tutti/converse/knowledge/data/faq.jsonl"
QUESTIONS = ROOT / "src/tutti/converse/knowledge/data/calibration_questions.jsonl"


def emit(**figure) -> None:
    print(json.dumps(figure, ensure_ascii=False), flush=True)


def _percentiles(samples: list[float]) -> dict:
    values = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "max_ms": round(float(values.max()), 1),
        "n": len(values),
    }


def decision_latency(items: int = 5000, questions: int = 300) -> None:
    from sqlalchemy import select, update

    from tutti.ai import embeddings
    from tutti.converse.agents.router import decide
    from tutti.converse.knowledge import index as kindex
    from tutti.converse.knowledge import service
    from tutti.converse.knowledge.files import Record
    from tutti.converse.knowledge.models import KnowledgePassage, KnowledgePhrasing
    from tutti.platform import migrate, workspaces
    from tutti.platform.audit import Actor
    from tutti.platform.db import Database

    base = [json.loads(line) for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    asked = [
        json.loads(line)["question"]
        for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    asked = (asked * (questions // max(len(asked), 1) + 1))[:questions]
    tmp = Path(tempfile.mkdtemp(prefix="tutti-bench-agent-"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(url)
    database = Database(url)
    with database.session() as db:
        workspace_id = workspaces.create_workspace(db, name="bench agent").id

    # the demo items varied into `items` records; remember which demo phrasing each copy comes from
    records, source_of = [], {}
    for n in range(items):
        row = base[n % len(base)]
        copy = n // len(base)
        suffix = "" if copy == 0 else f" ({copy})"
        phrasings = [q + suffix for q in row["questions"]]
        for original, text in zip(row["questions"], phrasings):
            source_of[text] = original
        source_of[row["answer"] + suffix] = row["answer"]
        records.append(
            Record(
                external_id=f"{row['id']}-{copy}",
                answer=row["answer"] + suffix,
                title=row.get("title", "") + suffix,
                language=row.get("language", "both"),
                topic=row.get("topic"),
                team=row.get("team"),
                phrasings=phrasings,
            )
        )
    started = time.perf_counter()
    with database.session() as db:
        service.import_records(db, workspace_id=workspace_id, actor=Actor.cli(), records=records)
    import_seconds = time.perf_counter() - started

    # real e5 vectors of the demo texts (cached on disk), copied with a little noise
    cache = (
        Path(os.environ.get("TUTTI_DATA_DIR", ROOT / "tutti-data")).resolve() / "cache" / "embeddings.sqlite"
    )
    embeddings.use_disk_cache(cache)
    model = embeddings.model_id()
    rng = np.random.default_rng(7)
    for table, kind in ((KnowledgePhrasing, "query"), (KnowledgePassage, "passage")):
        with database.session() as db:
            rows = db.execute(select(table.id, table.text).where(table.workspace_id == workspace_id)).all()
            originals = sorted({source_of.get(text, text) for _, text in rows})
            vectors = dict(zip(originals, embeddings.embed(originals, kind=kind)))
            updates = []
            for row_id, text in rows:
                vector = vectors[source_of.get(text, text)] + rng.normal(0, 0.01, embeddings.DIMENSION)
                vector = vector / np.linalg.norm(vector)
                updates.append(
                    {
                        "id": row_id,
                        "embedding_key": embeddings.text_key(text, kind, model),
                        "embedding": embeddings.to_bytes(vector),
                    }
                )
            for start in range(0, len(updates), 2000):
                db.execute(update(table), updates[start : start + 2000])
    embeddings.use_disk_cache(None)  # questions are embedded live: that is part of a decision's cost

    started = time.perf_counter()
    with database.session() as db:
        built = kindex.get_index(db, workspace_id=workspace_id)
    build_seconds = time.perf_counter() - started
    embeddings.embed(["warm-up"], kind="query")

    decide_times, match_times, actions = [], [], {}
    with database.read_session() as db:
        for question in asked:
            started = time.perf_counter()
            decision = decide(db, workspace_id=workspace_id, contact_id=None, text=question, use_llm=False)
            decide_times.append(time.perf_counter() - started)
            actions[decision.action] = actions.get(decision.action, 0) + 1
        for question in asked:
            started = time.perf_counter()
            service.match(db, workspace_id=workspace_id, question=question + " ?")  # not in the query cache
            match_times.append(time.perf_counter() - started)
    emit(
        figure="agent_decision_latency",
        items=items,
        rows=built.stats["rows"],
        classifier=built.stats["classifier"],
        **_percentiles(decide_times),
        target_p95_ms=150,
        actions=actions,
    )
    emit(figure="knowledge_match_latency", items=items, **_percentiles(match_times))
    emit(
        figure="knowledge_index_build",
        items=items,
        import_seconds=round(import_seconds, 2),
        build_seconds=round(build_seconds, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Converse agent benchmarks")
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--servers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--skip-concurrency", action="store_true")
    parser.add_argument("--items", type=int, default=5000, help="knowledge items for the decision latency")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if not args.skip_latency:
        decision_latency(items=args.items, questions=args.questions)
    if not args.skip_concurrency:
        concurrent_widget_conversations(visitors=args.visitors, seconds=args.seconds, servers=args.servers)


if __name__ == "__main__":
    main()
