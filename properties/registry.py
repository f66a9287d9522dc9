"""The registry: one entry per item. Adding a layer = a layer, a reference function, an entry.

An entry says how to build the item and call it (``cases`` draws constructor arguments and forward
inputs, by name), which JAX reference it must agree with, which gradients it produces and where
they are found, which extra regimes it must survive, the chapter it first appears in and the
extensions later chapters add to it, and its tolerance with the reason for it.
Every generic property in ``properties.checks`` runs over every entry.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from gradprop import reference as ref
from gradprop.i18n import N_

from . import checks as C, strategies as S
from .model import Case, Extension, Grad, Item, Property
from gradprop.findings import CORE


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
def affine_cases(draw, batch=None, ranks: tuple[int, ...] = (2,)) -> Case:
    shape = draw(S.batch_shape(batch, draw(st.sampled_from(ranks))))
    d, m = int(np.prod(shape[1:])), draw(S.features)
    return _case(draw, {"W": S.array((d, m)), "b": S.array((m,))}, {"x": S.array(shape)})


@st.composite
def softmax_cases(draw, batch=None, one_d: bool = False, offset: float | None = None) -> Case:
    c = draw(S.classes)
    shape = (c,) if one_d else (batch or draw(S.batches), c)
    off = draw(st.sampled_from([0.0, 1000.0, -1000.0])) if offset is None else offset
    return _case(draw, {}, {"x": S.logits(shape, off)})


@st.composite
def cross_entropy_cases(draw, batch=None, one_d: bool = False, form: str = "one-hot") -> Case:
    c = draw(S.classes)
    n = 1 if one_d else (batch or draw(S.batches))
    z = draw(S.logits((n, c)))
    y = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # probabilities, each > 3e-3
    t = draw(S.labels(n, c, form))
    if one_d:
        y, t = y[0], (t[0] if t.ndim == 2 else t[0])
    return Case({}, {"y": y, "t": t}, draw(S.seeds))


@st.composite
def softmax_with_loss_cases(draw, batch=None, form: str = "one-hot", offset: float = 0.0) -> Case:
    n, c = batch or draw(S.batches), draw(S.classes)
    return _case(draw, {}, {"x": S.logits((n, c), offset), "t": S.labels(n, c, form)})


@st.composite
def two_layer_net_cases(draw, batch=None, form: str = "one-hot") -> Case:
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
# Extensions: what a later chapter adds to an item, which the chapter that introduced it does not
# ask for (and whose text the item's first form therefore fails). Core strategies never draw them.
# ch. 4-5 train on one-hot labels; ch. 6-7's scripts load MNIST with label indices
LABEL_INDEX = {"labels-index": Extension(6, {"form": "index"}, N_("t given as label indices"))}
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
        regimes=BATCH_1,
        # ch. 5 writes Affine for (N, D); ch. 7's CNN feeds it (N, C, H, W)
        extensions={"rank>2": Extension(7, {"ranks": (3, 4)}, N_("x of rank 3 or 4, flattened to (N, -1)"))},
        why="sums of at most a few dozen O(1) products: round-off ~1e-15 of the largest entry",
    ),
    Item(
        "softmax", "function", ref.softmax, softmax_cases, chapter=4,  # row-wise from ch. 4 on
        regimes={**BATCH_1, "1-D": {"one_d": True}, "large-logits": {"offset": 1000.0},
                 "large-negative-logits": {"offset": -1000.0}},
        rtol=1e-12,
        why="exp of shifted logits: a few ulps; logits near +-1000 must not overflow",
    ),
    Item(
        "cross_entropy_error", "function", ref.cross_entropy_error, cross_entropy_cases, chapter=4,
        regimes={**BATCH_1, "1-D": {"one_d": True}}, extensions=LABEL_INDEX,
        rtol=1e-6, atol=1e-4,
        why="the book adds delta=1e-7 in the log; with every y >= 3e-3 that moves the loss by "
            "< 4e-5, while a visibly wrong delta=1e-2 moves it by > 1e-2",
    ),
    Item(
        "SoftmaxWithLoss", "layer", ref.softmax_with_loss, softmax_with_loss_cases,
        grads=(Grad("dx", "x", "return"),), loss=True,
        regimes={**BATCH_1, "large-logits": {"offset": 1000.0}, "large-negative-logits": {"offset": -1000.0}},
        extensions=LABEL_INDEX,
        rtol=1e-4, atol=1e-7, num_rtol=1e-4,
        why="delta=1e-7 in the book's log moves loss and its numerical gradient by < 4e-5 relative "
            "(every probability > 3e-3); the book's backward (y - t)/N is exact",
    ),
    Item(
        "TwoLayerNet", "network", ref.two_layer_net_loss, two_layer_net_cases,
        grads=tuple(Grad(k, k, "dict") for k in ("W1", "b1", "W2", "b2")),
        optional=("weight_init_std",),
        regimes=BATCH_1, extensions=LABEL_INDEX,
        rtol=1e-4, atol=1e-7, num_rtol=1e-4,
        why="as SoftmaxWithLoss: its loss carries the book's delta=1e-7; hidden pre-activations keep "
            "1e-3 from ReLU's kink",
    ),
)



# --- the book's later layers (ch. 6-7) ------------------------------------------------------------


@st.composite
def dropout_cases(draw, batch=None, rank: int | None = None) -> Case:
    shape = draw(S.batch_shape(batch, rank or draw(st.integers(2, 4))))
    ratio = draw(st.sampled_from([0.2, 0.5, 0.7]))
    # x keeps away from 0, so a dropped entry (0) is never mistaken for a kept one
    return _case(draw, {"dropout_ratio": ratio}, {"x": S.array(shape, margin=0.1), "train_flg": True})


def dropout_observe(case: Case, out, backward: tuple[Any, Any] | None = None) -> Case:
    """The mask and scale the layer used, read off its output: kept entries are x * scale, with
    scale 1 (the book) or 1 / (1 - ratio) (inverted dropout). The scale is ``sure`` when the
    output is one of them exactly; a forward that is neither (a broken one) tells nothing, and the
    scale is then read off backward's dx / dout (``backward``), whichever convention it is nearer."""
    x, ratio = np.asarray(case.inputs["x"]), case.init["dropout_ratio"]
    out = np.asarray(out, dtype=float) if isinstance(out, np.ndarray) and out.shape == x.shape else np.zeros_like(x)
    train = case.inputs.get("train_flg", True)
    mask = (out != 0) if train else np.ones(x.shape, dtype=bool)
    options = (1.0, 1.0 / (1.0 - ratio)) if train else (1.0 - ratio, 1.0)
    ratios = out[mask] / x[mask]
    seen = float(np.median(ratios)) if ratios.size else options[0]
    scale = min(options, key=lambda s: abs(s - seen))
    sure = bool(ratios.size) and np.allclose(ratios, scale, rtol=1e-9, atol=0)
    if not sure and backward is not None and isinstance(backward[0], np.ndarray) and backward[0].shape == x.shape:
        dx, dout = np.asarray(backward[0], dtype=float), np.asarray(backward[1], dtype=float)
        kept = mask & (dout != 0)
        if kept.any():
            seen = float(np.median(dx[kept] / dout[kept]))
            scale = min(options, key=lambda s: abs(s - seen))
    return Case(case.init, case.inputs, case.seed, {"mask": mask.astype(float), "scale": scale, "sure": sure})


