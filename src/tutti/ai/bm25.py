"""A small BM25 index over tutti.ai.text tokens, plus character bigrams of Chinese text.

jieba does not always cut a question and a stored phrasing the same way (退貨運費 vs 退貨 運費), so Han
runs also contribute their character bigrams: a word cut differently still shares its bigrams. Scores
are computed with numpy over posting arrays, so a query over tens of thousands of documents takes a
millisecond or two.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from tutti.ai.text import has_han, tokens


def terms(text: str) -> list[str]:
    words = tokens(text)
    out = list(words)
    for word in words:
        if len(word) > 2 and has_han(word):
            out.extend("#" + word[i : i + 2] for i in range(len(word) - 1))
    return out


class BM25:
    def __init__(self, documents: list[str], *, k1: float = 1.2, b: float = 0.75):
        self.size = len(documents)
        self.k1, self.b = k1, b
        postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        lengths = np.zeros(self.size, dtype=np.float32)
        for doc, text in enumerate(documents):
            counts = Counter(terms(text))
            lengths[doc] = sum(counts.values())
            for term, count in counts.items():
                postings[term].append((doc, count))
        average = float(lengths.mean()) if self.size else 1.0
        self._norm = k1 * (1 - b + b * lengths / max(average, 1e-6))
        self._postings: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for term, rows in postings.items():
            docs = np.fromiter((d for d, _ in rows), dtype=np.int32, count=len(rows))
            tfs = np.fromiter((c for _, c in rows), dtype=np.float32, count=len(rows))
            idf = math.log(1 + (self.size - len(rows) + 0.5) / (len(rows) + 0.5))
            self._postings[term] = (docs, tfs, idf)

    def postings(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """term → (documents using it, its count in each, IDF)."""
        return self._postings

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for `query` (zeros where nothing is shared)."""
        out = np.zeros(self.size, dtype=np.float32)
        for term in set(terms(query)):
            found = self._postings.get(term)
            if found is None:
                continue
            docs, tfs, idf = found
            out[docs] += idf * tfs * (self.k1 + 1) / (tfs + self._norm[docs])
        return out

    def self_score(self, query: str) -> float:
        """The score `query` would get against itself as a document: normalises scores to 0..1."""
        total = 0.0
        for term, count in Counter(terms(query)).items():
            found = self._postings.get(term)
            idf = found[2] if found else math.log(1 + (self.size + 0.5) / 0.5)
            total += idf * (self.k1 + 1) * count / (count + self.k1)
        return total
