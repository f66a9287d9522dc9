"""torch.autograd.gradcheck on a numpy layer, and a straightforward grader built on it.

As a module: ``LayerFunction`` wraps one item of a numpy layer set (through ``cases.Runner``) in a
``torch.autograd.Function`` on float64 tensors; ``torch_check`` runs gradcheck on it, slow or fast
mode, with gradcheck's default tolerances (eps 1e-6, atol 1e-5, rtol 1e-3).

As a script, the baseline grader of ``benchmarks/grading.py``::

    python benchmarks/torch_gradcheck.py [--jobs J] SUBMISSION...

grades each submission in a fresh process of its own, J at a time (1 by default), as a simple
autograder would. Each process imports torch, loads the submission, runs gradcheck (slow mode,
the default) on every item with a backward that the submission defines, on one input each, and
prints one line per item:
``Affine: pass`` / ``fail`` / ``error: ...`` / ``not found``. Nothing is sandboxed or timed out:
that is what makes it straightforward.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import numpy as np
import torch

from cases import ITEMS, Runner, make_case, resolve


class LayerFunction(torch.autograd.Function):
    """forward: the numpy layer on the tensors' values; backward: the layer's own backward."""

    @staticmethod
    def forward(ctx, runner: Runner, *tensors: torch.Tensor) -> torch.Tensor:
        # views of the tensors: gradcheck moves them in place, the layer sees exactly that
        values = {k: t.detach().numpy() for k, t in zip(runner.wrt, tensors)}
        layer, out = runner.forward(values)
        ctx.runner, ctx.layer = runner, layer
        return torch.from_numpy(np.array(out, dtype=np.float64))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[Any, ...]:
        runner = ctx.runner
        dout = float(grad_out) if runner.loss or runner.network else grad_out.detach().numpy().copy()
        grads = runner.backward(ctx.layer, dout)
        return (None, *(torch.from_numpy(np.array(grads[k], dtype=np.float64)) for k in runner.wrt))


def torch_check(runner: Runner, fast_mode: bool) -> bool:
    """gradcheck over every differentiated argument at once: True if it passes. A failure or an
    error (a gradient of the wrong shape, an exception in the layer) raises."""
    inputs = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in runner.values().values())
    return torch.autograd.gradcheck(lambda *ts: LayerFunction.apply(runner, *ts), inputs, fast_mode=fast_mode)


def grade(path: str) -> int:
    """The straightforward grader: one line per item; the number of items that passed."""
    from gradprop.loader import load_layer_set  # stdlib only: no JAX in this process

    namespace = load_layer_set(path)
    passed = 0
    for item in ITEMS:
        cls = resolve(namespace, item)
        if cls is None:
            print(f"{item}: not found")
            continue
        try:
            ok = torch_check(Runner(cls, item, make_case(item, "main", seed=0)), fast_mode=False)
        except Exception as exc:  # noqa: BLE001 - a failing gradcheck raises; so does a broken layer
            print(f"{item}: fail ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
            continue
        passed += ok
        print(f"{item}: {'pass' if ok else 'fail'}")
    return passed


def grade_all(paths: list[str], jobs: int) -> int:
    """Each path graded by a fresh ``python torch_gradcheck.py PATH``, ``jobs`` at a time; what
    each printed last, in order. Exit status 1 if one of them failed to run."""
    pending, running, status = list(paths), [], 0
    while pending or running:
        while pending and len(running) < jobs:
            path = pending.pop(0)
            running.append((path, subprocess.Popen([sys.executable, __file__, path], stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True)))
        path, proc = running.pop(0)
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            print(f"{path}: exit {proc.returncode}\n{stderr}", file=sys.stderr)
            status = 1
        print(f"{path}: {(stdout.strip().splitlines() or [''])[-1]}")
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the straightforward torch-gradcheck grader")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (fresh processes)")
    parser.add_argument("submissions", nargs="+")
    args = parser.parse_args()
    if len(args.submissions) == 1 and args.jobs == 1:
        print(f"{grade(args.submissions[0])} items pass")
    else:
        sys.exit(grade_all(args.submissions, args.jobs))
