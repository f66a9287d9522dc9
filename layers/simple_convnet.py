"""The convolutional network of ch. 7: conv - relu - pool - affine - relu - affine - softmax."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .conv import Convolution, Pooling
from .gradient import numerical_gradient
from .layers import Affine, Relu, SoftmaxWithLoss


class SimpleConvNet:
    """``input_dim`` is (C, H, W); ``conv_param`` has filter_num, filter_size, pad and stride. The
    pooling is 2 x 2 with stride 2; ``params`` (W1..b3) are the very arrays the layers hold."""

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size: int = 100, output_size: int = 10,
                 weight_init_std: float = 0.01, rng: np.random.Generator | None = None):
        conv_param = conv_param or {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        fn, fs = conv_param["filter_num"], conv_param["filter_size"]
        pad, stride = conv_param["pad"], conv_param["stride"]
        conv_size = (input_dim[1] + 2 * pad - fs) // stride + 1  # square input, as in the book
        pool_size = fn * (conv_size // 2) * (conv_size // 2)  # what the 2 x 2 pooling leaves
        randn = (lambda *shape: rng.standard_normal(shape)) if rng is not None else np.random.randn
        self.params = {
            "W1": weight_init_std * randn(fn, input_dim[0], fs, fs), "b1": np.zeros(fn),
            "W2": weight_init_std * randn(pool_size, hidden_size), "b2": np.zeros(hidden_size),
            "W3": weight_init_std * randn(hidden_size, output_size), "b3": np.zeros(output_size),
        }
        self.layers = OrderedDict(
            Conv1=Convolution(self.params["W1"], self.params["b1"], stride, pad),
            Relu1=Relu(),
            Pool1=Pooling(pool_h=2, pool_w=2, stride=2),
            Affine1=Affine(self.params["W2"], self.params["b2"]),  # takes (N, C, H, W), flattens it
            Relu2=Relu(),
            Affine2=Affine(self.params["W3"], self.params["b3"]),
        )
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        hits = sum(int(np.sum(np.argmax(self.predict(x[i:i + batch_size]), axis=1) == t[i:i + batch_size]))
                   for i in range(0, x.shape[0], batch_size))
        return hits / x.shape[0]

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        loss_w = lambda _: self.loss(x, t)  # noqa: E731 - params are perturbed in place
        return {key: numerical_gradient(loss_w, self.params[key]) for key in self.params}

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):  # backprop: last layer first
            dout = layer.backward(dout)
        conv, a1, a2 = self.layers["Conv1"], self.layers["Affine1"], self.layers["Affine2"]
        return {"W1": conv.dW, "b1": conv.db, "W2": a1.dW, "b2": a1.db, "W3": a2.dW, "b3": a2.db}
