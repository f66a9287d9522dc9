"""Take the definitions out of a module's or a notebook's code, and say what was left out.

A layer set is graded on what it *defines*: imports, functions, classes and constants. Whatever
else its top level does (train a network, load MNIST, plot, print a demo, run an IPython magic)
is left out and named, so that grading never runs it and the student knows what was not taken.

Notebook cells are counted from 1 over every cell, markdown included, as a reader scrolling the
notebook counts them (not Jupyter's ``In [N]``, which counts runs).
Standard library only (``json``, ``ast``, and ``i18n`` for its sentences): this runs in the sandbox child.
"""
from __future__ import annotations

import ast
import builtins
import json
import os
from dataclasses import dataclass, field

from .i18n import N_, _, plural

_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass
class Split:
    """One piece of code (a module or a cell), cut into what is kept and what is left out."""

    kept: ast.Module
    #: (line, why) of each top-level statement left out, in order
    left_out: list[tuple[int, str]] = field(default_factory=list)
    #: names the kept code defines (not imports) at its top level: name -> is it a class
    defines: dict[str, bool] = field(default_factory=dict)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    if isinstance(node, ast.Call):
        inner = _dotted(node.func)
        return f"{inner}()" if inner else ""
    if isinstance(node, ast.Subscript):
        inner = _dotted(node.value)
        return f"{inner}[...]" if inner else ""
    return ""


#: what a statement that calls something does, by its kind: without a callee to name, with one,
#: and with its first argument too (when that is a name)
_CALLS = {
    "code": (N_("it calls a function"), N_("it calls {callee}"), N_("it calls {callee} on {arg}")),
    "loop": (N_("it runs a loop"), N_("it runs a loop that calls {callee}"),
             N_("it runs a loop that calls {callee} on {arg}")),
    "with": (N_("it opens a with block"), N_("it opens a with block that calls {callee}"),
             N_("it opens a with block that calls {callee} on {arg}")),
}


def _call_text(call: ast.Call, kind: str = "code") -> str:
    """``it calls network.gradient on x_train``: the callee, and the first argument when it is a name."""
    callee = _dotted(call.func)
    arg = _dotted(call.args[0]) if call.args and isinstance(call.args[0], (ast.Name, ast.Attribute, ast.Subscript)) \
        else ""
    return _(_CALLS[kind][bool(callee) + bool(callee and arg)]).format(callee=callee, arg=arg)


def _first_call(node: ast.AST) -> ast.Call | None:
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    return min(calls, key=lambda c: (c.lineno, c.col_offset)) if calls else None


def _is_main_guard(stmt: ast.stmt) -> bool:
    """``if __name__ == "__main__":``"""
    test = stmt.test if isinstance(stmt, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _is_path_setup(stmt: ast.stmt) -> bool:
    """``sys.path.append(os.pardir)``: the book's scripts need it before ``from common...``."""
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and _dotted(stmt.value.func) in ("sys.path.append", "sys.path.insert"))


def _targets(stmt: ast.stmt) -> list[ast.expr]:
    if isinstance(stmt, ast.Assign):
        return list(stmt.targets)
    return [stmt.target]  # AnnAssign


def _names_of(target: ast.expr) -> list[str] | None:
    """The names an assignment target binds, or None when it stores into something (``x[0] = ...``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        names: list[str] = []
        for elt in target.elts:
            inner = _names_of(elt)
            if inner is None:
                return None
            names += inner
        return names
    return None


def _why_not_constant(value: ast.expr | None, known: set[str]) -> str | None:
    """None when ``value`` is a constant expression over names already kept; else why not."""
    if value is None:
        return None
    call = _first_call(value)
    if call is not None:
        return _call_text(call)
    for node in ast.walk(value):
        if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return _("it is not a plain constant")
        if isinstance(node, ast.Name) and not ({node.id, "*"} & known) and node.id not in _BUILTIN_NAMES:
            return _("it uses {name}, which is left out").format(name=node.id)
    return None


def _why_not(stmt: ast.stmt, known: set[str], notebook: bool) -> str | None:
    """None when ``stmt`` only defines things; else a short reason in a student's words."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass)):
        return None
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return None  # a docstring
    if _is_path_setup(stmt):
        return None
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        if any(_names_of(t) is None for t in _targets(stmt)):
            return _("it stores into an object, it does not define a name")
        return _why_not_constant(stmt.value, known)
    if isinstance(stmt, ast.If) and _is_main_guard(stmt):
        return _("it is the main block") if notebook else None
    if isinstance(stmt, ast.Try) or (isinstance(stmt, ast.If) and _why_not_constant(stmt.test, known) is None):
        bodies = [stmt.body, stmt.orelse] + ([h.body for h in stmt.handlers] + [stmt.finalbody]
                                             if isinstance(stmt, ast.Try) else [])
        for body in bodies:
            for inner in body:
                why = _why_not(inner, known, notebook)
                if why is not None:
                    return why
        return None
    if isinstance(stmt, ast.Delete):
        return _("it deletes names")
    kind = {ast.For: "loop", ast.While: "loop", ast.With: "with"}.get(type(stmt), "code")
    # a loop's body says what it does better than its ``range(...)``
    body = _first_call(ast.Module(body=stmt.body, type_ignores=[])) if isinstance(stmt, (ast.For, ast.While)) else None
    call = body or _first_call(stmt)
    if call is not None:
        return _call_text(call, kind)
    if isinstance(stmt, ast.Expr):
        return _("it shows a value")
    return _(_CALLS[kind][0]) if kind != "code" else _("it runs code")


