"""The optimizers of ch. 6: ``update(params, grads)`` changes the arrays of ``params`` in place.

In place, because a network's layers hold the very arrays of its ``params`` dict: a new array
bound to ``params[key]`` would reach the dict but not the layers. The state (velocities, sums of
squares) is kept per key, created on the first update.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-7  # the book's, outside the square root


def _zeros(params: dict) -> dict:
    """A state of zeros shaped like each parameter, created on the first update."""
    return {key: np.zeros_like(val) for key, val in params.items()}


class SGD:
    def __init__(self, lr: float = 0.01):
        self.lr = lr

    def update(self, params: dict, grads: dict) -> None:
        for key in params:
            params[key] -= self.lr * grads[key]  # p -= lr g


class Momentum:
    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.v = None

    def update(self, params: dict, grads: dict) -> None:
        if self.v is None:
            self.v = _zeros(params)
        for key in params:
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]  # v = mu v - lr g
            params[key] += self.v[key]  # p += v


class Nesterov:
    """Nesterov's momentum in the book's reformulation."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.v = None

    def update(self, params: dict, grads: dict) -> None:
        if self.v is None:
            self.v = _zeros(params)
        mu = self.momentum
        for key in params:
            self.v[key] = mu * self.v[key] - self.lr * grads[key]  # v = mu v - lr g
            params[key] += mu * mu * self.v[key] - (1 + mu) * self.lr * grads[key]  # p += mu^2 v - (1 + mu) lr g


class AdaGrad:
    def __init__(self, lr: float = 0.01):
        self.lr = lr
        self.h = None

    def update(self, params: dict, grads: dict) -> None:
        if self.h is None:
            self.h = _zeros(params)
        for key in params:
            self.h[key] = self.h[key] + grads[key] * grads[key]  # h += g^2
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPS)  # p -= lr g / (sqrt(h) + eps)


class RMSprop:
    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99):
        self.lr, self.decay_rate = lr, decay_rate
        self.h = None

    def update(self, params: dict, grads: dict) -> None:
        if self.h is None:
            self.h = _zeros(params)
        rho = self.decay_rate
        for key in params:
            self.h[key] = rho * self.h[key] + (1 - rho) * grads[key] ** 2  # h = rho h + (1 - rho) g^2
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPS)  # p -= lr g / (sqrt(h) + eps)


class Adam:
    """The book's Adam: the bias correction folded into the step size."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter = 0
        self.m = self.v = None

    def update(self, params: dict, grads: dict) -> None:
        if self.m is None:
            self.m, self.v = _zeros(params), _zeros(params)
        self.iter += 1  # one step per update, whatever the number of keys
        b1, b2, t = self.beta1, self.beta2, self.iter
        lr_t = self.lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)  # lr sqrt(1 - b2^t) / (1 - b1^t)
        for key in params:
            g = grads[key]
            self.m[key] = self.m[key] + (1 - b1) * (g - self.m[key])  # m = b1 m + (1 - b1) g
            self.v[key] = self.v[key] + (1 - b2) * (g * g - self.v[key])  # v = b2 v + (1 - b2) g^2
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + EPS)  # p -= lr_t m / (sqrt(v) + eps)
