"""Expected values: the JAX reference through ``jax.vjp``, jitted and cached.

``jax.jit`` traces once per item and input signature (shape and dtype) and is then a cached call
of well under a millisecond; eager ``jax.vjp`` costs milliseconds every time. Hypothesis draws few
distinct shapes per item, so one compile per shape pays for itself within a few examples. Results
are also memoised by the bytes of their inputs: derandomized runs repeat inputs across properties
and across the submissions of a grading run.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
from typing import Any, Mapping

import jax
import numpy as np

from gradprop import reference  # noqa: F401 - enables x64 before anything is traced

from .model import Case, Item

_MEMO: dict[bytes, Any] = {}
_MEMO_LIMIT = 50_000


def _key(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, Mapping):
            for k in part:
                h.update(k.encode())
                h.update(b"=")
                _hash_value(h, part[k])
        else:
            _hash_value(h, part)
        h.update(b"|")
    return h.digest()


def _hash_value(h, value: Any) -> None:
    a = np.asarray(value)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def _memo(key: bytes, compute):
    if key not in _MEMO:
        if len(_MEMO) > _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = compute()
    return _MEMO[key]


@functools.cache
def _parameters(reference) -> frozenset[str]:
    return frozenset(inspect.signature(reference).parameters)


def _split(item: Item, args: Mapping[str, Any]) -> tuple[dict, tuple]:
    """The reference's arguments, split into traced arrays and static Python values (stride, pad,
    train_flg: they change the program, so each value gets its own trace)."""
    wanted = {k: v for k, v in args.items() if k in _parameters(item.reference)}
    static = tuple(sorted((k, v) for k, v in wanted.items()
                          if k not in item.wrt and isinstance(v, (bool, int, float, str, type(None)))))
    traced = {k: v for k, v in wanted.items() if k not in dict(static)}
    return traced, static


@functools.cache
def _jitted_forward(item: Item, static: tuple):
    return jax.jit(lambda kwargs: item.reference(**kwargs, **dict(static)))


@functools.cache
def _jitted_vjp(item: Item, static: tuple):
    def run(diff: dict, other: dict, dout):
        out, pull = jax.vjp(lambda d: item.reference(**d, **other, **dict(static)), diff)
        return out, pull(dout)[0]

    return jax.jit(run)


def arguments(case: Case, item: Item | None = None) -> dict[str, Any]:
    """The reference's arguments: forward inputs and constructor arguments (a network's
    constructor takes sizes, which its reference does not need)."""
    if item is not None and item.kind == "network":
        return dict(case.inputs)
    return {**case.inputs, **case.init, **case.extra}


def _float(value: Any) -> Any:
    a = np.asarray(value)
    return a.astype(np.float64) if a.dtype.kind in "biu" and a.dtype != bool else a


def forward(item: Item, case: Case, args: Mapping[str, Any] | None = None) -> np.ndarray:
    """The reference output for the case (or for ``args`` in its place)."""
    traced, static = _split(item, arguments(case, item) if args is None else args)
    key = _key(item.name, "forward", traced, repr(static))
    return _memo(key, lambda: np.asarray(_jitted_forward(item, static)(traced)))


def vjp(item: Item, case: Case, dout: Any, args: Mapping[str, Any] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(reference output, {argument name: expected gradient}) for the upstream gradient ``dout``."""
    traced, static = _split(item, arguments(case, item) if args is None else args)
    diff = {k: _float(traced[k]) for k in item.wrt}
    other = {k: v for k, v in traced.items() if k not in diff}
    key = _key(item.name, "vjp", diff, other, repr(static), dout)

    def compute():
        out, grads = _jitted_vjp(item, static)(diff, other, np.asarray(dout, dtype=np.float64))
        return np.asarray(out), {k: np.asarray(v) for k, v in grads.items()}

    return _memo(key, compute)
