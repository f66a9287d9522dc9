"""Tries to grade itself: makes numpy's comparisons always agree, at import and at every call.

Expected: no effect on the grade (the comparisons happen in the grader's process, not here).
MulLayer full marks; Sigmoid 0 with `wrong-gradient` (backward forgets the (1 - y) factor).
"""
import numpy as np
import numpy.testing


def _agree(*args, **kwargs):
    return True


def _silent(*args, **kwargs):
    return None


def _patch():
    for name in ("allclose", "array_equal", "array_equiv"):
        setattr(np, name, _agree)
    np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), dtype=bool)
    for name in ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal"):
        setattr(numpy.testing, name, _silent)


_patch()


class MulLayer:
    def forward(self, x, y):
        _patch()
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Sigmoid:
    def forward(self, x):
        _patch()
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        _patch()
        return dout * self.out  # should be dout * (1 - out) * out
