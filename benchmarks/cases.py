"""The benchmarks' inputs and the book-style calls every peer method shares (numpy only).

Each item with a backward gets a few fixed inputs of realistic, modest size (``make_case``), and
a ``Runner`` that calls the item of any layer set the way the book's code does: build a fresh
layer (``np.random`` seeded first, as gradprop's session does, so a Dropout draws the same mask
on every call), ``forward``, then ``backward`` and read each gradient where the book leaves it.
torch's gradcheck, jax's check_grads on a wrapped layer and the book's ``numerical_gradient`` all
go through it, so they see exactly the same layer calls.

This module imports numpy only: the one-process-per-submission torch grader imports it too, and
must not pay for JAX.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

#: the items with a backward, in the registry's order. ``softmax`` and ``cross_entropy_error``
#: have none (the book differentiates them only inside SoftmaxWithLoss), so there is nothing to
#: check a gradient of: they are left out of every benchmark.
ITEMS = ("MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "TwoLayerNet",
         "Dropout", "BatchNormalization", "Convolution", "Pooling")

#: (gradient name, argument it differentiates, where the book leaves it) as in properties/registry.py
GRADS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "MulLayer": (("dx", "x", "return[0]"), ("dy", "y", "return[1]")),
    "AddLayer": (("dx", "x", "return[0]"), ("dy", "y", "return[1]")),
    "Relu": (("dx", "x", "return"),),
    "Sigmoid": (("dx", "x", "return"),),
    "Affine": (("dx", "x", "return"), ("dW", "W", "attr"), ("db", "b", "attr")),
    "SoftmaxWithLoss": (("dx", "x", "return"),),
    "TwoLayerNet": tuple((k, k, "dict") for k in ("W1", "b1", "W2", "b2")),
    "Dropout": (("dx", "x", "return"),),
    "BatchNormalization": (("dx", "x", "return"), ("dgamma", "gamma", "attr"), ("dbeta", "beta", "attr")),
    "Convolution": (("dx", "x", "return"), ("dW", "W", "attr"), ("db", "b", "attr")),
    "Pooling": (("dx", "x", "return"),),
}
ALIASES = {"Relu": ("Relu", "ReLU")}
#: loss layers: the book calls backward(dout=1); a wrapper scales that by the upstream gradient
LOSS = ("SoftmaxWithLoss",)
NETWORK = ("TwoLayerNet",)

#: every input stays this far from a kink (ReLU at 0, a tie in a max window): far above the
#: largest finite-difference step of any method (the book's h = 1e-4, jax's 1e-4 x a normal tangent)
MARGIN = 0.01

#: the three fixed inputs per item: the timed size, batch size 1 (2 for batch norm), and one
#: more regime (rank > 2, label indices, stride 2, padding)
VARIANTS = ("main", "batch-1", "other")


@dataclass(frozen=True)
class BenchCase:
    """Constructor arguments and forward inputs, each in call order, and the np.random seed."""

    init: Mapping[str, Any]
    inputs: Mapping[str, Any]
    seed: int


def _away(rng: np.random.Generator, shape, lo: float = MARGIN, hi: float = 3.0) -> np.ndarray:
    """Uniform magnitudes in [lo, hi], random signs: never within lo of 0."""
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def _one_hot(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return np.eye(c)[rng.integers(0, c, n)]


def _distinct(rng: np.random.Generator, shape) -> np.ndarray:
    """Values 0.05 apart, each (k + 1/2) * 0.05, so >= 0.025 from the zero padding: no ties in a max."""
    order = rng.permutation(int(np.prod(shape))).astype(float)
    return ((order - order.size // 2 + 0.5) * 0.05).reshape(shape)


def make_case(item: str, variant: str = "main", seed: int = 0) -> BenchCase:
    """One input for ``item``: ``variant`` picks the shapes, ``seed`` the values."""
    rng = np.random.default_rng([seed, VARIANTS.index(variant)])
    n = {"main": 8, "batch-1": 1, "other": 8}[variant]
    u = lambda shape, lo=-1.0, hi=1.0: rng.uniform(lo, hi, shape)  # noqa: E731
    s = int(rng.integers(0, 2**31))
    if item in ("MulLayer", "AddLayer"):
        shape = (2, 3, 4) if variant == "other" else (n, 20)
        return BenchCase({}, {"x": u(shape, -3, 3), "y": u(shape, -3, 3)}, s)
    if item == "Relu":
        return BenchCase({}, {"x": _away(rng, (2, 3, 4, 5) if variant == "other" else (n, 20))}, s)
    if item == "Sigmoid":
        return BenchCase({}, {"x": u((2, 3, 4, 5) if variant == "other" else (n, 20), -3, 3)}, s)
    if item == "Affine":
        shape = (8, 4, 5) if variant == "other" else (n, 20)  # rank 3: flattened to (8, 20)
        return BenchCase({"W": u((20, 10)), "b": u((10,))}, {"x": u(shape, -3, 3)}, s)
    if item == "SoftmaxWithLoss":
        t = rng.integers(0, 10, n) if variant == "other" else _one_hot(rng, n, 10)  # label indices
        return BenchCase({}, {"x": u((n, 10), -2, 2), "t": t}, s)
    if item == "TwoLayerNet":
        # weights in [-0.5, 0.5]: scores within a few units of each other, so every probability
        # stays > 1e-2 and the book's delta = 1e-7 in the log moves the gradient by < 1e-5 relative
        while True:  # hidden pre-activations keep MARGIN from ReLU's kink
            x, W1, b1 = u((n, 20)), u((20, 10), -0.5, 0.5), u((10,), -0.5, 0.5)
            if np.all(np.abs(x @ W1 + b1) > MARGIN):
                break
        t = rng.integers(0, 5, n) if variant == "other" else _one_hot(rng, n, 5)
        init = {"input_size": 20, "hidden_size": 10, "output_size": 5, "weight_init_std": 0.01}
        W2, b2 = u((10, 5), -0.5, 0.5), u((5,), -0.5, 0.5)
        return BenchCase(init, {"x": x, "t": t, "W1": W1, "b1": b1, "W2": W2, "b2": b2}, s)
    if item == "Dropout":
        shape, ratio = ((2, 3, 4, 5), 0.2) if variant == "other" else ((n, 20), 0.5)
        # x keeps away from 0, so a dropped entry is never mistaken for a kept one
        return BenchCase({"dropout_ratio": ratio}, {"x": _away(rng, shape, 0.1), "train_flg": True}, s)
    if item == "BatchNormalization":
        n = 2 if variant == "batch-1" else n  # one example has variance 0: everything hinges on eps
        shape = (4, 2, 3, 3) if variant == "other" else (n, 20)
        d = int(np.prod(shape[1:]))
        # every feature spread out (a ramp 3 apart plus noise), as the registry's strategy does
        ramp = ((np.arange(shape[0]) - (shape[0] - 1) / 2) * 3.0).reshape((-1,) + (1,) * (len(shape) - 1))
        init = {"gamma": u((d,), 0.5, 2.0), "beta": u((d,)), "momentum": 0.9,
                "running_mean": u((d,)), "running_var": u((d,), 0.5, 2.0)}
        return BenchCase(init, {"x": u(shape, -0.5, 0.5) + ramp, "train_flg": True}, s)
    if item == "Convolution":
        stride, pad, hw = (2, 1, 7) if variant == "other" else (1, 1, 8)
        init = {"W": u((4, 3, 3, 3)), "b": u((4,)), "stride": stride, "pad": pad}
        return BenchCase(init, {"x": u((2 if n > 1 else 1, 3, hw, hw), -3, 3)}, s)
    if item == "Pooling":
        pool, stride, pad, hw = (3, 1, 1, 6) if variant == "other" else (2, 2, 0, 8)
        init = {"pool_h": pool, "pool_w": pool, "stride": stride, "pad": pad}
        return BenchCase(init, {"x": _distinct(rng, (2 if n > 1 else 1, 3, hw, hw))}, s)
    raise KeyError(item)


def describe(case: BenchCase) -> str:
    """'x (8, 20), W (20, 10), b (10,)': the shapes of the differentiated arguments."""
    return ", ".join(f"{k} {tuple(np.shape(v))}" for k, v in {**case.init, **case.inputs}.items()
                     if isinstance(v, np.ndarray) and k not in ("t", "running_mean", "running_var"))


def resolve(namespace: Mapping[str, Any], item: str) -> Callable | None:
    """The class or function the layer set defines for ``item`` (Relu or ReLU), or None."""
    for name in ALIASES.get(item, (item,)):
        if callable(namespace.get(name)):
            return namespace[name]
    return None


class Runner:
    """Calls one item of one layer set on one case, with chosen values for the differentiated
    arguments (``values``: {argument: array}; everything else comes from the case)."""

    def __init__(self, cls: Callable, item: str, case: BenchCase):
        self.cls, self.item, self.case = cls, item, case
        self.grads = GRADS[item]
        self.wrt = tuple(wrt for _, wrt, _ in self.grads)
        self.loss = item in LOSS
        self.network = item in NETWORK

    def values(self) -> dict[str, np.ndarray]:
        """Fresh float copies of the case's differentiated arguments."""
        args = {**self.case.init, **self.case.inputs}
        return {k: np.array(args[k], dtype=np.float64) for k in self.wrt}

    def forward(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """(the layer, its output): a fresh layer per call. A network's output is ``loss(x, t)``
        with its params overwritten in place by ``values`` (the book's way of changing them)."""
        np.random.seed(self.case.seed)
        init = [values[k] if k in values else copy.deepcopy(v) for k, v in self.case.init.items()]
        layer = self.cls(*init)
        if self.network:
            for k in self.wrt:
                layer.params[k][...] = values[k]
            return layer, layer.loss(self.case.inputs["x"], self.case.inputs["t"])
        inputs = [values[k] if k in values else v for k, v in self.case.inputs.items()]
        return layer, layer.forward(*inputs)

    def backward(self, layer: Any, dout: Any) -> dict[str, Any]:
        """{argument: gradient} for the upstream gradient ``dout`` (a float for a loss or a network:
        their backward is called the book's way, with 1, and the result scaled by ``dout``)."""
        if self.network:
            got = layer.gradient(self.case.inputs["x"], self.case.inputs["t"])
            return {wrt: dout * np.asarray(got[name]) for name, wrt, _ in self.grads}
        reply = layer.backward(1) if self.loss else layer.backward(dout)
        out = {}
        for name, wrt, source in self.grads:
            if source == "return":
                g = reply
            elif source.startswith("return["):
                g = reply[int(source[7:-1])]
            else:
                g = getattr(layer, name)
            out[wrt] = dout * np.asarray(g) if self.loss else g
        return out

    def objective(self, values: Mapping[str, Any], dout: Any) -> float:
        """sum(forward(values) * dout): the scalar whose gradient backward(dout) is."""
        return float(np.sum(np.asarray(self.forward(values)[1], dtype=float) * dout))

    def dout(self) -> Any:
        """The upstream gradient: 1 for a loss or a network (the book's call), else random normal."""
        if self.loss or self.network:
            return 1.0
        shape = np.shape(self.forward(self.values())[1])
        return np.random.default_rng([self.case.seed, 1]).standard_normal(shape)


def book_check(runner: Runner, numerical_gradient: Callable, dout: Any, rtol: float = 1e-3,
               atol: float = 1e-5) -> bool:
    """The book's gradient check: ``numerical_gradient`` (h = 1e-4, one entry at a time, in place)
    of sum(forward * dout) for every differentiated argument, against backward(dout).

    The book prints the mean absolute difference and leaves the verdict to the reader; here an
    entry passes when |backward - numerical| <= atol + rtol * |numerical| (torch gradcheck's
    defaults, so the two methods share one criterion). A network is checked as the book's
    gradient_check.py does: params perturbed in place, ``loss`` re-evaluated, against ``gradient``.
    """
    values = runner.values()
    if runner.network:
        layer, _ = runner.forward(values)
        x, t = runner.case.inputs["x"], runner.case.inputs["t"]
        got = layer.gradient(x, t)
        numeric = {k: numerical_gradient(lambda _: layer.loss(x, t), layer.params[k]) for k in runner.wrt}
        got = {k: got[k] for k in runner.wrt}
    else:
        layer, _ = runner.forward(values)
        got = runner.backward(layer, dout)
        numeric = {k: numerical_gradient(lambda _: runner.objective(values, dout), values[k]) for k in runner.wrt}
    for k in runner.wrt:
        g = np.asarray(got[k], dtype=float)
        if g.shape != numeric[k].shape or not np.allclose(g, numeric[k], rtol=rtol, atol=atol):
            return False
    return True
