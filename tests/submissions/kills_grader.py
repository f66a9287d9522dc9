"""Kills the process that started it (the grader's worker), as soon as it is imported.

Expected: the run goes on; the other submissions are graded; this one gets a row (blank cells if
its grading process could not survive it) and the exit status says gradprop could not grade it.
"""
import os
import signal

os.kill(os.getppid(), signal.SIGKILL)


class MulLayer:
    def forward(self, x, y):
        return x * y
