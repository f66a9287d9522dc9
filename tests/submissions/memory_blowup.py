"""Relu.forward keeps every batch it has seen, a megabyte at a time, without end.

Expected: Relu 0 with `exception` (MemoryError under the sandbox's memory cap); MulLayer full marks.
"""
import numpy as np

_history = []


class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Relu:
    def forward(self, x):
        while True:  # "cache" every intermediate result
            _history.append(np.ones(1 << 17))
        self.mask = x <= 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return np.where(self.mask, 0.0, dout)
