"""The book's numerical gradient: central differences, one entry at a time, in place."""
from __future__ import annotations

from typing import Callable

import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """d f / d x by perturbing ``x`` in place (so ``f`` may ignore its argument, as the book's
    ``lambda W: net.loss(x, t)`` does), restoring every entry afterwards."""
    grad = np.zeros_like(x, dtype=float)
    for idx in np.ndindex(x.shape):
        saved = x[idx]
        x[idx] = saved + h
        f_plus = f(x)
        x[idx] = saved - h
        f_minus = f(x)
        x[idx] = saved
        grad[idx] = (f_plus - f_minus) / (2 * h)  # (f(x+h) - f(x-h)) / 2h
    return grad