@st.composite
def batchnorm_cases(draw, batch=None, rank: int | None = None, train: bool = True, constant: bool = False) -> Case:
    n = batch or draw(st.integers(2, 5))
    shape = draw(S.batch_shape(n, rank or 2))
    d = int(np.prod(shape[1:]))
    # every feature spread out (a ramp 3 apart plus noise in [-0.5, 0.5]): eps, anything up to
    # 1e-5, then moves the output by < eps / (2 var) < 1e-5
    ramp = ((np.arange(n) - (n - 1) / 2) * 3.0).reshape((n,) + (1,) * (len(shape) - 1))
    x = draw(S.array(shape, -0.5, 0.5)) + ramp
    if constant:  # one feature the same in every example: variance 0 (at batch size 1, every one)
        flat = x.reshape(n, -1)
        flat[:, draw(st.integers(0, d - 1))] = draw(S.values())
    else:
        S.assume(np.all(x.reshape(n, -1).var(axis=0) > 0.5))
    init = {"gamma": S.array((d,), 0.5, 2.0), "beta": S.array((d,)), "momentum": st.sampled_from([0.9, 0.5]),
            "running_mean": S.array((d,)), "running_var": S.array((d,), 0.5, 2.0)}
    return Case(S.draw_case(draw, **init), {"x": x, "train_flg": train}, draw(S.seeds))


@st.composite
def convolution_cases(draw, batch=None, stride=None, pad=None) -> Case:
    stride = stride or draw(st.integers(1, 2))
    pad = draw(st.integers(0, 1)) if pad is None else pad
    n, c, fn = batch or draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    fh, fw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(max(1, fh - 2 * pad), 5)), draw(st.integers(max(1, fw - 2 * pad), 5))
    return _case(draw, {"W": S.array((fn, c, fh, fw)), "b": S.array((fn,)), "stride": stride, "pad": pad},
                 {"x": S.array((n, c, h, w))})


