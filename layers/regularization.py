"""Dropout and batch normalization (ch. 6), the book's APIs with clean semantics."""
from __future__ import annotations

import numpy as np

EPS = 10e-7  # the book's value (= 1e-6), inside the square root


class Dropout:
    """Book convention: train ``x * mask``, eval ``x * (1 - dropout_ratio)``.

    The mask comes from ``rng`` (a ``np.random.Generator``) if given, else from the global
    ``np.random``, exactly as the book draws it (so a seeded ``np.random`` reproduces it).
    """

    def __init__(self, dropout_ratio: float = 0.5, rng: np.random.Generator | None = None):
        self.dropout_ratio = dropout_ratio
        self.rng = rng
        self.mask = None
        self.train_flg = True

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.train_flg = train_flg
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        u = self.rng.random(x.shape) if self.rng is not None else np.random.rand(*x.shape)
        self.mask = u > self.dropout_ratio
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if not self.train_flg:
            return dout * (1.0 - self.dropout_ratio)  # dx = dout * (1 - ratio)
        return dout * self.mask  # dx = dout * mask


class BatchNormalization:
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` per feature; 4-D input is flattened to ``(N, -1)``.

    Train mode normalizes with the batch statistics and moves the running ones by ``momentum``;
    eval mode normalizes with the running statistics.
    """

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9,
                 running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.train_flg = True
        self.batch_size = None
        self.xc = None
        self.std = None
        self.xn = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1])
            self.running_var = np.zeros(x.shape[1])
        self.train_flg = train_flg
        self.batch_size = x.shape[0]
        if train_flg:
            mu = x.mean(axis=0)
            self.xc = x - mu
            var = np.mean(self.xc ** 2, axis=0)
            self.std = np.sqrt(var + EPS)
            # rebinding, never in place: the arrays passed to __init__ stay as they were
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            self.xc = x - self.running_mean
            self.std = np.sqrt(self.running_var + EPS)
        self.xn = self.xc / self.std
        out = self.gamma * self.xn + self.beta
        return out.reshape(self.input_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        d = dout.reshape(dout.shape[0], -1)
        self.dbeta = d.sum(axis=0)  # dbeta = sum_n dout
        self.dgamma = np.sum(d * self.xn, axis=0)  # dgamma = sum_n dout * xn
        dxn = self.gamma * d  # dxn = gamma * dout
        if self.train_flg:
            # mean and std depend on x too: dx = (dxn - mean_n(dxn) - xn * mean_n(dxn * xn)) / std
            dx = (dxn - dxn.mean(axis=0) - self.xn * np.mean(dxn * self.xn, axis=0)) / self.std
        else:
            dx = dxn / self.std  # running statistics are constants: dx = dxn / std
        return dx.reshape(self.input_shape)
