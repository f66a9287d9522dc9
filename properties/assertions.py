"""The one assertion helper behind every value check, and the reproduction snippet it prints."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from gradprop.findings import Finding
from gradprop.i18n import _
from gradprop.session import Opaque

from . import diagnosis
from .diagnosis import Evidence


def literal(value: Any) -> str:
    """Python source that rebuilds ``value`` exactly (float64 arrays round-trip)."""
    if isinstance(value, np.ndarray):
        body = np.array2string(value, separator=", ", floatmode="unique", threshold=sys.maxsize,
                               max_line_width=96)
        dtype = "" if value.dtype == np.float64 else f", dtype=np.{value.dtype.name}"
        return f"np.array({body}{dtype})"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, dict):  # an optimizer's params
        return "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, np.ndarray)) for v in value):
        return "[\n    " + ",\n    ".join(literal(v) for v in value) + ",\n]"
    return repr(value)


def describe(value: Any) -> str:
    """A short description of a returned value, for messages."""
    if isinstance(value, Opaque):
        return _("an object of type {type}").format(type=value.type_name)
    if isinstance(value, np.ndarray):
        return _("an array of shape {shape} ({dtype})").format(shape=value.shape, dtype=value.dtype)
    if isinstance(value, (tuple, list)):
        shown = ", ".join(describe(v) for v in value[:8]) + (", ..." if len(value) > 8 else "")
        return _("a {kind} of {n}: ({items})").format(kind=type(value).__name__, n=len(value), items=shown)
    if type(value) is int and value.bit_length() > 64:  # its repr may be thousands of digits, or refused
        return _("an int of {bits} bits, too large for float64").format(bits=value.bit_length())
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 200 else text[:200] + '...'}"


def as_array(value: Any, what: str, tag: str) -> np.ndarray:
    """``value`` as a float64 array, or a finding saying what came back instead: whatever a
    submission returns becomes an array here or its own finding, never an error of the grader."""
    __tracebackhide__ = True
    if isinstance(value, (np.ndarray, float, int, np.number)) and not isinstance(value, bool):
        try:
            return np.asarray(value, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):  # an int beyond float64's range
            pass
    raise Finding(tag, _("{what} should be a number or a numpy array; it is {value}.").format(
        what=what, value=describe(value)))


def repro(origin: str, name: str, assignments: Mapping[str, Any], steps: list[str]) -> str:
    # ``origin`` is a module, or a comment saying where to run the snippet (a notebook)
    lines = ["import numpy as np", origin if origin.startswith("#") else f"from {origin} import {name}", ""]
    lines += [f"{k} = {literal(v)}" for k, v in assignments.items()]
    return "\n".join(lines + [""] + steps)


def _index(idx: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, idx))}]" if idx else ""


#: gradprop's own answer (its trusted numpy layers, held to the JAX reference by the suite on
#: every item, within the item's tolerance) settles a value at once when the value is within this
#: share of the tolerance of it (a sure pass: own and reference agree far more closely than the
#: other 3/4), or beyond this many tolerances of it (a sure failure). Only a value in between is
#: held against the JAX reference itself (``assert_close``'s ``quick``).
SURE_PASS = 0.25
SURE_FAIL = 2.0


def agrees(got: Any, quick: Any, rtol: float, atol: float, share: float = SURE_PASS) -> bool:
    """Whether ``got`` is within ``share`` of the tolerance of ``quick``."""
    try:
        g = np.asarray(got, dtype=np.float64)
        q = np.asarray(quick, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    if g.shape != q.shape and g.size == q.size == 1:
        g = g.reshape(q.shape)
    if g.shape != q.shape or not np.all(np.isfinite(g)) or not np.all(np.isfinite(q)):
        return False
    scale = float(np.abs(q).max()) if q.size else 0.0
    return bool((np.abs(g - q) <= share * (atol + rtol * scale)).all())


def assert_close(got: Any, expected: np.ndarray | Callable[[], np.ndarray], *, item: str, what: str,
                 against: str, rtol: float, atol: float, tag: str, reproduce: Callable[[], str], gradient: bool,
                 evidence: Evidence | Callable[[str], Evidence] | None = None, quick: Any = None) -> None:
    """Raise a Finding unless ``got`` matches ``expected``: |got - expected| <= atol + rtol*max|expected|.

    The message names the item and the value (``dW``), the worst entry, yours vs expected, how
    many entries are off, the tolerance, a hint when one classic slip explains the value (from
    ``evidence``, see ``diagnosis``), and a snippet that reproduces it (``reproduce`` builds it,
    on failure only).

    ``quick``: gradprop's own answer, when there is one. A value it settles (``SURE_PASS``,
    ``SURE_FAIL``) is judged, and explained, against it; only a value in between asks for
    ``expected``, the JAX reference's answer (which may be given as a function, traced and
    compiled for this shape only then). ``evidence`` may be a function of which answer explains
    the value: "own" or "reference".
    """
    __tracebackhide__ = True
    which = "reference"
    if quick is not None and not np.all(np.isfinite(np.asarray(quick, dtype=np.float64))):
        quick = None  # no answer to settle anything with: the reference's
    if quick is not None:
        if agrees(got, quick, rtol, atol):
            return
        q = np.asarray(quick, dtype=np.float64)
        shape_only = np.shape(got) != q.shape and not (np.size(got) == q.size == 1)
        if shape_only or not agrees(got, quick, rtol, atol, SURE_FAIL):
            which, expected = "own", q
            against = _("{against}, as gradprop's own layers work it out (they agree with it to round-off)").format(
                against=against)
    expected = np.asarray(expected() if callable(expected) else expected, dtype=np.float64)
    evidence = evidence(which) if callable(evidence) else evidence
    got = as_array(got, f"{item}: {what}", tag)
    if got.shape != expected.shape and got.size == expected.size == 1:
        got = got.reshape(expected.shape)  # a loss returned as [0.3] instead of 0.3
    if got.shape != expected.shape:
        shape_tag = "wrong-shape" if gradient else tag
        text = (_("{item}: {what} has shape {shape}, expected {expected} (the shape of what it differentiates).")
                if gradient else
                _("{item}: {what} has shape {shape}, expected {expected} (the shape of what it computes)."))
        found = _hint(got, evidence, rtol, atol)
        raise Finding(shape_tag, text.format(item=item, what=what, shape=got.shape, expected=expected.shape)
                      + ("\n" + found[1] if found else "") + reproduce_block(reproduce()),
                      _candidates(got, evidence, rtol, atol), found)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    bound = atol + rtol * scale
    if (np.abs(got - expected) <= bound).all():  # the common case (a nan or inf is never <=)
        return
    bad_nonfinite = ~np.isfinite(got) & np.isfinite(expected)
    err = np.where(np.isfinite(got), np.abs(got - expected), np.inf)
    off = bad_nonfinite | (err > bound)
    if not off.any():
        return
    tail = reproduce_block(reproduce())  # built only for a failure: printing arrays costs
    worst = np.unravel_index(int(np.argmax(np.where(off, err, -1.0))), got.shape) if got.ndim else ()
    found = "non-finite" if bad_nonfinite.any() else tag
    if found == "non-finite":
        worst = np.unravel_index(int(np.argmax(bad_nonfinite)), got.shape) if got.ndim else ()
    # the value's name starts ``what`` in every language ("forward output", "forward の出力（...）")
    name = re.match(r"[^\s:（]*", what).group()
    raise Finding(found, "\n".join([
        _("{item}: {what} is wrong at {off} of {size} entries.").format(item=item, what=what, off=int(off.sum()),
                                                                         size=got.size),
        _("  worst entry {entry}: yours {yours}, expected {expected}").format(
            entry=name + _index(tuple(int(i) for i in worst)), yours=repr(float(got[worst])),
            expected=repr(float(expected[worst]))),
        _("  checked against: {against}").format(against=against),
        _("  tolerance: |yours - expected| <= {atol} + {rtol} * max|expected| = {bound}").format(
            atol=f"{atol:g}", rtol=f"{rtol:g}", bound=f"{bound:.3g}"),
    ]) + ("\n" + found[1] if (found := _hint(got, evidence, rtol, atol)) else "") + tail,
        _candidates(got, evidence, rtol, atol), found)


def _hint(got: np.ndarray, evidence: Evidence | None, rtol: float, atol: float) -> diagnosis.Hint | None:
    return None if evidence is None else diagnosis.find_hint(got, evidence, rtol, atol)


def _candidates(got: np.ndarray, evidence: Evidence | None, rtol: float, atol: float) -> frozenset[str] | None:
    return None if evidence is None else diagnosis.candidates(got, evidence, rtol, atol)


def origin_of(path: str | None) -> str:
    """The import line a student would write for the reproduction snippet."""
    if path is None:
        return "gradprop.layers"
    p = Path(path)
    if p.suffix == ".ipynb":
        return _("# run this in a new cell at the end of {file}, after its definition cells").format(file=p.name)
    return p.stem if p.suffix == ".py" else "common.layers"


def reproduce_block(snippet: str, heading: str | None = None) -> str:
    """The tail of every finding message: the snippet, indented under a heading ("Reproduce")."""
    heading = heading or _("Reproduce")
    body = "\n".join("    " + line if line else "" for line in snippet.splitlines())
    return f"\n\n{heading}:\n{body}"
