"""The in-memory search index of one workspace's knowledge, cached per workspace and rebuilt when the
workspace's knowledge version moves.

It holds: the vectors of every phrasing and passage (loaded from the database, embedded only when
missing), a BM25 index over phrasings, passages and titles, a softmax classifier trained on the rows (one
class per item), and the workspace's own calibration (see calibration.py). `features(question)` returns,
per item, the best cosine (kNN), the best normalised BM25 score and the classifier's probability;
tutti.converse.knowledge.matching turns them into a decision.

Vectors are compared after removing their language's mean vector. A multilingual encoder puts every
sentence of one language near a common centre, so an English question sits closer to unrelated English
text than to the Chinese phrasing that means the same; subtracting the per-language centroid (Libovický et
al., 2020, "On the language neutrality of pre-trained multilingual representations") took the right item
first for 52% of cross-lingual validation questions instead of 13% (kNN), 74% instead of 57% (classifier).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutti.ai import bm25, classifier, embeddings
from tutti.ai.text import has_han
from tutti.converse.knowledge import calibration
from tutti.converse.knowledge.models import (
    KnowledgeCalibrationQuestion,
    KnowledgeItem,
    KnowledgePassage,
    KnowledgePhrasing,
)
from tutti.converse.knowledge.service import (
    ensure_embeddings,
    store_calibration,
    stored_calibration,
    version_key,
)

# Above this many items or rows the classifier is not trained (its training time grows with
# items × rows); matching then uses the fused kNN + BM25 score alone.
CLASSIFIER_MAX_ITEMS = 1500
CLASSIFIER_MAX_ROWS = 60_000
OUT_OF_SCOPE = "out_of_scope"  # the kind of an item whose phrasings are questions to hand off
OUT_OF_SCOPE_WEIGHT = 1.0  # the out-of-scope class weighs as much as this many items


@dataclass
class ItemInfo:
    id: int
    external_id: str
    kind: str
    title: str
    answer: str
    team: str | None
    topic: str | None


@dataclass
class Rows:
    """What an index is built from: one row per phrasing or passage."""

    vectors: np.ndarray  # (rows, d) unit vectors as embedded
    item: np.ndarray  # (rows,) item position of each row
    text: list[str]
    is_phrasing: np.ndarray  # (rows,) bool

    def subset(self, keep: np.ndarray) -> Rows:
        return Rows(self.vectors[keep], self.item[keep], [t for t, k in zip(self.text, keep) if k],
                    self.is_phrasing[keep])


@dataclass
class Index:
    workspace_id: int
    version: tuple
    items: list[ItemInfo]
    vectors: np.ndarray  # (rows, d) centred unit vectors, phrasings and passages
    row_item: np.ndarray
    row_text: list[str]
    row_is_phrasing: np.ndarray
    centres: dict[bool, np.ndarray]  # has Han characters → the mean vector of that language
    bm25: bm25.BM25 | None
    bm25_item: np.ndarray  # item position of each BM25 document
    model: classifier.SoftmaxClassifier | None
    model_items: np.ndarray  # item position of each classifier class
    calibration: calibration.Calibration = field(default_factory=lambda: calibration.DEFAULT)
    # the stored calibration was fitted on other signals (before an upgrade): DEFAULT serves until the
    # knowledge job refits it at the same knowledge version, which the version key does not show
    calibration_outdated: bool = False
    negatives: Rows | None = None  # out-of-scope examples (shipped and the workspace's), centred
    # (items, 2): whether the item has a row without / with Han characters, i.e. in English / in Chinese
    item_language: np.ndarray = field(default_factory=lambda: np.ones((0, 2), dtype=bool))
    # term → (item positions whose phrasings, passages or title use it, its IDF over items): what the
    # items' own words cover of a question (calibration._uncovered)
    item_terms: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    built_seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    def features(self, question: str, vector: np.ndarray | None = None) -> dict:
        n = len(self.items)
        if vector is None:
            vector = embeddings.embed([question], kind="query")[0]
        centred = centre(vector[None, :], [question], self.centres)[0]
        cosine = np.full(n, -1.0, dtype=np.float32)  # best phrasing
        passage = np.full(n, -1.0, dtype=np.float32)  # best passage (an FAQ's answer, an article's section)
        best_row = np.full(n, -1, dtype=np.int64)
        if len(self.row_item):
            sims = self.vectors @ centred
            # per-item maxima in one pass each (no sorting: this runs for every question)
            phrasing = self.row_is_phrasing
            np.maximum.at(cosine, self.row_item[phrasing], sims[phrasing])
            np.maximum.at(passage, self.row_item[~phrasing], sims[~phrasing])
            best = np.maximum(cosine, passage)
            # the best row of each item: a row whose similarity equals its item's maximum
            hits = np.flatnonzero(sims >= best[self.row_item])
            best_row[self.row_item[hits]] = hits
        lexical = np.zeros(n, dtype=np.float32)
        if self.bm25 is not None:
            raw = self.bm25.scores(question)
            top = self.bm25.self_score(question)
            if top > 0:
                np.maximum.at(lexical, self.bm25_item, raw / top)
        probability = np.zeros(n, dtype=np.float32)
        if self.model is not None:
            # the last class, when there are negatives, is "out of scope": its share is no item's
            probability[self.model_items] = self.model.proba(centred)[0][:len(self.model_items)]
        # the nearest out-of-scope example: a question closer to one of those than to any item is not ours
        negative = float((self.negatives.vectors @ centred).max()) if self.negatives and self.negatives.text else -1.0
        uncovered, uncovered_most, length = self._coverage(question, n)
        # an item none of whose rows is in the question's language is a cross-lingual match: its
        # probability and cosine run lower, which the calibration learns from cross-lingual examples
        same_language = (self.item_language[:, int(has_han(question))] if len(self.item_language)
                         else np.ones(n, dtype=bool))
        return {
            "negative": negative,
            "same_language": same_language,
            "cosine": cosine,
            "passage": passage,
            "lexical": np.clip(lexical, 0, 1),
            "probability": probability,
            "uncovered": uncovered,
            "uncovered_most": uncovered_most,
            "length": length,
            "best_row": best_row,
            "vector": vector,
        }

    def _coverage(self, question: str, n: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Per item: the IDF-weighted share of the question's terms that none of the item's texts uses,
        and the largest such IDF as a share of the largest possible (a term no item uses); and the
        question's length (log of 1 + its terms: a long message with context matches every item less
        closely, right or wrong)."""
        found_terms = bm25.terms(question)
        unseen = _idf(len(self.items), 0)
        weights = {word: self.item_terms.get(word, (None, unseen))[1] for word in set(found_terms)}
        total = sum(weights.values())
        uncovered = np.zeros(n, dtype=np.float32)
        most = np.zeros(n, dtype=np.float32)
        if total > 0:
            covered = np.zeros(n, dtype=np.float32)
            for word, weight in weights.items():
                found = self.item_terms.get(word)
                if found is not None:
                    covered[found[0]] += weight
            uncovered = 1 - covered / total
            # the rarest uncovered term of each item: rarest terms first, each item takes the first it lacks
            settled = np.zeros(n, dtype=bool)
            for word, weight in sorted(weights.items(), key=lambda pair: -pair[1]):
                lacking = ~settled
                found = self.item_terms.get(word)
                if found is not None:
                    lacking[found[0]] = False
                most[lacking] = weight / unseen
                settled |= lacking
                if settled.all():
                    break
        return uncovered, most, float(np.log1p(len(found_terms)))


