"""Multinomial logistic regression over sentence embeddings, in numpy.

Trained on the stored phrasings of each knowledge item (one class per item), it learns which directions
of the embedding space separate the items instead of trusting raw nearest-neighbour similarity, and
gives a probability per item. Full-batch gradient descent with Adam and L2 regularisation; embeddings are
unit vectors, so no feature scaling is needed. A temperature (fitted by `fit_temperature` on held-out
data) calibrates the probabilities.
"""

from __future__ import annotations

import numpy as np


class SoftmaxClassifier:
    def __init__(self, weights: np.ndarray, bias: np.ndarray, temperature: float = 1.0):
        self.weights = weights.astype(np.float32)  # (d, classes)
        self.bias = bias.astype(np.float32)
        self.temperature = temperature

    @property
    def classes(self) -> int:
        return self.weights.shape[1]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.atleast_2d(x) @ self.weights + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x) / self.temperature)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(
    x: np.ndarray,
    y: np.ndarray,
    classes: int,
    *,
    scale: float = 20.0,
    l2: float = 1e-4,
    steps: int = 200,
    rate: float = 0.05,
    weights: np.ndarray | None = None,
) -> SoftmaxClassifier:
    """Fit on rows `x` (unit vectors) with labels `y` in 0..classes-1. `scale` multiplies the inputs:
    cosine-sized features need large weights, and scaling keeps the step size sensible. `weights` gives
    an optional per-row weight (e.g. to balance classes)."""
    x = np.asarray(x, dtype=np.float32) * scale
    n, d = x.shape
    onehot = np.zeros((n, classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    row_w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    row_w = row_w / row_w.sum()
    w = np.zeros((d, classes), dtype=np.float32)
    b = np.zeros(classes, dtype=np.float32)
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b, v_b = np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        p = softmax(x @ w + b)
        g = (p - onehot) * row_w[:, None]
        grad_w = x.T @ g + l2 * w
        grad_b = g.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * grad_w
        v_w = beta2 * v_w + (1 - beta2) * grad_w * grad_w
        m_b = beta1 * m_b + (1 - beta1) * grad_b
        v_b = beta2 * v_b + (1 - beta2) * grad_b * grad_b
        correction1, correction2 = 1 - beta1**step, 1 - beta2**step
        w -= rate * (m_w / correction1) / (np.sqrt(v_w / correction2) + eps)
        b -= rate * (m_b / correction1) / (np.sqrt(v_b / correction2) + eps)
    return SoftmaxClassifier(w * scale, b)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out labels (grid search:
    one parameter, robust, fast)."""
    best, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(10), 60)):
        p = softmax(logits / t)
        nll = -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best
