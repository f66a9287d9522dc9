"""Three ways for one item to take the process down, and one plain exception.

Expected: Relu 0 (`exception`: os._exit), Sigmoid 0 (`exception`: killed by SIGSEGV), Affine 0
(`exception`: ValueError in backward); MulLayer and AddLayer full marks: a fault costs the item it
happens in, never the others.
"""
import os
import signal

import numpy as np


class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class AddLayer:
    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1


class Relu:
    def forward(self, x):
        os._exit(0)  # "stop here while debugging"


class Sigmoid:
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGSEGV)


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        raise ValueError("TODO: backward")
