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
from typing import Mapping

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
        "TwoLayerNet", "network", ref.two_layer_net_loss, two_layer_net_cases, predict=ref.two_layer_net_predict,
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
            Property("drop-rate", CORE, C.check_dropout_rate, N_("train mode drops a dropout_ratio share of entries")),
            Property("eval-mode", CORE, C.check_dropout_eval,
                     N_("eval mode returns the expected train output and uses no mask")),
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
            Property("eval-mode", CORE, C.check_batchnorm_eval, N_("eval mode normalises with the running statistics")),
            Property("running-stats", CORE, C.check_running_stats,
                     N_("running statistics move by momentum in train mode only")),
            # a variance of 0 makes the output hinge on eps (any up to 1e-5 is allowed), so only
            # finiteness and the output (beta, whatever eps) are checked there
            Property("constant-feature", CORE, C.check_batchnorm_constant,
                     N_("a feature with variance 0 gives beta and finite gradients (eps in the square root)"),
                     regime={"constant": True}),
            Property("batch-1", CORE, C.check_batchnorm_constant,
                     N_("a batch of one (every variance 0) gives beta and finite gradients"),
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



# --- the optimizers (ch. 6) -------------------------------------------------------------------------


@st.composite
def optimizer_cases(draw, hyper: Mapping[str, tuple], defaults: bool = False, small: str | None = None) -> Case:
    """Two parameters of different shapes (W1, b1: state must be kept per key; W1 2 x 3 or 1 x 2:
    the updates are elementwise, and a new shape is a new program to compile) and three steps of
    gradients, O(1) and at least 0.1 from 0, so that where the book's eps sits moves a step by
    < 1e-4 of it. ``small``: b1's gradients are 0 at the first step ("zero": a dead unit; an eps
    missing divides 0 by 0) or all about 1e-6 ("tiny": where eps sits decides the step).
    Hyperparameters from ``hyper`` (the book's default first), or none at all (``defaults``)."""
    a, b = draw(st.sampled_from(((2, 3), (1, 2))))  # two shapes: each is a program to compile
    shapes = {"W1": (a, b), "b1": (b,)}
    params = {k: draw(S.array(shape, -1.0, 1.0)) for k, shape in shapes.items()}
    grads = {k: draw(S.array((OPTIMIZER_STEPS, *shape), margin=0.1)) for k, shape in shapes.items()}
    if small == "zero":
        grads["b1"][0] = 0.0
    elif small == "tiny":
        grads["b1"] = np.sign(grads["b1"]) * draw(S.array((OPTIMIZER_STEPS, b), 1e-6, 1e-5))
    init = {} if defaults else {k: draw(st.sampled_from(v)) for k, v in hyper.items()}
    return Case(init, {"params": params, "grads": grads}, draw(S.seeds))


OPTIMIZER_STEPS = 3
DEFAULTS = {"defaults": {"defaults": True}}  # the constructor called with no argument: the book's defaults
SMALL = {"zero-gradient": {"small": "zero"}, "tiny-gradients": {"small": "tiny"}}


def _optimizer(name: str, reference, hyper: Mapping[str, tuple], regimes: Mapping = DEFAULTS, **kw) -> Item:
    return Item(name, "optimizer", reference, lambda **regime: optimizer_cases(hyper, **regime), chapter=6,
                regimes=regimes, **kw)


STEP_ROUND_OFF = ("p -= lr * g and its like: round-off of the parameters (~1e-16), far below 1e-9 of the "
                  "smallest step (lr >= 0.01, |g| >= 0.1)")
OPTIMIZERS: tuple[Item, ...] = (
    _optimizer("SGD", ref.sgd, {"lr": (0.01, 0.1, 0.5)}, why=STEP_ROUND_OFF),
    _optimizer("Momentum", ref.momentum, {"lr": (0.01, 0.1), "momentum": (0.9, 0.5)}, why=STEP_ROUND_OFF),
    _optimizer("Nesterov", ref.nesterov, {"lr": (0.01, 0.1), "momentum": (0.9, 0.5)}, why=STEP_ROUND_OFF),
    _optimizer("AdaGrad", ref.adagrad, {"lr": (0.01, 0.1, 1.0)}, {**DEFAULTS, **SMALL}, why=STEP_ROUND_OFF,
               notes="b1's gradients are 0 at the first step (eps missing: 0 / 0) or about 1e-6 (eps inside the "
                     "root: sqrt(1e-12 + 1e-7) makes a step 300 times too short): the book's 1e-7 outside "
                     "the root is the convention"),
    _optimizer("RMSprop", ref.rmsprop, {"lr": (0.01, 0.1), "decay_rate": (0.99, 0.9)}, {**DEFAULTS, **SMALL},
               why=STEP_ROUND_OFF, notes="as AdaGrad: zero and tiny gradients place the eps"),
    _optimizer("Adam", ref.adam, {"lr": (0.001, 0.01, 0.1), "beta1": (0.9, 0.5), "beta2": (0.999, 0.99)},
               {**DEFAULTS, "zero-gradient": {"small": "zero"}}, rtol=2e-4, atol=1e-12,
               why="the textbook form (m / (1 - beta1^t), v / (1 - beta2^t), eps 1e-8) is as correct as the "
                   "book's (lr_t, eps 1e-7): they differ by where eps sits, which moves a step by at most "
                   "1e-7 / sqrt(1 - beta2) / (sqrt(v_hat) >= 0.05) < 7e-5 of it with |g| >= 0.1 or 0 "
                   "(no tiny gradients for Adam: there the two forms part)"),
)


# --- the networks of ch. 6-7 and im2col / col2im ----------------------------------------------------


def _activate(a: np.ndarray, activation: str) -> np.ndarray:
    return np.maximum(a, 0.0) if activation == "relu" else 1.0 / (1.0 + np.exp(-a))


def _smooth_net(case: Case) -> bool:
    """The network's hidden pre-activations keep KINK_MARGIN from ReLU's kink, and (batch norm)
    each feature entering a BatchNorm varies over the batch (variance >= 0.05), so that the
    allowed eps moves nothing past the tolerance. A numpy forward pass of the drawn case."""
    init, h = case.init, case.inputs["x"]
    depth = sum(1 for k in case.inputs if k[0] == "W")
    for i in range(1, depth):
        a = h @ case.inputs[f"W{i}"] + case.inputs[f"b{i}"]
        if init.get("use_batchnorm"):
            if np.any(a.var(axis=0) < 0.05):
                return False
            a = (a - a.mean(axis=0)) / np.sqrt(a.var(axis=0) + 1e-6) * case.inputs[f"gamma{i}"] + case.inputs[f"beta{i}"]
        if init["activation"] == "relu" and np.any(np.abs(a) <= S.KINK_MARGIN):
            return False
        h = _activate(a, init["activation"])
    return True


#: (input size, hidden sizes, classes): depth 1-3, widths 1-3. A few shapes, not every one: each
#: new shape is a new program for XLA to compile (a fifth of a second for a network), and the
#: weights, inputs and labels drawn within a shape are what finds the bugs
ARCHITECTURES = ((2, [3], 2), (3, [2, 1], 3), (2, [3, 2, 2], 2))


@st.composite
def multi_layer_net_cases(draw, batch=None, activation=None, decay=None, extend: bool = False,
                          batchnorm: bool = True, dropout: bool = False) -> Case:
    """1-3 hidden layers of width 1-3 (``ARCHITECTURES``), one-hot or index labels (ch. 6 trains on
    both), the weights written into the net's params in place. ``extend``: MultiLayerNetExtend's keywords, with batch
    norm (gamma, beta) unless ``batchnorm`` is False, and dropout if ``dropout``."""
    bn = extend and batchnorm
    n = batch or 3
    d, hidden, c = draw(st.sampled_from(ARCHITECTURES))
    activation, lam = activation or "relu", 0.1 if decay is None else decay  # the sigmoid is a regime
    sizes = [d, *hidden, c]
    params = {}
    for i in range(1, len(sizes)):
        params[f"W{i}"] = S.array((sizes[i - 1], sizes[i]), -1, 1, margin=0.2 if bn else None)
        params[f"b{i}"] = S.array((sizes[i],), -1, 1)
        if bn and i < len(sizes) - 1:
            params[f"gamma{i}"], params[f"beta{i}"] = S.array((sizes[i],), 0.5, 2.0), S.array((sizes[i],), -1, 1)
    init = {"input_size": d, "hidden_size_list": hidden, "output_size": c, "activation": activation,
            "weight_init_std": 0.01, "weight_decay_lambda": lam}
    if extend:
        init |= {"use_dropout": dropout, "dropout_ration": draw(st.sampled_from((0.5, 0.2))), "use_batchnorm": bn}
    # with batch norm, x spread over the batch (a ramp 1.5 apart plus noise): its features vary
    ramp = ((np.arange(n) - (n - 1) / 2) * 1.5)[:, None] if bn else 0.0
    x = draw(S.array((n, d), -1, 1)) + ramp
    case = _case(draw, init, {"x": x, "t": S.labels(n, c, None), **params})
    S.assume(_smooth_net(case))
    return case


def _conv_relu(x: np.ndarray, W: np.ndarray, b: np.ndarray, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(pre-activations, ReLU of them) of a stride-1 convolution, in numpy: for the strategy."""
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    win = np.lib.stride_tricks.sliding_window_view(xp, W.shape[2:], axis=(2, 3))  # (N, C, oh, ow, fh, fw)
    z = np.einsum("ncijhw,fchw->nfij", win, W) + b[None, :, None, None]
    return z, np.maximum(z, 0.0)


#: (filter size, pad, convolution output size, channels, filters): 2 x 2, 5 x 5 and 2 x 2 images.
#: A few shapes, as for ARCHITECTURES
CONVOLUTIONS = ((3, 1, 2, 1, 2), (2, 0, 4, 2, 1), (1, 0, 2, 2, 2))


@st.composite
def simple_conv_net_cases(draw, batch=None) -> Case:
    """A batch of 2 tiny images (1-2 channels, at most 5 x 5) whose convolution output is 2 x 2 or
    4 x 4 (the book's pool size assumes it even), 1-2 filters, a hidden layer of 2, one-hot or index labels
    (ch. 7 trains on indices). Pre-activations keep KINK_MARGIN from ReLU's kink, and the largest
    value of each pooling window is KINK_MARGIN above the next (or every value is 0 after ReLU)."""
    n = batch or 2
    fs, pad, co, ch, fn = draw(st.sampled_from(CONVOLUTIONS))
    size = co + fs - 1 - 2 * pad
    hidden, c = 2, draw(st.sampled_from((2, 3)))
    x, W1, b1 = draw(S.array((n, ch, size, size), -1, 1)), draw(S.array((fn, ch, fs, fs), -1, 1)), draw(S.array((fn,), -1, 1))
    z, h = _conv_relu(x, W1, b1, pad)
    S.assume(np.all(np.abs(z) > S.KINK_MARGIN))
    windows = h.reshape(n, fn, co // 2, 2, co // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4)
    top = np.sort(windows, axis=1)[:, -2:]
    S.assume(np.all((top[:, 1] - top[:, 0] > S.KINK_MARGIN) | (top[:, 1] == 0)))
    pooled = windows.max(axis=1).reshape(n, fn, co // 2, co // 2).reshape(n, -1)
    W2, b2 = draw(S.array((pooled.shape[1], hidden), -1, 1)), draw(S.array((hidden,), -1, 1))
    S.assume(np.all(np.abs(pooled @ W2 + b2) > S.KINK_MARGIN))
    init = {"input_dim": (ch, size, size), "conv_param": {"filter_num": fn, "filter_size": fs, "pad": pad, "stride": 1},
            "hidden_size": hidden, "output_size": c, "weight_init_std": 0.01}
    return _case(draw, init, {"x": x, "t": S.labels(n, c, None), "W1": W1, "b1": b1, "W2": W2, "b2": b2,
                              "W3": S.array((hidden, c), -1, 1), "b3": S.array((c,), -1, 1)})


#: (filter_h, filter_w, stride, pad, H, W) of im2col and col2im. Each is a program to compile (the
#: window and the image's shape are static), so a few that between them show every case: windows
#: that overlap, with padding or not, rectangular ones, stride 2 with and without overlap, 1 x 1,
#: padding 2 around windows larger than the image
WINDOW_SHAPES = ((3, 3, 1, 0, 4, 4), (2, 3, 1, 1, 3, 4), (3, 2, 2, 1, 5, 4), (2, 2, 2, 0, 4, 4),
                 (1, 1, 1, 0, 2, 3), (3, 3, 2, 2, 3, 3), (2, 2, 1, 2, 2, 2))


@st.composite
def im2col_cases(draw, batch=None, stride=None, pad=None, overlap: bool = False, col: bool = False) -> Case:
    """A batch of 2 images of 2 channels and a window (``WINDOW_SHAPES``, those with the ``stride``
    and ``pad`` asked for); ``col``: instead of the image, a random col of im2col's output shape
    and the image's shape (col2im's arguments); ``overlap``: windows that overlap (stride 1,
    filter of 2 or more)."""
    shapes = [g for g in WINDOW_SHAPES if (stride is None or g[2] == stride) and (pad is None or g[3] == pad)
              and (not overlap or (g[2] == 1 and min(g[:2]) >= 2))]
    fh, fw, stride, pad, h, w = draw(st.sampled_from(shapes))
    n, c = batch or 2, 2
    window = {"filter_h": fh, "filter_w": fw, "stride": stride, "pad": pad}
    if not col:
        return _case(draw, {}, {"input_data": S.array((n, c, h, w)), **window})
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    return _case(draw, {}, {"col": S.array((n * oh * ow, c * fh * fw)), "input_shape": (n, c, h, w), **window})


NET_TOLERANCE = dict(rtol=1e-4, atol=1e-7, num_rtol=1e-4)
WINDOWS = {**BATCH_1, "stride-2-pad-1": {"stride": 2, "pad": 1}, "pad-2": {"pad": 2}}

NETWORKS: tuple[Item, ...] = (
    Item(
        "MultiLayerNet", "network", ref.multi_layer_net_loss, multi_layer_net_cases, chapter=6,
        predict=ref.multi_layer_net_predict,
        regimes={**BATCH_1, "sigmoid": {"activation": "sigmoid"}, "no-weight-decay": {"decay": 0.0}},
        **NET_TOLERANCE,
        why="as TwoLayerNet: its loss carries the book's delta=1e-7 (every probability > 3e-3); the "
            "weight decay term and lambda * W are exact",
        notes="hidden pre-activations keep 1e-3 from ReLU's kink; depth 1-3 and widths 1-3 (a few "
              "architectures); weight decay lambda = 0.1 unless a regime says 0",
    ),
    Item(
        "MultiLayerNetExtend", "network", ref.multi_layer_net_extend_loss,
        lambda **kw: multi_layer_net_cases(extend=True, **kw), chapter=6,
        predict=ref.multi_layer_net_predict, train={"train_flg": True},
        regimes={"no-batchnorm": {"batchnorm": False}, "sigmoid": {"activation": "sigmoid"}},
        properties=(
            Property("dropout", CORE, C.check_net_dropout,
                     N_("with dropout, gradient agrees with the change of loss under the same masks, and eval "
                        "mode scales as the book's Dropout (or inverted dropout) does"),
                     {"dropout": True, "batchnorm": False, "activation": "sigmoid"}),
        ),
        rtol=1e-3, atol=1e-6, num_rtol=1e-4,
        why="batch norm allows any eps up to 1e-5; every feature entering a BatchNorm has batch variance "
            ">= 0.05, so eps moves outputs and gradients by < 1e-5 / 0.1 = 1e-4 relative, within 1e-3; "
            "against the numerical gradient of its own loss (eps-free) 1e-4 as TwoLayerNet",
        notes="gradient and loss in training mode; batch size >= 2 with batch norm; with dropout, np.random "
              "is seeded alike before every call, so loss and gradient draw the same masks, and the "
              "activation is the sigmoid: ReLU's kink would move with masks the checker cannot see, and "
              "the sigmoid, unlike ReLU, tells a dropout placed before the activation from one after it",
    ),
    Item(
        "SimpleConvNet", "network", ref.simple_conv_net_loss, simple_conv_net_cases, chapter=7,
        predict=ref.simple_conv_net_predict,
        grads=tuple(Grad(k, k, "dict") for k in ("W1", "b1", "W2", "b2", "W3", "b3")), accuracy=False,
        regimes=BATCH_1, **NET_TOLERANCE,
        why="as TwoLayerNet: the loss carries the book's delta=1e-7; the convolution sums at most 18 products",
        notes="no two values of a pooling window within 1e-3 of each other (unless ReLU made both 0), "
              "pre-activations 1e-3 from ReLU's kink",
    ),
    Item(
        "im2col", "function", ref.im2col, im2col_cases, chapter=7, regimes=WINDOWS,
        why="im2col copies entries: no arithmetic, no round-off",
    ),
    Item(
        "col2im", "function", ref.col2im, lambda **kw: im2col_cases(col=True, **kw), chapter=7,
        regimes={**WINDOWS, "overlap": {"overlap": True}},
        properties=(
            Property("adjoint", CORE, C.check_adjoint, N_("col2im is the adjoint of im2col: "
                                                          "<im2col(x), col> == <x, col2im(col)>")),
        ),
        rtol=1e-12,
        why="sums of at most 9 entries of col per pixel: a few ulps",
    ),
)

ITEMS = ITEMS + LATER + OPTIMIZERS + NETWORKS
REGISTRY: dict[str, Item] = {item.name: item for item in ITEMS}


def items_up_to(chapter: int) -> tuple[Item, ...]:
    """The items the book has introduced by the end of ``chapter``, in registry order."""
    return tuple(item for item in ITEMS if item.chapter <= chapter)


def extensions_up_to(item: Item, chapter: int) -> tuple[str, ...]:
    """The names of ``item``'s extensions the book has added by the end of ``chapter``."""
    return tuple(name for name, ext in item.extensions.items() if ext.chapter <= chapter)
