"""Embeddings: the bundled e5 (real), a remote OpenAI-compatible endpoint (the fake server), the disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from tutti.ai import embeddings
from tutti.ai.embeddings import DiskCache, EmbeddingError, embed, from_bytes, text_key, to_bytes
from tutti.platform.config import Settings


def test_local_e5_is_multilingual_and_normalised():
    vectors = embed(["How much is shipping?", "運費多少錢？", "我的貓喜歡睡覺"], kind="query")
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # cross-lingual: same question is closer
    assert np.allclose(from_bytes(to_bytes(vectors[0])), vectors[0], atol=1e-3)


def test_remote_endpoint_with_e5_prefix(fake_openai):
    settings = Settings(
        embeddings_base_url=fake_openai.url,
        embeddings_model="intfloat/multilingual-e5-small",
        llm_api_key="sk-emb",
    )
    vectors = embed(["a", "b"], kind="passage", settings=settings)
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1)
    request = fake_openai.requests[-1]
    assert request["body"]["input"] == ["passage: a", "passage: b"]
    assert request["headers"]["Authorization"] == "Bearer sk-emb"
    fake_openai.fail_embeddings(500)
    with pytest.raises(EmbeddingError):
        embed(["c"], settings=settings)


def test_disk_cache_embeds_each_text_once(tmp_path, monkeypatch):
    calls = []

    def fake_compute(items, kind, settings=None):
        calls.append(list(items))
        return np.eye(384, dtype=np.float32)[: len(items)]

    monkeypatch.setattr(embeddings, "_compute", fake_compute)
    cache = DiskCache(tmp_path / "v.sqlite")
    first = cache.embed(["x", "y", "x"], kind="query")
    again = cache.embed(["y", "x"], kind="query")
    assert calls == [sorted(["x", "y"], key=lambda t: text_key(t, "query"))]
    assert np.array_equal(first[0], first[2]) and np.array_equal(again[1], first[0])
    assert text_key("x", "query") != text_key("x", "passage")
