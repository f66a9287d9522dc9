"""Expected values: the JAX reference through ``jax.vjp``, jitted, cached and memoised.

Measured here (2 cores): a jitted vjp compiles in 20-60 ms per new input signature (shapes,
dtypes, static arguments; with ``QUICK_COMPILE`` below, 100-200 ms with XLA's defaults) and then
answers in ~0.05 ms. Eager ``jax.vjp`` is no way out: it
compiles each primitive and its transpose per shape, ~5-10 compiles of ~30 ms for a new shape.
So every signature is jitted once, and compiled programs go to JAX's persistent cache on disk
(``GRADPROP_JAX_CACHE``, default ``~/.cache/gradprop/jax``), shared by pytest-xdist workers and
grading workers and kept between runs. Results are memoised by the bytes of their inputs:
derandomized runs repeat inputs across the properties of an item and across the submissions of
a grading run; and across processes, in the on-disk store (``properties/store.py``), so that a
fresh process meets no JAX call at all on the derandomized examples (tracing a signature costs
~15 ms even when its compiled program is in JAX's cache).
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import warnings
from typing import Any, Mapping

import numpy as np

from gradprop.reference._jax import TORN_ENTRY, load as _load_jax

from .model import Case, Item
from .store import store

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
    if isinstance(value, Mapping):  # an optimizer's params: a dict of arrays, by key
        h.update(b"{")
        for k in value:
            h.update(f"{k}:".encode())
            _hash_value(h, value[k])
        h.update(b"}")
        return
    a = np.asarray(value)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())


def _memo(key: bytes, compute):
    """The value under ``key``: from this process's memo, else the on-disk store, else computed."""
    if key not in _MEMO:
        if len(_MEMO) > _MEMO_LIMIT:
            _MEMO.clear()
        value = store().get("oracle", key)
        if value is None:
            value = compute()
            store().put("oracle", key, value)
        _MEMO[key] = value
    return _MEMO[key]


@functools.cache
def _parameters(reference) -> frozenset[str]:
    """The names ``reference`` declares; "**" too when it takes any keyword (a network's
    ``**params``, whose keys depend on its depth)."""
    params = inspect.signature(reference).parameters.values()
    return frozenset(p.name for p in params if p.kind != p.VAR_KEYWORD) | (
        {"**"} if any(p.kind == p.VAR_KEYWORD for p in params) else set())


_PLAIN = (bool, int, float, str, type(None))
#: static arguments: they shape the program (stride, pad, train_flg, an activation's name). A
#: Python float is not one of them: a learning rate or a weight decay changes numbers, not the
#: program, and traced it costs one compile for every value instead of one per value
_STATIC = (bool, int, str, type(None))


class _FrozenDict(dict):
    """A dict of plain values that can be part of a cache key (SimpleConvNet's conv_param)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def _static(value: Any) -> Any:
    """``value`` as a static argument (hashable), or None when it is data to trace: Python ints,
    bools and strings, and tuples, lists and dicts of plain values (col2im's input_shape, a
    conv_param); not a lone float (``_STATIC``)."""
    if isinstance(value, _STATIC):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, _PLAIN) for v in value):
        return tuple(value)
    if isinstance(value, dict) and all(isinstance(v, _PLAIN) for v in value.values()):
        return _FrozenDict(value)
    return None


def _split(item: Item, args: Mapping[str, Any], wrt: tuple[str, ...], reference=None) -> tuple[dict, tuple]:
    """The reference's arguments, split into traced arrays and static Python values (stride, pad,
    train_flg: they change the program, so each value gets its own trace). ``wrt`` are traced
    whatever they are."""
    names = _parameters(reference or item.reference)
    wanted = {k: v for k, v in args.items() if k in names or "**" in names}
    static = tuple(sorted((k, _static(v)) for k, v in wanted.items() if k not in wrt and _static(v) is not None))
    traced = {k: v for k, v in wanted.items() if k not in dict(static)}
    return traced, static


@functools.cache
def _jax():
    """JAX, imported on the first answer that is neither memoised nor in the store (float64 on,
    compiled programs cached on disk)."""
    jax = _load_jax()
    path = os.environ.get("GRADPROP_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gradprop", "jax")
    if path.lower() not in ("", "0", "off", "none"):
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # ours all take ~0.1 s
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        warnings.filterwarnings("ignore", TORN_ENTRY, UserWarning)
    return jax


def _forward_fn(item: Item, static: tuple):
    return lambda kwargs: item.reference(**kwargs, **dict(static))


def _vjp_fn(item: Item, static: tuple):
    def run(diff: dict, other: dict, dout):
        out, pull = _jax().vjp(lambda d: item.reference(**d, **other, **dict(static)), diff)
        return out, pull(dout)[0]

    return run


#: XLA's CPU compiler told to spend less on each program: ours are tiny and each runs a few times,
#: so its default pipeline (the new fusion emitters, LLVM at -O2) costs far more than it saves.
#: Measured on a jitted vjp of Affine + softmax + cross-entropy: 185 ms per compile by default,
#: 92 ms with these; all of the grading warm-up's 485 compiles: 35.3 s -> 9.1 s. Numerics are
#: IEEE float64 either way (no fast math); answers move by round-off at most.
QUICK_COMPILE = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 0,
                 "xla_llvm_disable_expensive_passes": True, "xla_cpu_parallel_codegen_split_count": 1}


@functools.cache
def compiler_options() -> dict:
    """``QUICK_COMPILE`` if this jaxlib knows every option in it (an unknown one is an error at
    compile time), else XLA's defaults."""
    jax = _jax()
    try:
        jax.jit(lambda x: x + 1, compiler_options=QUICK_COMPILE)(1.0).block_until_ready()
    except Exception:  # noqa: BLE001 - any refusal means: compile as XLA would by default
        return {}
    return QUICK_COMPILE


