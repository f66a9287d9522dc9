"""Relu.forward never returns (a loop whose condition never changes).

Expected: Relu 0 with `timeout` (one call's time limit, then the item stops); MulLayer full marks.
"""
import numpy as np


class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Relu:
    def forward(self, x):
        out = x.copy()
        i = 0
        while i < out.size:  # forgot i += 1
            out.flat[i] = max(out.flat[i], 0.0)
        self.mask = x <= 0
        return out

    def backward(self, dout):
        return np.where(self.mask, 0.0, dout)
