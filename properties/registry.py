"""The registry: one entry per item. Adding a layer = a layer, a reference function, an entry.

An entry says how to build the item and call it (``cases`` draws constructor arguments and forward
inputs, by name), which JAX reference it must agree with, which gradients it produces and where
they are found, which extra regimes it must survive, and its tolerance with the reason for it.
Every generic property in ``properties.checks`` runs over every entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np
from hypothesis import strategies as st

from gradprop import reference as ref

from . import strategies as S


@dataclass(frozen=True)
class Case:
    """One generated example: constructor arguments, forward inputs (both in call order), and a
    seed from which the random ``dout`` and the random projection directions are drawn."""

    init: Mapping[str, Any]
    inputs: Mapping[str, Any]
    seed: int


@dataclass(frozen=True)
class Grad:
    """A gradient the item produces: its name, the argument it differentiates, and where it is.

    ``source`` is ``"return"`` (backward's return value), ``"return[i]"`` (the i-th of a returned
    tuple), ``"attr"`` (an attribute named ``name`` set by backward) or ``"dict"`` (the entry
    ``wrt`` of the dict a network's ``gradient`` returns).
    """

    name: str
    wrt: str
    source: str


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per item
class Item:
    name: str
    kind: Literal["layer", "function", "network"]
    #: the pure JAX function, called with the case's inputs and init arguments by name
    reference: Callable[..., Any]
    #: ``cases(**regime)`` -> strategy of Case
    cases: Callable[..., st.SearchStrategy[Case]]
    grads: tuple[Grad, ...] = ()
    #: other names the item may be defined under
    aliases: tuple[str, ...] = ()
    #: extra regimes, each a set of keyword arguments for ``cases``: "batch-1": {"batch": 1}
    regimes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: a loss layer: called with dout=1; strict check that it scales with dout
    loss: bool = False
    #: |yours - expected| <= atol + rtol * max|expected|, against the JAX reference
    rtol: float = 1e-9
    atol: float = 1e-12
    #: the same, against the central-difference derivative of the item's own forward
    num_rtol: float = 1e-6
    why: str = ""
    notes: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def wrt(self) -> tuple[str, ...]:
        return tuple(g.wrt for g in self.grads)


# --- strategies for each item -------------------------------------------------------------------


def _case(draw, init: dict, inputs: dict) -> Case:
    return Case(S.draw_case(draw, **init), S.draw_case(draw, **inputs), draw(S.seeds))


@st.composite
def binary_cases(draw, batch=None, scalars: bool = False) -> Case:
    """x and y of one shape (or two Python floats, as in the book's apple example)."""
    if scalars:
        return _case(draw, {}, {"x": S.values(), "y": S.values()})
    shape = draw(S.batch_shape(batch))
    return _case(draw, {}, {"x": S.array(shape), "y": S.array(shape)})


@st.composite
def elementwise_cases(draw, batch=None, rank: int = 2, margin: float | None = None, lo=-3.0, hi=3.0) -> Case:
    shape = draw(S.batch_shape(batch, rank))
    return _case(draw, {}, {"x": S.array(shape, lo, hi, margin)})


@st.composite
def affine_cases(draw, batch=None, rank: int = 2) -> Case:
    shape = draw(S.batch_shape(batch, rank))
    d, m = int(np.prod(shape[1:])), draw(S.features)
    return _case(draw, {"W": S.array((d, m)), "b": S.array((m,))}, {"x": S.array(shape)})


@st.composite
def softmax_cases(draw, batch=None, one_d: bool = False, offset: float | None = None) -> Case:
    c = draw(S.classes)
    shape = (c,) if one_d else (batch or draw(S.batches), c)
    off = draw(st.sampled_from([0.0, 1000.0, -1000.0])) if offset is None else offset
    return _case(draw, {}, {"x": S.logits(shape, off)})


@st.composite
def cross_entropy_cases(draw, batch=None, one_d: bool = False, form: str | None = None) -> Case:
    c = draw(S.classes)
    n = 1 if one_d else (batch or draw(S.batches))
    z = draw(S.logits((n, c)))
    y = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # probabilities, each > 3e-3
    t = draw(S.labels(n, c, form))
    if one_d:
        y, t = y[0], (t[0] if t.ndim == 2 else t[0])
    return Case({}, {"y": y, "t": t}, draw(S.seeds))


@st.composite
def softmax_with_loss_cases(draw, batch=None, form: str | None = None, offset: float = 0.0) -> Case:
    n, c = batch or draw(S.batches), draw(S.classes)
    return _case(draw, {}, {"x": S.logits((n, c), offset), "t": S.labels(n, c, form)})


@st.composite
def two_layer_net_cases(draw, batch=None, form: str | None = None) -> Case:
    """Sizes, weights (written into the net's params in place) and a batch whose hidden
    pre-activations keep KINK_MARGIN away from ReLU's kink."""
    n, d, h, c = batch or draw(S.batches), draw(S.features), draw(st.integers(1, 4)), draw(S.classes)
    p = {"W1": S.array((d, h), -1, 1), "b1": S.array((h,), -1, 1), "W2": S.array((h, c), -1, 1),
         "b2": S.array((c,), -1, 1)}
    case = _case(draw, {"input_size": d, "hidden_size": h, "output_size": c, "weight_init_std": 0.01},
                 {"x": S.array((n, d), -1, 1), "t": S.labels(n, c, form), **p})
    x, W1, b1 = case.inputs["x"], case.inputs["W1"], case.inputs["b1"]
    S.assume(np.all(np.abs(x @ W1 + b1) > S.KINK_MARGIN))
    return case


# --- the entries ----------------------------------------------------------------------------------

BATCH_1 = {"batch-1": {"batch": 1}}
LABEL_FORMS = {"labels-one-hot": {"form": "one-hot"}, "labels-index": {"form": "index"}}
EXACT = "float64 round-off only: the same arithmetic in another order"

ITEMS: tuple[Item, ...] = (
    Item(
        "MulLayer", "layer", ref.mul, binary_cases,
        grads=(Grad("dx", "x", "return[0]"), Grad("dy", "y", "return[1]")),
        regimes={**BATCH_1, "scalars": {"scalars": True}},
        why=EXACT,
    ),
    Item(
        "AddLayer", "layer", ref.add, binary_cases,
        grads=(Grad("dx", "x", "return[0]"), Grad("dy", "y", "return[1]")),
        regimes={**BATCH_1, "scalars": {"scalars": True}},
        why=EXACT,
    ),
    Item(
        "Relu", "layer", ref.relu, lambda **kw: elementwise_cases(margin=S.KINK_MARGIN, **kw),
        grads=(Grad("dx", "x", "return"),), aliases=("ReLU",),
        regimes={**BATCH_1, "rank>2": {"rank": 4}},
        why=EXACT,
        notes="inputs keep 1e-3 from the kink at 0, so the mask x <= 0 and x < 0 agree",
    ),
    Item(
        "Sigmoid", "layer", ref.sigmoid, lambda **kw: elementwise_cases(lo=-8.0, hi=8.0, **kw),
        grads=(Grad("dx", "x", "return"),),
        regimes={**BATCH_1, "rank>2": {"rank": 3}},
        rtol=1e-12, atol=1e-14,
        why="1/(1+exp(-x)), tanh and exp(x)/(1+exp(x)) forms differ by a few ulps",
    ),
    Item(
        "Affine", "layer", ref.affine, affine_cases,
        grads=(Grad("dx", "x", "return"), Grad("dW", "W", "attr"), Grad("db", "b", "attr")),
        regimes={**BATCH_1, "rank>2": {"rank": 3}, "rank-4": {"rank": 4}},
        why="sums of at most a few dozen O(1) products: round-off ~1e-15 of the largest entry",
    ),
    Item(
        "softmax", "function", ref.softmax, softmax_cases,
        regimes={**BATCH_1, "1-D": {"one_d": True}, "large-logits": {"offset": 1000.0},
                 "large-negative-logits": {"offset": -1000.0}},
        rtol=1e-12,
        why="exp of shifted logits: a few ulps; logits near +-1000 must not overflow",
    ),
    Item(
        "cross_entropy_error", "function", ref.cross_entropy_error, cross_entropy_cases,
        regimes={**BATCH_1, "1-D": {"one_d": True}, **LABEL_FORMS},
        rtol=1e-6, atol=1e-4,
        why="the book adds delta=1e-7 in the log; with every y >= 3e-3 that moves the loss by "
            "< 4e-5, while a visibly wrong delta=1e-2 moves it by > 1e-2",
    ),
    Item(
        "SoftmaxWithLoss", "layer", ref.softmax_with_loss, softmax_with_loss_cases,
        grads=(Grad("dx", "x", "return"),), loss=True,
        regimes={**BATCH_1, **LABEL_FORMS, "large-logits": {"offset": 1000.0},
                 "large-negative-logits": {"offset": -1000.0}},
        rtol=1e-4, atol=1e-7, num_rtol=1e-4,
        why="delta=1e-7 in the book's log moves loss and its numerical gradient by < 4e-5 relative "
            "(every probability > 3e-3); the book's backward (y - t)/N is exact",
    ),
    Item(
        "TwoLayerNet", "network", ref.two_layer_net_loss, two_layer_net_cases,
        grads=tuple(Grad(k, k, "dict") for k in ("W1", "b1", "W2", "b2")),
        regimes={**BATCH_1, **LABEL_FORMS},
        rtol=1e-4, atol=1e-7, num_rtol=1e-4,
        why="as SoftmaxWithLoss: its loss carries the book's delta=1e-7; hidden pre-activations keep "
            "1e-3 from ReLU's kink",
    ),
)

REGISTRY: dict[str, Item] = {item.name: item for item in ITEMS}
