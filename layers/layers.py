"""The layers of ch. 5: forward and backward side by side, each backward line stating its math."""
from __future__ import annotations

import numpy as np

from .functions import cross_entropy_error, softmax


class MulLayer:
    """out = x * y"""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        dx = dout * self.y  # d(xy)/dx = y
        dy = dout * self.x  # d(xy)/dy = x
        return dx, dy


class AddLayer:
    """out = x + y"""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        dx = dout * 1  # d(x+y)/dx = 1 (a new array, never dout itself)
        dy = dout * 1  # d(x+y)/dy = 1
        return dx, dy


class Relu:
    """out = max(x, 0)"""

    def __init__(self):
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        return np.where(self.mask, 0.0, x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self.mask, 0.0, dout)  # dx = dout where x > 0, else 0


ReLU = Relu  # the spelling many notes use


class Sigmoid:
    """out = 1 / (1 + exp(-x))"""

    def __init__(self):
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp of a negative number only: finite for any x
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.out * (1.0 - self.out)  # dx = dout * y (1 - y)


class Affine:
    """out = x @ W + b, for x of any rank >= 2 (flattened to (N, -1))."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.W, self.b = W, b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = dout @ self.W.T  # dx = dout W^T
        self.dW = self.x.T @ dout  # dW = x^T dout
        self.db = np.sum(dout, axis=0)  # db = sum of dout over the batch
        return dx.reshape(self.original_x_shape)


class SoftmaxWithLoss:
    """loss = cross_entropy_error(softmax(x), t), mean over the batch."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        y = self.y.reshape(-1, self.y.shape[-1])
        batch_size = y.shape[0]
        t = np.asarray(self.t).reshape(batch_size, -1)
        if t.size == y.size:  # one-hot labels
            dx = y - t  # d loss / dx = softmax(x) - t, per example
        else:  # label indices
            dx = y.copy()
            dx[np.arange(batch_size), t.reshape(-1)] -= 1
        return (dout * dx / batch_size).reshape(self.y.shape)  # mean over the batch, scaled by dout