def _bound(stmt: ast.stmt, imports: bool = True) -> dict[str, bool]:
    """Names a kept statement binds at the top level: name -> is it a class."""
    if isinstance(stmt, ast.ClassDef):
        return {stmt.name: True}
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {stmt.name: False}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        if not imports:
            return {}
        # ``*`` stands for whatever a star import brings: later constants may use those names
        return {(a.asname or a.name).split(".")[0]: False for a in stmt.names}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return {n: False for t in _targets(stmt) for n in (_names_of(t) or [])}
    out: dict[str, bool] = {}
    for body in ("body", "orelse", "finalbody"):
        for inner in getattr(stmt, body, []):
            out.update(_bound(inner, imports))
    for handler in getattr(stmt, "handlers", []):
        for inner in handler.body:
            out.update(_bound(inner, imports))
    return out


def split(tree: ast.Module, *, notebook: bool = False, known: set[str] | None = None) -> Split:
    """Keep the statements of ``tree`` that only define things. ``known`` (updated in place) holds
    the names kept so far, so that a notebook's later cells may use an earlier cell's constants."""
    known = set() if known is None else known
    out = Split(ast.Module(body=[], type_ignores=[]))
    for stmt in tree.body:
        why = _why_not(stmt, known, notebook)
        if why is None:
            if not _is_main_guard(stmt):
                out.kept.body.append(stmt)
                out.defines.update(_bound(stmt, imports=False))
                known.update(_bound(stmt))
        else:
            out.left_out.append((stmt.lineno, why))
    return out


def describe_left_out(where: str, left_out: list[tuple[int, str]], kept_any: bool) -> str:
    """``cell 12 skipped: it calls network.gradient on x_train``."""
    line, why = left_out[0]
    if not kept_any:
        return _("{where} skipped: {why} (line {line})").format(where=where, why=why, line=line)
    if len(left_out) == 1:
        return _("{where}: took its definitions only; left out line {line} ({why})").format(
            where=where, line=line, why=why)
    return plural("{where}: took its definitions only; left out line {line} ({why}) and {more} more statement",
                  "{where}: took its definitions only; left out line {line} ({why}) and {more} more statements",
                  len(left_out) - 1).format(where=where, line=line, why=why, more=len(left_out) - 1)


# --- notebooks ---------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One code cell: its number, its source without IPython magics, and what was said about it."""

    number: int
    source: str
    #: lines that were IPython magics or shell escapes (blanked, so line numbers stay the cell's)
    magics: list[int] = field(default_factory=list)
    #: a %%cell magic makes the whole cell something other than Python
    cell_magic: str = ""


def _strip_magics(text: str) -> tuple[str, list[int], str]:
    lines = text.split("\n")
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("%%"):
        return "", [], first.split()[0]
    blanked = []
    for i, line in enumerate(lines):
        s = line.lstrip()
        # %magic and !shell: IPython syntax, not Python
        if s.startswith(("%", "!")):
            lines[i] = ""
            blanked.append(i + 1)
    return "\n".join(lines), blanked, ""


def read_cells(path: str | os.PathLike) -> list[Cell]:
    """The code cells of the notebook at ``path`` (nbformat 4, or 3's worksheets)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict):
        raise ValueError(_("{file} is not a Jupyter notebook").format(file=os.path.basename(path)))
    raw = doc.get("cells")
    if raw is None:  # nbformat 3
        raw = [c for ws in doc.get("worksheets", []) for c in ws.get("cells", [])]
    cells = []
    for number, c in enumerate(raw, 1):  # every cell counts, markdown too, as a reader counts them
        if not isinstance(c, dict) or c.get("cell_type") != "code":
            continue
        src = c.get("source", c.get("input", ""))
        text = "".join(src) if isinstance(src, list) else str(src)
        source, magics, cell_magic = _strip_magics(text)
        cells.append(Cell(number, source, magics, cell_magic))
    return cells


def cell_filename(path: str, number: int) -> str:
    """The file name a cell's code is compiled under; ``where`` turns it back into words."""
    return f"{path}#cell{number}"


def where(filename: str, line: int) -> str:
    """``line 3 of notes.py`` or, for a notebook cell, ``cell 7, line 3 of notes.ipynb``."""
    base = os.path.basename(filename)
    name, sep, cell = base.rpartition("#cell")
    if sep and cell.isdigit():
        return _("cell {cell}, line {line} of {file}").format(cell=cell, line=line, file=name)
    return _("line {line} of {file}").format(line=line, file=base)


def cell_of(file: str, number: int) -> str:
    """``notes.ipynb cell 7``: a notebook's cell, in the notes on how the notebook was read."""
    return _("{file} cell {cell}").format(file=file, cell=number)


def cell_line(filename: str, line: int) -> str:
    """The text of ``line`` of the cell ``filename`` names (see ``cell_filename``), or "".

    Used by the grading process on a submission's notebook: it only reads a regular file of
    reasonable size and parses it as JSON, never runs it.
    """
    path, sep, number = filename.rpartition("#cell")
    if not sep or not number.isdigit() or not os.path.isfile(path) or os.path.getsize(path) > 64 * 1024 * 1024:
        return ""
    try:
        cell = next(c for c in read_cells(path) if c.number == int(number))
        lines = cell.source.split("\n")
        return lines[line - 1].strip()[:200] if 1 <= line <= len(lines) else ""
    except Exception:  # noqa: BLE001 - the submission's notebook, read in the grader: any malformed one
        return ""