def centre(vectors: np.ndarray, texts: list[str], centres: dict[bool, np.ndarray]) -> np.ndarray:
    """`vectors` less their language's mean, as unit vectors (see the module's docstring)."""
    if not centres:
        return vectors
    han = _han(texts)
    out = vectors - np.where(han[:, None], centres[True], centres[False])
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-9)).astype(np.float32)


def _idf(items: int, found_in: int) -> float:
    return float(np.log(1 + (items - found_in + 0.5) / (found_in + 0.5)))


def item_terms(lexical: bm25.BM25 | None, document_item: np.ndarray, items: int) -> dict[str, tuple[np.ndarray, float]]:
    """term → (the items whose documents use it, its IDF over items), from the BM25 index's postings."""
    if lexical is None:
        return {}
    out = {}
    for term, (documents, _, _) in lexical.postings().items():
        found = np.unique(document_item[documents])
        out[term] = (found, _idf(items, len(found)))
    return out


def language_centres(vectors: np.ndarray, texts: list[str]) -> dict[bool, np.ndarray]:
    han = _han(texts)
    if han.all() or not han.any():
        return {}
    return {True: vectors[han].mean(axis=0), False: vectors[~han].mean(axis=0)}


_cache: dict[tuple, Index] = {}
_lock = threading.Lock()


