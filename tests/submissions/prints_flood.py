"""Debug prints everywhere: tens of megabytes at import, a line on every call.

Expected: graded as if silent (MulLayer full marks); what it printed is cut short in the feedback.
"""
import numpy as np

for i in range(500_000):
    print(f"debug line {i}: " + "x" * 80)


class MulLayer:
    def forward(self, x, y):
        print("forward", x, y)
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        print("backward", dout)
        return dout * self.y, dout * self.x