@functools.cache
def _jitted(make, item: Item, static: tuple):
    return _jit(make(item, static))


@functools.cache
def _jit(fn):
    return _jax().jit(fn, compiler_options=compiler_options())


def arguments(case: Case, item: Item | None = None) -> dict[str, Any]:
    """The reference's arguments: forward inputs and constructor arguments. A network's
    constructor takes sizes, which its reference does not need: of its arguments, only those its
    reference names (an activation, a weight decay) are passed."""
    if item is not None and item.kind == "network":
        names = _parameters(item.reference)
        return {**case.inputs, **{k: v for k, v in case.init.items() if k in names}, **case.extra}
    return {**case.inputs, **case.init, **case.extra}


def _float(value: Any) -> Any:
    a = np.asarray(value)
    return a.astype(np.float64) if a.dtype.kind in "biu" and a.dtype != bool else a


def _wrt(wrt: tuple[str, ...], traced: Mapping[str, Any]) -> tuple[dict, dict]:
    """The differentiated arguments (as floats) and the others."""
    diff = {k: _float(traced[k]) for k in wrt}
    return diff, {k: v for k, v in traced.items() if k not in diff}


def _numpy(tree: Any) -> Any:
    """A reference's answer as numpy: an array, or a dict of them (an optimizer's trajectory)."""
    if isinstance(tree, Mapping):
        return {k: np.asarray(v) for k, v in tree.items()}
    return np.asarray(tree)


def forward(item: Item, case: Case) -> np.ndarray:
    """The reference output for the case. For an item with gradients it comes from the program
    ``vjp`` compiles (with a zero dout), so that a new signature costs one compile, not two."""
    kept = case.memo.get((item.name, "forward"))
    if kept is None:
        kept = case.memo[item.name, "forward"] = _forward(item, case)
    return kept


def _forward(item: Item, case: Case) -> np.ndarray:
    wrt = item.differentiated(case)
    traced, static = _split(item, arguments(case, item), wrt)
    key = _key(item.name, "forward", traced, repr(static))

    def compute():
        if not wrt:
            return _numpy(_jitted(_forward_fn, item, static)(traced))
        diff, other = _wrt(wrt, traced)
        zeros = np.zeros(_out_shape(item, static, diff, other))
        return np.asarray(_jitted(_vjp_fn, item, static)(diff, other, zeros)[0])

    return _memo(key, compute)


def companion(fn, item: Item, case: Case) -> np.ndarray:
    """``fn`` (another reference of the item: a network's ``predict``) on the case's arguments,
    split as the item's own (static Python values get their own trace), jitted and memoised."""
    traced, static = _split(item, arguments(case, item), (), fn)
    key = _key(fn.__module__, fn.__name__, traced, repr(static))
    return _memo(key, lambda: np.asarray(_jit_companion(fn, static)(traced)))


@functools.cache
def _jit_companion(fn, static: tuple):
    return _jit(lambda kwargs: fn(**kwargs, **dict(static)))


_SHAPES: dict[tuple, tuple] = {}


def _out_shape(item: Item, static: tuple, diff: dict, other: dict) -> tuple:
    """The shape of the reference's output, kept per input signature: ``eval_shape`` traces the
    reference, and took two fifths of a check whose answer was not stored yet."""
    signature = (item.name, static, *((k, np.shape(v), np.asarray(v).dtype.str)
                                      for part in (diff, other) for k, v in part.items()))
    if signature not in _SHAPES:
        if len(_SHAPES) > _MEMO_LIMIT:
            _SHAPES.clear()
        reference = item.reference
        _SHAPES[signature] = _jax().eval_shape(lambda d: reference(**d, **other, **dict(static)), diff).shape
    return _SHAPES[signature]


def vjp(item: Item, case: Case, dout: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(reference output, {argument name: expected gradient}) for the upstream gradient ``dout``."""
    d = np.asarray(dout)
    mark = (item.name, "vjp", d.dtype.str, d.shape, d.tobytes())
    kept = case.memo.get(mark)
    if kept is None:
        kept = case.memo[mark] = _vjp(item, case, dout)
    return kept


def _vjp(item: Item, case: Case, dout: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    wrt = item.differentiated(case)
    traced, static = _split(item, arguments(case, item), wrt)
    diff, other = _wrt(wrt, traced)
    key = _key(item.name, "vjp", diff, other, repr(static), dout)

    def compute():
        out, grads = _jitted(_vjp_fn, item, static)(diff, other, np.asarray(dout, dtype=np.float64))
        return np.asarray(out), {k: np.asarray(v) for k, v in grads.items()}

    return _memo(key, compute)

