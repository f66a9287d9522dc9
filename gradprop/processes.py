"""Every process gradprop starts is started here: one place to read what each one can reach.

A Python started with ``-c`` or ``-m`` puts the working folder first on ``sys.path``: run from a
folder of submissions, a student's ``gradprop.py``, ``numpy.py`` or ``jax.py`` would be imported
into the process that grades everyone, and run from a clone after ``pip install .``, the source
tree's ``gradprop/`` would shadow the installed package. So no interpreter gradprop starts has
the working folder (or any folder of a submission's) on its path:

- the sandboxed child runs with ``-P`` (no working folder) and ``-S``, the parent's package
  folders given explicitly (``sandbox.BOOTSTRAP``), in an environment of its box's making
  (``isolation.Box.env``: ``PYTHONHASHSEED=0`` for determinism, nothing of the grader's);
- grading and checking workers are forks (``workers.py``) of the command's own process (whose
  ``sys.path`` ``gradprop/__init__.py`` has cleared of the working folder) or of a fork server,
  started by ``multiprocessing`` from this interpreter's flags and environment with
  ``PYTHONSAFEPATH=1`` (``safe_path_env``); a fork inherits what its parent imported;
- helpers (killing a uid's processes, building a wheel) run with ``-I`` as well;
- the Gradescope bundle's scripts call ``python3 -P`` (``bundle.py``).

The child's environment (``isolation.Box.env``) and limits (``_jail.py``) are set where its box
is built; what it may read and write is ``isolation.Box.command``.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any, Iterator, Sequence

#: no working folder (nor the script's folder) on sys.path, no PYTHON* variables, no user site
ISOLATED = ("-I",)
#: no working folder on sys.path; the environment is the caller's to set (the sandbox's child)
SAFE_PATH = ("-P",)


def python(*args: str, flags: Sequence[str] = ISOLATED) -> list[str]:
    """The command line of this interpreter with ``flags`` (isolated by default) and ``args``."""
    return [sys.executable, *flags, *args]


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` with no stdin: nothing gradprop starts waits for a terminal."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(list(argv), **kwargs)


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(list(argv), **kwargs)


@contextlib.contextmanager
def safe_path_env() -> Iterator[None]:
    """``PYTHONSAFEPATH=1`` while a Python is started by code that builds its own command line
    (``multiprocessing``'s fork server: this interpreter, its flags, ``-c``)."""
    old = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = old
