"""Each workspace's own confidence calibration and answer threshold, fitted on its own knowledge by the
knowledge job after every change (index.calibrate) and stored with the knowledge version it was fitted at.

A confidence is only honest for the knowledge base it was measured on: a threshold chosen on one brand's
FAQ answered 80% of CLINC150's questions correctly and 38% of the demo brand's. So every workspace fits
its own:

- In-scope examples: its phrasings, k-fold. Each fold's phrasings are left out, a model is trained on the
  rest, and the left-out phrasings are asked — a phrasing the model never saw is the closest stand-in for a
  customer's new wording that the knowledge base itself holds.
- Cross-lingual examples: each item written in both languages, stripped of one language, is asked its
  phrasings in that language (index._cross_lingual_examples) — an English question about a zh-TW-only
  item scores lower than a same-language one, and the calibration has to see such matches to judge them.
- Out-of-scope examples: the workspace's own (items of kind `out_of_scope`) and a shipped bilingual list
  of questions no brand answers (data/out_of_scope.txt), asked of the same fold models.
- A logistic regression of "the top item is right" on a few signals of the decision (the classifier's
  probability and lead, the best cosine and its lead, whether kNN agrees, the lexical score, and how much
  closer the question is to the item than to the nearest out-of-scope example, and whether the item is
  written in the question's language, and how close the best item of the other language comes; how much of
  the question the item's own words never say, the question's length, whether BM25 agrees), then the
  threshold that answers the most in-scope examples rightly and hands off the most out-of-scope ones
  (these weighing HAND_OFF_VALUE), while answering at most MAX_WRONG of the in-scope examples wrongly.
- Calibration questions, when the workspace has them (questions.py): real questions with their right item
  (or none), asked of the whole index. Left-out phrasings were written with the knowledge base and are
  answered with more confidence than customers' questions; real ones weigh QUESTION_WEIGHT examples each
  in the regression and, with enough of them, choose both thresholds (choose_thresholds).
- Two operating points: one threshold for matches written in the question's language, chosen on those
  examples, and one of its own for cross-lingual matches, chosen on those (budget
  MAX_WRONG_OTHER_LANGUAGE). One threshold for both let the many same-language examples set it, and a
  cross-lingual answer was wrong several times as often as a same-language one at the same confidence.

A knowledge base too small to learn from (fewer than MIN_ITEMS items with two or more phrasings) has no
classifier (index._train) and uses DEFAULT: fitted the same way on the demo brand's knowledge base with
the classifier left out, so on similarity alone (evals/knowledge.py --tune prints it).
Every decision records which calibration it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

SIGNALS = ("probability", "probability_lead", "cosine", "cosine_lead", "knn_agrees", "lexical", "negative_lead",
           "other_language", "language_rival", "uncovered", "uncovered_most", "length", "lexical_agrees")
FOLDS = 4
MIN_ITEMS = 12
# Without calibration questions: the share of left-out phrasings the same-language threshold may answer
# with the wrong item, and the share of cross-lingual examples the cross-lingual threshold may — the pair
# that answers the most of the demo brand's validation questions (data/calibration_questions.jsonl, 1,076
# in scope) rightly while answering at most 1% of them wrongly, half of the 2% allowed
# (`python evals/knowledge.py --tune` prints each pair; 7 Dec, out-of-scope hand-offs weighing 1/3:
# 2.5% and 5% → 78.6% right, 0.9% wrong, 88.4% handed off; the earlier 2% and 12% → 78.2%, 0.5%, 87.4%)
# — the test set was not used.
MAX_WRONG = 0.025
MAX_WRONG_OTHER_LANGUAGE = 0.05
# Calibration questions (a workspace's own questions with their right item, see fit): each weighs as
# much as this many k-fold examples, and with at least MIN_QUESTIONS in scope they choose the thresholds,
# answering at most MAX_WRONG_QUESTIONS of them wrongly. Chosen by 5-fold cross-validation on the demo
# brand's 1,378 validation questions (evals/knowledge.py --cross-validate prints it; with HAND_OFF_VALUE
# 1/3 weight 100 and a 1.5% cap: 84.2% right, 1.8% wrong, 90.6% handed off — weight 50 handed off 89.7%).
QUESTION_WEIGHT = 100.0
MIN_QUESTIONS = 100
MAX_WRONG_QUESTIONS = 0.015
# What handing off the out-of-scope questions is worth against answering the in-scope ones rightly, both as
# shares of their kind, when a threshold is chosen. Per customer message a right answer gains 1, a missed
# hand-off (an out-of-scope question answered) costs as much, a hand-off neither; with a quarter of the
# messages out of scope, the value per message is proportional to right + (1/4 ÷ 3/4) × handed off. An equal
# weight assumed half the messages out of scope and held CLINC150 at 91% in scope / 92% out-of-scope
# recall; 1/3 gives 94.3% / 86% (1/2 the same). The demo brand's k-fold thresholds are bound by MAX_WRONG,
# not by this weight, and do not move.
HAND_OFF_VALUE = 1 / 3
# Fewer cross-lingual in-scope examples than this: no threshold of their own, the same-language one judges them
MIN_OTHER_LANGUAGE_EXAMPLES = 20
OTHER_LANGUAGE = SIGNALS.index("other_language")
NEGATIVES = Path(__file__).parent / "data" / "out_of_scope.txt"


@dataclass
class Calibration:
    weights: list[float]
    bias: float
    threshold: float
    source: str  # "fitted" on this workspace's knowledge, or "default"
    stats: dict = field(default_factory=dict)
    threshold_other_language: float | None = None  # for cross-lingual matches; None: `threshold`

    def confidence(self, signals: np.ndarray) -> float:
        z = float(np.dot(self.weights, signals)) + self.bias
        return 1 / (1 + math.exp(-max(min(z, 50.0), -50.0)))

    def cross_lingual(self, signals: np.ndarray) -> bool:
        """Whether a match with these signals is judged by the cross-lingual threshold."""
        return self.threshold_other_language is not None and signals[OTHER_LANGUAGE] > 0.5

    def threshold_for(self, signals: np.ndarray) -> float:
        return self.threshold_of(cross_lingual=signals[OTHER_LANGUAGE] > 0.5)

    def threshold_of(self, *, cross_lingual: bool) -> float:
        """The threshold of a match that is (or is not) cross-lingual."""
        if cross_lingual and self.threshold_other_language is not None:
            return self.threshold_other_language
        return self.threshold

    def as_json(self) -> dict:
        return {"signals": list(SIGNALS), "weights": self.weights, "bias": self.bias,
                "threshold": self.threshold, "threshold_other_language": self.threshold_other_language,
                "stats": self.stats, "default": self.source == "default"}


def from_json(data: dict | None, *, fitted_at: int | None) -> Calibration | None:
    """A stored calibration, or None when there is none or it was fitted on other signals."""
    if not data or data.get("signals") != list(SIGNALS):
        return None
    return Calibration(weights=list(data["weights"]), bias=float(data["bias"]),
                       threshold=float(data["threshold"]),
                       threshold_other_language=(None if data.get("threshold_other_language") is None
                                                 else float(data["threshold_other_language"])),
                       source="default" if data.get("default") else f"fitted at knowledge version {fitted_at}",
                       stats=dict(data.get("stats") or {}))


# Fitted by fit() on the demo brand's knowledge base (171 items, 829 phrasings) and the shipped negatives,
# without a classifier: `python evals/knowledge.py --tune` prints it. Its other_language and language_rival
# weights are 0: it was fitted before those signals, so it judges cross-lingual matches as it always did.
DEFAULT = Calibration(
    weights=[0.0, 0.0, 0.4848, 6.9766, -0.48, 1.1798, 1.6255, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], bias=-1.4436,
    threshold=0.6544, source="default"
)


def signals(features: dict, scores: np.ndarray, best: int) -> np.ndarray:
    """The decision's signals, in SIGNALS order, for the item at position `best`."""
    probability, cosine = features["probability"], np.maximum(features["cosine"], features["passage"])
    return np.array(
        [
            probability[best],
            probability[best] - _runner_up(probability, best),
            cosine[best],
            cosine[best] - _runner_up(cosine, best),
            float(int(np.argmax(cosine)) == best),
            features["lexical"][best],
            cosine[best] - features.get("negative", -1.0),
            0.0 if features.get("same_language") is None else float(not features["same_language"][best]),
            _language_rival(features.get("same_language"), cosine, best),
            *_uncovered(features, best),
            features.get("length", 0.0),
            float(features["lexical"][best] > 0 and int(np.argmax(features["lexical"])) == best),
        ],
        dtype=np.float64,
    )