@st.composite
def pooling_cases(draw, batch=None, stride=None, pad: int = 0) -> Case:
    """Distinct values 0.05 apart and >= 0.025 from the zero padding: no ties inside a window."""
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = stride or draw(st.integers(1, 2))
    n, c = batch or draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(max(1, ph - 2 * pad), 5)), draw(st.integers(max(1, pw - 2 * pad), 5))
    order = np.array(draw(st.permutations(range(n * c * h * w))), dtype=float)
    x = ((order - order.size // 2 + 0.5) * 0.05).reshape(n, c, h, w)  # k + 1/2: never 0
    return _case(draw, {"pool_h": ph, "pool_w": pw, "stride": stride, "pad": pad}, {"x": x})


LATER: tuple[Item, ...] = (
    Item(
        "Dropout", "layer", ref.dropout, dropout_cases, chapter=6,
        grads=(Grad("dx", "x", "return"),), observe=dropout_observe,
        optional=("train_flg",), api="forward(self, x, train_flg=True)",
        regimes={**BATCH_1},
        properties=(
            Property("drop-rate", CORE, C.check_dropout_rate, "train mode drops a dropout_ratio share of entries"),
            Property("eval-mode", CORE, C.check_dropout_eval,
                     "eval mode returns the expected train output and uses no mask"),
        ),
        why=EXACT,
        notes="the mask comes from np.random, seeded before each layer is built; the reference uses "
              "the mask read off the layer's own output",
    ),
    Item(
        "BatchNormalization", "layer", ref.batch_norm_layer, batchnorm_cases, chapter=6,
        grads=(Grad("dx", "x", "return"), Grad("dgamma", "gamma", "attr"), Grad("dbeta", "beta", "attr")),
        optional=("momentum", "running_mean", "running_var", "train_flg"),
        api="__init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None); "
            "forward(self, x, train_flg=True)",
        regimes={"rank-4": {"rank": 4}},
        properties=(
            Property("eval-mode", CORE, C.check_batchnorm_eval, "eval mode normalises with the running statistics"),
            Property("running-stats", CORE, C.check_running_stats,
                     "running statistics move by momentum in train mode only"),
            # a variance of 0 makes the output hinge on eps (any up to 1e-5 is allowed), so only
            # finiteness and the output (beta, whatever eps) are checked there
            Property("constant-feature", CORE, C.check_batchnorm_constant,
                     "a feature with variance 0 gives beta and finite gradients (eps in the square root)",
                     regime={"constant": True}),
            Property("batch-1", CORE, C.check_batchnorm_constant,
                     "a batch of one (every variance 0) gives beta and finite gradients",
                     regime={"constant": True, "batch": 1}),
        ),
        rtol=1e-4, atol=1e-4,
        why="any eps up to 1e-5 in the square root is allowed; with every feature variance > 0.5 it "
            "moves outputs and gradients by < 1e-5 relative to gamma * dout (O(1)). atol, not just "
            "rtol: with two examples per feature the output is +-1 whatever x, so dx is nothing but "
            "that eps effect, ~1e-7, and only an absolute bound can accept every eps",
        notes="batch size >= 2 and every variance > 0.5 in the generic checks: with variance 0 everything "
              "hinges on eps; the constant-feature and batch-1 properties check what holds whatever eps",
    ),
    Item(
        "Convolution", "layer", ref.convolution, convolution_cases, chapter=7,
        grads=(Grad("dx", "x", "return"), Grad("dW", "W", "attr"), Grad("db", "b", "attr")),
        regimes={**BATCH_1, "stride-2-pad-1": {"stride": 2, "pad": 1}, "pad-2": {"pad": 2}},
        rtol=1e-9,
        why="sums of at most 18 O(1) products (im2col @ W): round-off ~1e-15 of the largest entry",
    ),
    Item(
        "Pooling", "layer", ref.pooling, pooling_cases, chapter=7,
        grads=(Grad("dx", "x", "return"),),
        regimes={**BATCH_1, "stride-1": {"stride": 1}},
        # the book's constructor takes pad but its output size ignores it; no network of the book
        # pools with padding
        extensions={"padding": Extension(7, {"pad": 1}, N_("pad = 1, zero padding as im2col adds it"))},
        why="max picks one input exactly: no arithmetic, no round-off",
        notes="inputs never tie inside a window (0.05 apart, far above the finite-difference step); "
              "pad > 0 is the 'padding' extension, which the book's own Pooling fails",
    ),
)

ITEMS = ITEMS + LATER
REGISTRY: dict[str, Item] = {item.name: item for item in ITEMS}


def items_up_to(chapter: int) -> tuple[Item, ...]:
    """The items the book has introduced by the end of ``chapter``, in registry order."""
    return tuple(item for item in ITEMS if item.chapter <= chapter)


def extensions_up_to(item: Item, chapter: int) -> tuple[str, ...]:
    """The names of ``item``'s extensions the book has added by the end of ``chapter``."""
    return tuple(name for name, ext in item.extensions.items() if ext.chapter <= chapter)
