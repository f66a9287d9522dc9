"""Activation and loss functions of ch. 3-4, written to be safe on any float64 input."""
from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax of a 1-D vector, or of each row of a 2-D batch."""
    z = x - np.max(x, axis=-1, keepdims=True)  # shift by the max: exp never overflows
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """Mean over the batch of -log y[t]; ``t`` one-hot or label indices; 1-D or batched."""
    t = np.asarray(t)
    if y.ndim == 1:  # one example: treat it as a batch of one
        y, t = y.reshape(1, -1), t.reshape(1, -1)
    t = t.argmax(axis=1) if t.size == y.size else t.reshape(-1)  # one-hot -> label indices
    batch_size = y.shape[0]
    delta = 1e-7  # the book's guard against log(0)
    return float(-np.sum(np.log(y[np.arange(batch_size), t] + delta)) / batch_size)