def _uncovered(features: dict, best: int) -> tuple[float, float]:
    """How much of the question the item's own words never say: the IDF-weighted share of the question's
    terms found in none of the item's phrasings, passages and title, and the rarest such term's IDF (as a
    share of the largest possible). An out-of-scope question next to a covered topic usually names
    something no answer mentions (PayPal, 學生, a brand the shop does not sell) that the embedding blurs.
    Zero for a cross-lingual match, whose words are in the other language by definition."""
    same_language = features.get("same_language")
    if "uncovered" not in features or (same_language is not None and not same_language[best]):
        return 0.0, 0.0
    return float(features["uncovered"][best]), float(features["uncovered_most"][best])


def _language_rival(same_language: np.ndarray | None, cosine: np.ndarray, best: int) -> float:
    """How close the best item of the other language group comes to the top item (cosine difference; -1:
    no such item). Items not written in the question's language score lower on every signal, so a wrong
    same-language item often beats the right item written in the other language by a little: a rival
    close behind in the other group is a reason for doubt that no same-language runner-up shows."""
    if same_language is None:
        return -1.0
    rivals = cosine[same_language != same_language[best]]
    return float(rivals.max() - cosine[best]) if len(rivals) else -1.0


def _runner_up(values: np.ndarray, best: int) -> float:
    if len(values) < 2:
        return 0.0
    keep = values[best]
    values[best] = -np.inf
    second = float(values.max())
    values[best] = keep
    return second


