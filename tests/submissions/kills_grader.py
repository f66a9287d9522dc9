"""Kills the process that started it (the grader's worker), as soon as it is imported.

Expected: the sandbox stops it (pid namespace, Landlock signal scope, its own uid): the run goes on,
every submission is graded, this one on what its layers compute.
"""
import os
import signal

os.kill(os.getppid(), signal.SIGKILL)


class MulLayer:
    def forward(self, x, y):
        return x * y