def get_index(db: Session, *, workspace_id: int) -> Index:
    """The workspace's index, rebuilt when its knowledge changed since it was built."""
    current = version_key(db, workspace_id=workspace_id)
    # keyed by database too: tests and evaluations open several databases whose workspace ids coincide
    key = (str(db.get_bind().engine.url), workspace_id)
    cached = _cache.get(key)
    if cached is not None and cached.version == current and not cached.calibration_outdated:
        return cached
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == current and not cached.calibration_outdated:
            return cached
        if cached is not None and cached.version[:2] == current[:2]:
            # the same knowledge with a newly fitted calibration: no need to train the classifier again
            fitted, outdated = _stored(db, workspace_id)
            index = replace(cached, version=current, calibration=fitted, calibration_outdated=outdated)
        else:
            index = build(db, workspace_id=workspace_id, at_version=current)
        _cache[key] = index
        return index


def forget(workspace_id: int | None = None) -> None:
    with _lock:
        for key in [k for k in _cache if workspace_id is None or k[1] == workspace_id]:
            del _cache[key]


def build(db: Session, *, workspace_id: int, at_version: tuple) -> Index:
    """The index of the workspace's knowledge, with its last fitted calibration (DEFAULT before the
    first fit; fitting is the knowledge job's work: see calibrate)."""
    started = time.perf_counter()
    if ensure_embeddings(db, workspace_id=workspace_id, questions=False):
        db.flush()
    items, rows, negatives = load(db, workspace_id=workspace_id)
    negative_texts = list(calibration.shipped_negatives()) + negatives.text
    negative_vectors = np.vstack([shipped_negative_vectors(), negatives.vectors])
    centres = language_centres(np.vstack([rows.vectors, negative_vectors]), rows.text + negative_texts)
    negatives = Rows(centre(negative_vectors, negative_texts, centres), np.full(len(negative_texts), -1),
                     negative_texts, np.ones(len(negative_texts), dtype=bool))
    index = assemble(workspace_id, at_version, items, rows, centres, negatives=negatives)
    index.calibration, index.calibration_outdated = _stored(db, workspace_id)
    index.built_seconds = time.perf_counter() - started
    return index


def _stored(db: Session, workspace_id: int) -> tuple[calibration.Calibration, bool]:
    """The stored calibration (DEFAULT when there is none), and whether one is stored that was fitted on
    other signals."""
    stored, fitted_at = stored_calibration(db, workspace_id=workspace_id)
    fitted = calibration.from_json(stored, fitted_at=fitted_at)
    return fitted or calibration.DEFAULT, stored is not None and fitted is None


def calibrate(db: Session, *, workspace_id: int) -> calibration.Calibration:
    """Fit the workspace's calibration on its current knowledge and store it; indexes pick it up when they
    next look at the version. Seconds of work for a few hundred items: run by the knowledge job."""
    index = get_index(db, workspace_id=workspace_id)
    fitted = fit_calibration_of(index, questions=calibration_questions(db, index))
    store_calibration(db, workspace_id=workspace_id, calibration=fitted.as_json(), at_version=index.version[0])
    return fitted


def calibration_questions(db: Session, index: Index) -> list[tuple[str, np.ndarray, int]]:
    """The workspace's calibration questions (questions.py) as (text, vector, expected item position),
    -1 where the agent should hand off: no item answers it, or its item is disabled."""
    position = {item.id: i for i, item in enumerate(index.items)}
    rows = db.execute(
        select(KnowledgeCalibrationQuestion.text, KnowledgeCalibrationQuestion.item_id,
               KnowledgeCalibrationQuestion.embedding)
        .where(KnowledgeCalibrationQuestion.workspace_id == index.workspace_id,
               KnowledgeCalibrationQuestion.embedding.is_not(None))
        .order_by(KnowledgeCalibrationQuestion.id)
    ).all()
    return [(text, embeddings.from_bytes(blob), position.get(item_id, -1)) for text, item_id, blob in rows]


