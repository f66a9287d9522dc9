"""Where grading and checking processes come from: forks of a process that has imported the suite.

A spawned process is a fresh interpreter that imports the suite itself (0.4 s of CPU each). A
worker is a fork instead, of this process itself where that is safe (``_direct``: the command
line's process, which has imported the suite to read the registry, runs no thread but its main
one and has not imported JAX, whose runtime threads a fork would copy half of), else of
``multiprocessing``'s fork server, which imports the suite once, runs no thread and imports no
JAX. Either way a worker costs a fork, every worker of a run starts from the same state, and the
grade of a submission does not depend on which (the process it is forked from has graded
nothing). Submissions never run in these processes: each worker starts its own sandboxed child
for them (``sandbox.py``).
"""
from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
from typing import Any, Callable

from . import processes
from .isolation import child_bytecode, reap_cgroups

#: what every worker imports before its first job (the checks, the references' oracle, the registry,
#: the sandbox, and gradprop's own layers, the first answer a check compares with)
PRELOAD = ["gradprop.grading", "gradprop.properties.runner", "gradprop.properties.registry", "gradprop.sandbox",
           "gradprop.layers"]


def prestart() -> None:
    """Where workers will come from the fork server: start it now, without waiting for it: it
    imports the suite while the caller goes on (reading the registry, loading a rubric), and the
    first ``start`` finds it ready."""
    if not _direct():
        _context()
        _ensure_running()


def _direct() -> bool:
    """Whether a worker can be a fork of this very process: only its main thread runs, and JAX
    (with threads of its own that Python does not see) is not imported. The command line's
    process: the fork server's imports, 0.4 s of CPU, are then not made a second time."""
    return threading.active_count() == 1 and "jax" not in sys.modules and "fork" in multiprocessing.get_all_start_methods()


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
    if _direct():
        for module in PRELOAD:  # imported here once, for every worker
            importlib.import_module(module)
        child_bytecode()  # compiled once, not by every worker's first box
        sys.stdout.flush()  # what is buffered here is written once, not again by each fork
        sys.stderr.flush()
        ctx: multiprocessing.context.BaseContext = multiprocessing.get_context("fork")
    else:
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
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a command's own handler (``grade``'s) is not a worker's
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    try:
        target(*args)
    finally:
        reap_cgroups(wait=True)
