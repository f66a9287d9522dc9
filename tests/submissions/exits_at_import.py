"""A script left at the end of the file calls sys.exit() when imported.

Expected: every item 0 with `import-error`, and still a row in grades.csv.
"""
import sys

import numpy as np


class MulLayer:
    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


# the demo that ended the notebook
print("demo:", MulLayer().forward(np.ones(2), np.ones(2)))
sys.exit(0)
