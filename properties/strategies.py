"""Hypothesis strategies for every item's inputs, in one place.

Values are float64 and O(1): big enough that a wrong gradient is visibly wrong, small enough that
float64 round-off stays far below every tolerance. Where a function has a kink (ReLU at 0) the
strategies keep a margin of ``KINK_MARGIN`` from it, far larger than the finite-difference step.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume, strategies as st
from hypothesis.extra import numpy as hnp

#: smallest distance from a kink (ReLU at 0, a tie in a max): 1000x the finite-difference step
KINK_MARGIN = 1e-3

batches = st.integers(1, 4)
features = st.integers(1, 5)
classes = st.integers(2, 5)
seeds = st.integers(0, 2**32 - 1)


def values(lo: float = -3.0, hi: float = 3.0, margin: float | None = None) -> st.SearchStrategy[float]:
    """Floats in [lo, hi]; with ``margin``, at least that far from zero. No subnormals: a
    reproduction reads 0.0, not -9.4e-285 (nothing here is about denormal arithmetic)."""
    if margin is None:
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return st.one_of(st.floats(margin, hi), st.floats(lo, -margin))


def array(shape: tuple[int, ...] | st.SearchStrategy, lo: float = -3.0, hi: float = 3.0,
          margin: float | None = None) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, shape, elements=values(lo, hi, margin))


@st.composite
def batch_shape(draw, batch: int | None = None, rank: int = 2, features_: int | None = None) -> tuple[int, ...]:
    """(N, D) or, for rank > 2, (N, d1, d2, ...) with a small feature block."""
    n = batch if batch is not None else draw(batches)
    if rank == 2:
        return (n, features_ if features_ is not None else draw(features))
    return (n, *draw(st.lists(st.integers(1, 3), min_size=rank - 1, max_size=rank - 1)))


@st.composite
def labels(draw, n: int, c: int, form: str | None = None) -> np.ndarray:
    """Correct labels for a batch of ``n`` with ``c`` classes, one-hot (float) or indices (int)."""
    idx = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), dtype=np.int64)
    form = form or draw(st.sampled_from(["one-hot", "index"]))
    return np.eye(c)[idx] if form == "one-hot" else idx


def logits(shape: tuple[int, ...], offset: float = 0.0) -> st.SearchStrategy[np.ndarray]:
    """Logits spread over [-2, 2] around ``offset``: every softmax probability >= e^-4 / 5 > 3e-3,
    so the book's ``delta = 1e-7`` in the log moves the loss by less than 1e-7 / 3e-3 < 4e-5."""
    return array(shape, -2.0, 2.0).map(lambda a: a + offset)


def draw_case(draw, **fields: Any) -> dict[str, Any]:
    """Draw every strategy in ``fields``; plain values pass through."""
    return {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in fields.items()}


__all__ = [
    "KINK_MARGIN", "array", "assume", "batch_shape", "batches", "classes", "draw_case", "features",
    "labels", "logits", "seeds", "values",
]
