"""Load a layer set: one ``.py`` file, or a folder in the book's layout.

This module runs in whatever process executes the layer set (the sandbox child for submissions);
it imports nothing but the standard library so that loading costs no more than the submission does.
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import types
from pathlib import Path
from typing import Any

# Files of the book's layout, in the order their names are merged (later files win, so a
# network file that star-imports common.layers does not hide the layers it defines itself).
BOOK_FILES = (
    "common/functions.py",
    "common/util.py",
    "common/gradient.py",
    "common/layers.py",
    "ch05/layer_naive.py",
    "two_layer_net.py",
    "ch05/two_layer_net.py",
)

_counter = itertools.count()


def submission_name(path: str | os.PathLike) -> str:
    """The name a submission is reported under: the file's stem or the folder's name."""
    p = Path(path)
    return p.stem if p.is_file() or p.suffix == ".py" else p.name


def _exec_file(path: Path, module_name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_layer_set(path: str | os.PathLike) -> dict[str, Any]:
    """Import the layer set at ``path`` and return its public names.

    Exceptions raised while importing propagate unchanged: the caller reports them as
    ``import-error``.
    """
    p = Path(path).resolve()
    if p.is_file():
        # Students import sibling files (``from functions import softmax``): let them.
        sys.path.insert(0, str(p.parent))
        module = _exec_file(p, f"gradprop_submission_{next(_counter)}_{p.stem}")
        return dict(vars(module))
    if not p.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    # The book's scripts do ``sys.path.append(os.pardir)`` then ``from common.layers import *``;
    # putting the folder (and ch05/) first on the path makes both spellings work.
    for extra in (p / "ch05", p):
        if extra.is_dir():
            sys.path.insert(0, str(extra))
    names: dict[str, Any] = {}
    found = [p / rel for rel in BOOK_FILES if (p / rel).is_file()]
    if not found:
        # A flat folder of .py files: load each, in name order.
        found = sorted(f for f in p.glob("*.py") if not f.name.startswith("test_"))
    if not found:
        raise FileNotFoundError(f"{path} holds none of {', '.join(BOOK_FILES)} nor any .py file")
    for f in found:
        rel = f.relative_to(p).with_suffix("")
        dotted = ".".join(rel.parts)
        if rel.parts[0] == "common":
            # Import through the package so that ``from common.functions import *`` inside
            # layers.py finds the same module object.
            module = importlib.import_module(dotted)
        else:
            module = _exec_file(f, f"gradprop_submission_{next(_counter)}_{rel.name}")
        names.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    return names