def load(db: Session, *, workspace_id: int) -> tuple[list[ItemInfo], Rows, Rows]:
    """The enabled items, their rows, and the rows of out-of-scope items (examples to hand off)."""
    items_rows = db.execute(
        select(
            KnowledgeItem.id,
            KnowledgeItem.external_id,
            KnowledgeItem.kind,
            KnowledgeItem.title,
            KnowledgeItem.answer,
            KnowledgeItem.team,
            KnowledgeItem.topic,
        )
        .where(KnowledgeItem.workspace_id == workspace_id, KnowledgeItem.enabled.is_(True))
        .order_by(KnowledgeItem.id)
    ).all()
    infos = [ItemInfo(*row) for row in items_rows]
    items = [i for i in infos if i.kind != OUT_OF_SCOPE]
    position = {item.id: i for i, item in enumerate(items)}
    negative_ids = {i.id for i in infos if i.kind == OUT_OF_SCOPE}
    found: list[tuple[str, int, bytes, bool]] = []
    negatives: list[tuple[str, bytes]] = []
    for table, phrasing in ((KnowledgePhrasing, True), (KnowledgePassage, False)):
        query = (
            select(table.item_id, table.text, table.embedding)
            .where(table.workspace_id == workspace_id)
            .order_by(table.item_id, table.position)
        )
        for item_id, text, blob in db.execute(query):
            if blob is None:
                continue
            if item_id in position:
                found.append((text, position[item_id], blob, phrasing))
            elif item_id in negative_ids and phrasing:
                negatives.append((text, blob))
    rows = Rows(
        vectors=_stack([b for _, _, b, _ in found]),
        item=np.asarray([p for _, p, _, _ in found], dtype=np.int64),
        text=[t for t, _, _, _ in found],
        is_phrasing=np.asarray([f for _, _, _, f in found], dtype=bool),
    )
    negative_rows = Rows(
        vectors=_stack([b for _, b in negatives]),
        item=np.full(len(negatives), -1, dtype=np.int64),
        text=[t for t, _ in negatives],
        is_phrasing=np.ones(len(negatives), dtype=bool),
    )
    return items, rows, negative_rows


def _stack(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, embeddings.DIMENSION), dtype=np.float32)
    return np.vstack([embeddings.from_bytes(b) for b in blobs])


_negatives: dict[str, np.ndarray] = {}


def shipped_negative_vectors() -> np.ndarray:
    """The shipped out-of-scope questions, embedded once per process and embedding model."""
    model = embeddings.model_id()
    if model not in _negatives:
        _negatives[model] = embeddings.embed(list(calibration.shipped_negatives()), kind="query")
    return _negatives[model]


def assemble(workspace_id: int, version: tuple, items: list[ItemInfo], rows: Rows,
             centres: dict[bool, np.ndarray], *, negatives: Rows | None = None, classify: bool = True) -> Index:
    """An index over `rows` (no calibration fitted: the caller decides); without a classifier when
    `classify` is false. `negatives` (centred) are the out-of-scope examples: compared with each question,
    and one more class of the classifier."""
    vectors = centre(rows.vectors, rows.text, centres) if len(rows.text) else rows.vectors
    documents = rows.text + [item.title for item in items]
    document_item = np.concatenate([rows.item, np.arange(len(items), dtype=np.int64)])
    lexical = bm25.BM25(documents) if documents else None
    model, model_items = _train(vectors, rows.item, len(items), negatives) if classify else (None, np.zeros(0, np.int64))
    item_language = np.zeros((len(items), 2), dtype=bool)
    if len(rows.text):
        item_language[rows.item, _han(rows.text).astype(np.int64)] = True
    return Index(
        workspace_id=workspace_id,
        version=version,
        items=items,
        vectors=vectors,
        row_item=rows.item,
        row_text=rows.text,
        row_is_phrasing=rows.is_phrasing,
        centres=centres,
        bm25=lexical,
        bm25_item=document_item,
        model=model,
        model_items=model_items,
        negatives=negatives,
        item_language=item_language,
        item_terms=item_terms(lexical, document_item, len(items)),
        stats={"items": len(items), "rows": len(rows.text), "classifier": model is not None},
    )


def fit_calibration_of(index: Index, *, classify: bool = True,
                       questions: list[tuple[str, np.ndarray, int]] | None = None) -> calibration.Calibration:
    """The calibration of `index`, fitted on calibration_examples and the workspace's calibration
    questions (calibration_questions), each asked of the whole index. `classify=False` fits the
    calibration of an index without a classifier (calibration.DEFAULT is one)."""
    examples, items_with_phrasings = calibration_examples(index, classify=classify)
    return calibration.fit(examples, items_with_phrasings, questions=_ask(index, questions or []))


