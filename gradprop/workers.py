"""Where grading and checking processes come from: forks of one fork server per process.

A spawned process is a fresh interpreter that imports the suite itself (0.4 s of CPU each). The
fork server imports the suite once, then forks each worker from that state: a worker costs a
fork. The server imports no JAX (JAX is imported on the first trace, ``reference/_jax.py``), runs
no thread and never touches a submission, so every worker starts from the same clean state, as a
spawned one would. Submissions never run in these processes: each worker starts its own
sandboxed child for them (``sandbox.py``).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
from typing import Any, Callable

from . import processes
from .isolation import reap_cgroups

#: what every worker imports before its first job (the checks, the references' oracle, the registry,
#: the sandbox, and gradprop's own layers, the first answer a check compares with)
PRELOAD = ["gradprop.grading", "gradprop.properties.runner", "gradprop.properties.registry", "gradprop.sandbox",
           "gradprop.layers"]


def prestart() -> None:
    """Start the fork server now, without waiting for it: it imports the suite while the caller
    goes on (reading the registry, loading a rubric), and the first ``start`` finds it ready."""
    _context()
    _ensure_running()


def _ensure_running() -> None:
    """The fork server, started (again, if it died) with no working folder on its sys.path
    (``processes.safe_path_env``): it imports the suite, and every worker inherits that."""
    with processes.safe_path_env():
        multiprocessing.forkserver.ensure_running()


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def start(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    """A started worker running ``target(*args)`` (a daemon: it dies with its parent)."""
    ctx = _context()
    _ensure_running()
    proc = ctx.Process(target=_run, args=(dict(os.environ), os.getcwd(), target, *args), daemon=True)
    proc.start()
    return proc


def _run(environ: dict[str, str], cwd: str, target: Callable[..., None], *args: Any) -> None:
    """In the worker: the caller's environment and folder as they are now (the fork server has
    them as they were when it started, maybe several runs ago), then ``target``, then what its
    boxes left. A forked process ends without running atexit handlers, so the cgroups a box
    leaves to be removed later are removed here; the caller sweeps after a worker it killed."""
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    try:
        target(*args)
    finally:
        reap_cgroups(wait=True)
