"""Where grading and checking processes come from: forks of one fork server per run.

A spawned process is a fresh interpreter that imports the suite itself (0.4 s of CPU each). The
fork server imports the suite once, then forks each worker from that state: a worker costs a
fork. The server imports no JAX (JAX is imported on the first trace, ``reference/_jax.py``), runs
no thread and never touches a submission, so every worker starts from the same clean state, as a
spawned one would. Submissions never run in these processes: each worker starts its own
sandboxed child for them (``sandbox.py``).
"""
from __future__ import annotations

import multiprocessing

#: what every worker imports before its first job (the checks, the references' oracle, the registry)
PRELOAD = ["gradprop.grading", "gradprop.properties.runner", "gradprop.properties.registry"]


def context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context workers are started from."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