@lru_cache(maxsize=1)
def shipped_negatives() -> tuple[str, ...]:
    lines = NEGATIVES.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def folds_of(row_item: np.ndarray, is_phrasing: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """The fold of each row (-1: always trained on). Phrasings of an item take folds in turn, so every fold
    leaves each item at least one phrasing to learn from; items with one phrasing are never left out."""
    fold = np.full(len(row_item), -1, dtype=np.int64)
    seen: dict[int, int] = {}
    counts = np.bincount(row_item[is_phrasing], minlength=int(row_item.max(initial=0)) + 1)
    for row in np.flatnonzero(is_phrasing):
        item = int(row_item[row])
        if counts[item] < 2:
            continue
        k = seen.get(item, item % folds)  # items start at different folds so folds stay balanced
        fold[row] = k % folds
        seen[item] = k + 1
    return fold


def fit(examples: list[tuple[np.ndarray, bool, bool]], items_with_phrasings: int,
        max_wrong: float | None = None, max_wrong_other_language: float | None = None,
        one_threshold: bool = False, questions: list[tuple[np.ndarray, bool, bool]] | None = None) -> Calibration:
    """examples: (signals, top item is right, question is in scope), from the k-fold. `questions`: the same
    of the workspace's calibration questions (real questions with their right item, asked of the whole
    index). Too few items or examples to learn from (fewer than MIN_ITEMS items with phrasings to leave
    out): DEFAULT.

    One logistic regression over all examples, each calibration question weighing QUESTION_WEIGHT k-fold
    examples. With at least MIN_QUESTIONS in-scope calibration questions the two thresholds are chosen on
    them (choose_thresholds, at most MAX_WRONG_QUESTIONS answered wrongly); otherwise a threshold for
    same-language matches and, with enough cross-lingual examples, one for cross-lingual matches, each
    chosen on its own k-fold examples (`one_threshold`: one for all — evals/knowledge.py --tune prints it
    for comparison)."""
    questions = questions or []
    positives = sum(1 for _, _, in_scope in examples if in_scope)
    if items_with_phrasings < MIN_ITEMS or positives < 2 * MIN_ITEMS:
        return DEFAULT
    x = np.vstack([s for s, _, _ in examples + questions])
    right = np.array([r for _, r, _ in examples + questions])
    in_scope = np.array([i for _, _, i in examples + questions])
    weight = np.r_[np.ones(len(examples)), np.full(len(questions), QUESTION_WEIGHT)]
    weights, bias = _logistic(x, right.astype(np.float64), weight)
    # rounded as stored, and the thresholds chosen on the confidences the stored calibration will give
    weights, bias = np.round(weights, 4), round(float(bias), 4)
    z = np.clip(x @ weights + bias, -50, 50)
    confidence = 1 / (1 + np.exp(-z))
    other = x[:, OTHER_LANGUAGE] > 0.5
    asked = np.arange(len(x)) >= len(examples)
    stats = {"in_scope_examples": int(in_scope[~asked].sum()), "out_of_scope_examples": int((~in_scope[~asked]).sum()),
             "calibration_questions": int(asked.sum())}
    if int(in_scope[asked].sum()) >= MIN_QUESTIONS:
        threshold, threshold_other, figures = choose_thresholds(
            confidence[asked], right[asked], in_scope[asked], other[asked], MAX_WRONG_QUESTIONS)
        stats.update({"thresholds_from": "calibration questions",
                      **{f"questions_{k}": v for k, v in figures.items()}})
    else:
        if one_threshold or int((other & in_scope & ~asked).sum()) < MIN_OTHER_LANGUAGE_EXAMPLES:
            other[:] = False
        same, cross = ~other & ~asked, other & ~asked
        threshold, figures = choose_threshold(confidence[same], right[same], in_scope[same], max_wrong)
        threshold_other = None
        stats.update({"thresholds_from": "k-fold", **figures})
        if cross.any():
            budget = MAX_WRONG_OTHER_LANGUAGE if max_wrong_other_language is None else max_wrong_other_language
            threshold_other, found = choose_threshold(confidence[cross], right[cross], in_scope[cross], budget)
            stats.update({"other_language_in_scope_examples": int((cross & in_scope).sum()),
                          **{f"other_language_{k}": v for k, v in found.items()}})
    return Calibration(
        weights=[float(w) for w in weights],
        bias=bias,
        threshold=threshold,
        threshold_other_language=threshold_other,
        source="fitted",
        stats=stats,
    )


def _logistic(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None,
              l2: float = 1e-2) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton's method (a handful of features, a few thousand rows)."""
    n, d = x.shape
    weight = np.ones(n) if weight is None else weight
    a = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -50, 50)))
        gradient = a.T @ ((p - y) * weight) + penalty * w
        hessian = (a * (p * (1 - p) * weight)[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def _value(answered_right, handed_off):
    """What a threshold is worth: the share of in-scope questions answered rightly plus HAND_OFF_VALUE times
    the share of out-of-scope ones handed off (scalars or arrays) — the one objective both choosers use."""
    return answered_right + HAND_OFF_VALUE * handed_off


def choose_threshold(
    confidence: np.ndarray, right: np.ndarray, in_scope: np.ndarray, max_wrong: float | None = None
) -> tuple[float, dict]:
    """The threshold maximising (in-scope answered right) + HAND_OFF_VALUE × (out-of-scope handed off), shares of each,
    with in-scope answered wrongly at most `max_wrong` (MAX_WRONG unless given)."""
    max_wrong = MAX_WRONG if max_wrong is None else max_wrong
    n_in, n_out = max(int(in_scope.sum()), 1), max(int((~in_scope).sum()), 1)
    order = np.argsort(-confidence)
    c, r, i = confidence[order], right[order], in_scope[order]
    # answering everything at or above c[k], for each k
    right_answers = np.cumsum(r & i) / n_in
    wrong_answers = np.cumsum(~r & i) / n_in
    oos_handed_off = 1 - np.cumsum(~i) / n_out
    value = _value(right_answers, oos_handed_off)
    value[wrong_answers > max_wrong] = -1
    # a threshold must sit between distinct confidences
    last_of_tie = np.r_[c[1:] < c[:-1], True]
    value[~last_of_tie] = -1
    k = int(np.argmax(value))
    if value[k] < 0:
        return 1.0, {"answered_right": 0.0, "answered_wrong": 0.0, "out_of_scope_handed_off": 1.0}
    return float(c[k]), {
        "answered_right": round(float(right_answers[k]), 4),
        "answered_wrong": round(float(wrong_answers[k]), 4),
        "out_of_scope_handed_off": round(float(oos_handed_off[k]), 4),
    }


def choose_thresholds(confidence: np.ndarray, right: np.ndarray, in_scope: np.ndarray, cross_lingual: np.ndarray,
                      max_wrong: float) -> tuple[float, float | None, dict]:
    """The pair of thresholds (same-language matches, cross-lingual matches) maximising (in-scope answered
    right) + HAND_OFF_VALUE × (out-of-scope handed off), shares of each, with at most `max_wrong` of the in-scope questions
    answered wrongly in all — chosen together, so the wrong answers allowed go where they buy the most
    right ones. Fewer than MIN_OTHER_LANGUAGE_EXAMPLES cross-lingual in-scope questions: one threshold."""
    if int((cross_lingual & in_scope).sum()) < MIN_OTHER_LANGUAGE_EXAMPLES:
        threshold, figures = choose_threshold(confidence, right, in_scope, max_wrong)
        return threshold, None, figures
    n_in, n_out = max(int(in_scope.sum()), 1), max(int((~in_scope).sum()), 1)
    same = ~cross_lingual
    order = np.argsort(-confidence[same])
    c, r, i = confidence[same][order], right[same][order], in_scope[same][order]
    # answering every same-language match at or above c[k], for each k; and answering none of them
    right_same = np.r_[0, np.cumsum(r & i)]
    wrong_same = np.r_[0, np.cumsum(~r & i)]
    oos_same = np.r_[0, np.cumsum(~i)]
    cuts = np.r_[1.0, c]
    valid = np.r_[True, c[1:] < c[:-1], True]  # a threshold sits between distinct confidences
    cross = cross_lingual
    best = None
    for t_other in np.r_[1.0, np.unique(confidence[cross])]:
        answered = cross & (confidence >= t_other)
        right_cross = int((answered & right & in_scope).sum())
        wrong_cross = int((answered & ~right & in_scope).sum())
        oos_cross = int((answered & ~in_scope).sum())
        wrong = (wrong_same + wrong_cross) / n_in
        value = _value((right_same + right_cross) / n_in, 1 - (oos_same + oos_cross) / n_out)
        value = np.where(valid & (wrong <= max_wrong), value, -1.0)
        k = int(np.argmax(value))
        if value[k] >= 0 and (best is None or value[k] > best[0]):
            best = (float(value[k]), float(cuts[k]), float(t_other), k, right_cross, wrong_cross, oos_cross)
    if best is None:
        return 1.0, 1.0, {"answered_right": 0.0, "answered_wrong": 0.0, "out_of_scope_handed_off": 1.0}
    _, threshold, threshold_other, k, right_cross, wrong_cross, oos_cross = best
    return threshold, threshold_other, {
        "answered_right": round((int(right_same[k]) + right_cross) / n_in, 4),
        "answered_wrong": round((int(wrong_same[k]) + wrong_cross) / n_in, 4),
        "out_of_scope_handed_off": round(1 - (int(oos_same[k]) + oos_cross) / n_out, 4),
    }