def calibration_examples(index: Index, *, classify: bool = True) -> tuple[list, int]:
    """k-fold over the index's phrasings, its negatives asked of each fold's model (see calibration.py):
    (signals, right, in scope) per example, and how many items have phrasings to leave out. The index's
    vectors are already centred, so the fold indexes centre nothing again."""
    rows = Rows(index.vectors, index.row_item, index.row_text, index.row_is_phrasing)
    negatives = index.negatives or Rows(np.zeros((0, embeddings.DIMENSION), np.float32), np.zeros(0, np.int64), [],
                                        np.zeros(0, bool))
    fold = calibration.folds_of(rows.item, rows.is_phrasing)
    items_with_phrasings = len(np.unique(rows.item[fold >= 0]))
    if items_with_phrasings < calibration.MIN_ITEMS:
        return [], items_with_phrasings
    negative_fold = np.arange(len(negatives.text)) % calibration.FOLDS
    examples = []
    for k in range(calibration.FOLDS):
        held = fold == k
        # a negative is never compared with itself, nor learnt from by the model that is asked it
        part = assemble(index.workspace_id, index.version, index.items, rows.subset(~held), {},
                        negatives=negatives.subset(negative_fold != k), classify=classify)
        asked = [(rows.text[r], rows.vectors[r], int(rows.item[r])) for r in np.flatnonzero(held)]
        asked += [(negatives.text[j], negatives.vectors[j], -1) for j in np.flatnonzero(negative_fold == k)]
        examples += _ask(part, asked)
    examples += _cross_lingual_examples(index, rows, negatives, classify=classify)
    return examples, items_with_phrasings


def _cross_lingual_examples(index: Index, rows: Rows, negatives: Rows, *, classify: bool) -> list:
    """Questions in a language the item is not written in (an English question about a zh-TW-only item).
    Every item with phrasings in both languages is, once per language, stripped of its phrasings in that
    language and of its passages (an answer written in both would give the other language away), so it
    looks written in the other language only, and is asked the stripped phrasings. Without these the
    calibration sees no cross-lingual match and hands nearly all of them off."""
    han = _han(rows.text)
    phrasing = rows.is_phrasing
    written = np.zeros((len(index.items), 2), dtype=bool)
    written[rows.item[phrasing], han[phrasing].astype(np.int64)] = True
    bilingual = written.all(axis=1)[rows.item]
    examples = []
    for language in (False, True):
        held = phrasing & bilingual & (han == language)
        if not held.any():
            continue
        part = assemble(index.workspace_id, index.version, index.items,
                        rows.subset(~(held | (~phrasing & bilingual))), {}, negatives=negatives, classify=classify)
        examples += _ask(part, [(rows.text[r], rows.vectors[r], int(rows.item[r])) for r in np.flatnonzero(held)])
    return examples


def _ask(part: Index, asked: list[tuple[str, np.ndarray, int]]) -> list:
    """(signals, right, in scope) of each (text, vector, expected item position or -1 for out of scope)
    asked of the index `part`."""
    from tutti.converse.knowledge.matching import item_scores

    examples = []
    for text, vector, expected in asked:
        features = part.features(text, vector)
        scores = item_scores(features, has_model=part.model is not None)
        best = int(np.argmax(scores))
        examples.append((calibration.signals(features, scores, best), best == expected, expected >= 0))
    return examples


def _han(texts: list[str]) -> np.ndarray:
    return np.fromiter((has_han(t) for t in texts), dtype=bool, count=len(texts))


def _train(vectors: np.ndarray, row_item: np.ndarray, n_items: int, negatives: Rows | None = None):
    """The classifier over every row (phrasings and passages), one class per item, plus one class of the
    out-of-scope examples when there are any (so a question like them takes probability from every item);
    None when there are too few classes to learn from or too many to train quickly. A handful of classes is
    too few: a softmax over four items gives an unrelated question 0.9 for one of them, so small knowledge
    bases are matched and calibrated on similarity alone."""
    classes = np.unique(row_item) if len(row_item) else np.zeros(0, dtype=np.int64)
    if len(classes) < calibration.MIN_ITEMS or len(classes) > CLASSIFIER_MAX_ITEMS or len(row_item) > CLASSIFIER_MAX_ROWS:
        return None, np.zeros(0, dtype=np.int64)
    label_of = np.full(n_items, -1, dtype=np.int64)
    label_of[classes] = np.arange(len(classes))
    labels = label_of[row_item]
    counts = np.bincount(labels, minlength=len(classes)).astype(np.float32)
    weights = 1.0 / counts[labels]  # every item weighs the same however many phrasings it has
    n_classes = len(classes)
    if negatives is not None and len(negatives.text):
        vectors = np.vstack([vectors, negatives.vectors])
        labels = np.concatenate([labels, np.full(len(negatives.text), n_classes, dtype=np.int64)])
        weights = np.concatenate([weights, np.full(len(negatives.text), OUT_OF_SCOPE_WEIGHT / len(negatives.text), np.float32)])
        n_classes += 1
    model = classifier.train(vectors, labels, n_classes, weights=weights, scale=10.0, steps=400)
    return model, classes.astype(np.int64)
