"""The fully connected networks of ch. 6: any depth, weight decay, and (Extend) batch norm and dropout.

``params`` holds ``W1, b1, ..., W{L+1}, b{L+1}`` (and ``gamma{i}, beta{i}`` with batch norm), the
very arrays the layers use. The loss adds ``0.5 * lambda * sum(W^2)`` over the Affine weights;
``gradient`` adds ``lambda * W`` to each ``dW``.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .gradient import numerical_gradient
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .regularization import BatchNormalization, Dropout
from .two_layer_net import accuracy

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid}


def _scale(weight_init_std, fan_in: int) -> float:
    """The book's choices: He (sqrt(2/n)) for 'relu'/'he', Xavier (sqrt(1/n)) for 'sigmoid'/'xavier', else the number."""
    name = str(weight_init_std).lower()
    if name in ("relu", "he"):
        return np.sqrt(2.0 / fan_in)
    if name in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / fan_in)
    return float(weight_init_std)


class MultiLayerNet:
    """Affine -> activation, once per hidden layer, then Affine -> SoftmaxWithLoss."""

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int, activation: str = "relu",
                 weight_init_std="relu", weight_decay_lambda: float = 0.0, rng: np.random.Generator | None = None):
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        # the global np.random when no generator is given, as in the book (graders seed it)
        randn = (lambda *shape: rng.standard_normal(shape)) if rng is not None else np.random.randn
        sizes = [input_size, *hidden_size_list, output_size]
        self.params = {}
        for i in range(1, len(sizes)):
            self.params[f"W{i}"] = _scale(weight_init_std, sizes[i - 1]) * randn(sizes[i - 1], sizes[i])
            self.params[f"b{i}"] = np.zeros(sizes[i])
        self.layers = OrderedDict()
        for i in range(1, self.hidden_layer_num + 1):
            self._hidden(i, activation)
        last = self.hidden_layer_num + 1
        self.layers[f"Affine{last}"] = Affine(self.params[f"W{last}"], self.params[f"b{last}"])
        self.last_layer = SoftmaxWithLoss()

    def _hidden(self, i: int, activation: str) -> None:
        self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"])
        self.layers[f"Activation_function{i}"] = ACTIVATIONS[activation]()

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _decay(self) -> float:
        """0.5 * lambda * sum of W^2 over every Affine weight (not the biases)."""
        weights = (self.params[f"W{i}"] for i in range(1, self.hidden_layer_num + 2))
        return sum(0.5 * self.weight_decay_lambda * np.sum(W ** 2) for W in weights)

    def loss(self, x: np.ndarray, t: np.ndarray) -> float:
        return self.last_layer.forward(self.predict(x), t) + self._decay()

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        return accuracy(self.predict(x), t)  # MultiLayerNetExtend's predict: in eval mode

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        loss_w = lambda _: self.loss(x, t)  # noqa: E731 - params are perturbed in place
        return {key: numerical_gradient(loss_w, self.params[key]) for key in self.params}

    def _backprop(self) -> None:
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):  # backprop: last layer first
            dout = layer.backward(dout)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        self.loss(x, t)
        self._backprop()
        grads = {}
        for i in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{i}"]
            grads[f"W{i}"] = affine.dW + self.weight_decay_lambda * affine.W  # d(0.5 lambda W^2)/dW = lambda W
            grads[f"b{i}"] = affine.db
        return grads


class MultiLayerNetExtend(MultiLayerNet):
    """MultiLayerNet with, per hidden layer, BatchNorm before the activation and Dropout after it.

    ``dropout_ration`` is the book's spelling. ``predict`` and ``loss`` run in eval mode unless
    ``train_flg=True``; ``gradient`` runs in training mode.
    """

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int, activation: str = "relu",
                 weight_init_std="relu", weight_decay_lambda: float = 0.0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False, rng: np.random.Generator | None = None):
        self.use_dropout, self.dropout_ration, self.use_batchnorm = use_dropout, dropout_ration, use_batchnorm
        self.rng = rng
        super().__init__(input_size, hidden_size_list, output_size, activation, weight_init_std,
                         weight_decay_lambda, rng)

    def _hidden(self, i: int, activation: str) -> None:
        self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"])
        if self.use_batchnorm:
            width = self.params[f"b{i}"].shape[0]
            self.params[f"gamma{i}"] = np.ones(width)
            self.params[f"beta{i}"] = np.zeros(width)
            self.layers[f"BatchNorm{i}"] = BatchNormalization(self.params[f"gamma{i}"], self.params[f"beta{i}"])
        self.layers[f"Activation_function{i}"] = ACTIVATIONS[activation]()
        if self.use_dropout:
            self.layers[f"Dropout{i}"] = Dropout(self.dropout_ration, self.rng)

    def predict(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x, train_flg) if isinstance(layer, (Dropout, BatchNormalization)) else layer.forward(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False) -> float:
        return self.last_layer.forward(self.predict(x, train_flg), t) + self._decay()

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        loss_w = lambda _: self.loss(x, t, train_flg=True)  # noqa: E731 - params are perturbed in place
        return {key: numerical_gradient(loss_w, self.params[key]) for key in self.params}

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        self.loss(x, t, train_flg=True)
        self._backprop()
        grads = {}
        for i in range(1, self.hidden_layer_num + 2):
            affine = self.layers[f"Affine{i}"]
            grads[f"W{i}"] = affine.dW + self.weight_decay_lambda * affine.W  # + lambda W (weight decay)
            grads[f"b{i}"] = affine.db
            if self.use_batchnorm and i <= self.hidden_layer_num:
                bn = self.layers[f"BatchNorm{i}"]
                grads[f"gamma{i}"], grads[f"beta{i}"] = bn.dgamma, bn.dbeta
        return grads
