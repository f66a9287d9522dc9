"""A notebook cell pasted half-way: the file does not parse.

Expected: every item 0 with `import-error`; the feedback names the SyntaxError and its line.
"""
import numpy as np


class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Relu:
    def forward(self, x)
        self.mask = x <= 0
        return np.maximum(x, 0)
