"""Load a layer set: a ``.py`` file, a notebook, or a folder as people really lay it out.

A folder is read by what its files *define* (parsed with ``ast``, never run to find out): the
files that define an item are imported, with only their definitions (a training script's top
level never runs), and each item is taken from the file that defines it. Files that do more
than define things and define no item are not imported at all, and are named. When two files define
one item, the one the folder's own network file imports wins. Everything skipped or chosen is
said in ``Loaded.notes``, in sentences for the student.

This module runs in whatever process executes the layer set (the sandbox child for submissions);
it imports nothing but the standard library (and ``i18n``, for its notes in the student's language)
so that loading costs no more than the submission does.
"""
from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import itertools
import linecache
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import notebook
from .i18n import _, plural

#: every item's accepted names, as in the registry (tests/test_loader.py keeps the two in step)
BOOK_ITEMS: tuple[tuple[str, ...], ...] = (
    ("MulLayer",), ("AddLayer",), ("Relu", "ReLU"), ("Sigmoid",), ("Affine",), ("softmax",),
    ("cross_entropy_error",), ("SoftmaxWithLoss",), ("TwoLayerNet",), ("Dropout",),
    ("BatchNormalization",), ("Convolution",), ("Pooling",),
    ("SGD",), ("Momentum",), ("Nesterov",), ("AdaGrad",), ("RMSprop",), ("Adam",),
    ("MultiLayerNet",), ("MultiLayerNetExtend",), ("SimpleConvNet",), ("im2col",), ("col2im",),
)

# When two files define one item and no network file decides: the book's own files first.
BOOK_FILES = (
    "common/layers.py",
    "common/functions.py",
    "common/util.py",
    "common/optimizer.py",
    "common/multi_layer_net.py",
    "common/multi_layer_net_extend.py",
    "ch05/layer_naive.py",
    "ch05/two_layer_net.py",
    "two_layer_net.py",
    "ch07/simple_convnet.py",
)
_CHAPTER5 = re.compile(r"(^|/)(ch|chapter)[_ -]?0?5(/|$)", re.IGNORECASE)
_NOT_SUBMISSION = {"__pycache__", "node_modules", "site-packages", "dist-packages", "venv", "env"}
_MAX_DEPTH = 5
_MAX_FILES = 2000

_counter = itertools.count()


@dataclass
class Loaded:
    """A loaded layer set: its names, where its items came from, and what was said while loading."""

    namespace: dict[str, Any]
    #: defined name of each item found -> the file it was taken from, relative to the submission (posix)
    origins: dict[str, str] = field(default_factory=dict)
    #: sentences for the student: files or cells skipped and why, two files defining one item
    notes: list[str] = field(default_factory=list)


def submission_name(path: str | os.PathLike) -> str:
    """The name a submission is reported under: the file's stem or the folder's name."""
    p = Path(path)
    return p.stem if p.is_file() or p.suffix in (".py", ".ipynb") else p.name


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def match_name(wanted: Sequence[str], defined: Mapping[str, bool]) -> str | None:
    """The name under which ``defined`` (name -> is it a class) holds the item ``wanted`` names.

    An exact name first; else the one defined name that differs only in case and underscores
    (``ReLu``, ``Mullayer``, ``soft_max_with_loss``) and is of the item's kind: a class for a
    layer (capitalised in the book), a function for a function. Two such names, or only a
    private one (``_Relu``): no guess.
    """
    for name in wanted:
        if name in defined:
            return name
    is_class = wanted[0][:1].isupper()
    keys = {_key(w) for w in wanted}
    hits = [n for n, c in defined.items() if c == is_class and _key(n) in keys and not n.startswith("_")]
    return hits[0] if len(hits) == 1 else None


def _kinds(namespace: Mapping[str, Any]) -> dict[str, bool]:
    return {k: isinstance(v, type) for k, v in namespace.items() if type(k) is str and callable(v)}


def _under(path: str, root: str) -> bool:
    return os.path.realpath(path).startswith(root)


def _own(path: str, root: str) -> bool:
    """Is ``path`` one of the submission's files (not an installed package in a venv beside it)?"""
    if not _under(path, root):
        return False
    parts = Path(_rel(path, root)).parts[:-1]
    return not any(p.startswith(".") or p in _NOT_SUBMISSION or p.endswith(".egg-info") for p in parts)


def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(os.path.realpath(path), root)).as_posix()


# --- importing a submission's modules with their definitions only ---------------------------------


class _DefinitionsOnly(importlib.machinery.SourceFileLoader):
    """Imports a module of the submission with only its top-level definitions."""

    notes: list[str]
    root: str

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        tree = ast.parse(self.get_data(path), path)  # a SyntaxError is the importer's to report
        part = notebook.split(tree)
        if part.left_out:
            self.notes.append(notebook.describe_left_out(_rel(path, self.root), part.left_out, bool(part.kept.body)))
        return compile(part.kept, path, "exec", dont_inherit=True)


class _Finder:
    """Sends imports of the submission's own files through ``_DefinitionsOnly``. A meta path finder
    needs only ``find_spec``; not subclassing ``importlib.abc`` spares every sandboxed child the
    import of ``importlib.abc`` and ``importlib.resources`` (5 ms of its 100 ms start)."""

    def __init__(self, root: str, notes: list[str]):
        self.root, self.notes = root, notes

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not (spec.origin or "").endswith(".py") or not _own(spec.origin, self.root):
            return None
        return self.spec(fullname, spec.origin, spec.submodule_search_locations)

    def spec(self, fullname: str, origin: str, locations: Any = None) -> Any:
        loader = _DefinitionsOnly(fullname, origin)
        loader.notes, loader.root = self.notes, self.root
        return importlib.util.spec_from_file_location(fullname, origin, loader=loader,
                                                      submodule_search_locations=locations)


def _forget(root: str) -> None:
    """Drop what earlier loads in this process imported from their folders (a helper of the same
    name elsewhere must not stand in for this folder's) and anything named like this folder's."""
    tops = {p.stem if p.suffix == ".py" else p.name for p in Path(root).iterdir()}
    keep = set(sys.stdlib_module_names) | {"numpy", "gradprop", "jax", "hypothesis", "pytest", "_pytest"}
    real: dict[str, str] = {}  # each folder resolved once: a test process holds thousands of modules
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        if top in keep:
            continue
        file = getattr(module, "__file__", None) or ""
        folder, base = os.path.split(os.path.abspath(file)) if file else ("", "")
        if file and folder not in real:
            real[folder] = os.path.realpath(folder)
        ours = isinstance(getattr(module, "__loader__", None), _DefinitionsOnly)
        if ours or top in tops or (file and os.path.join(real[folder], base).startswith(root)):
            del sys.modules[name]


def _safe(stem: str) -> str:
    return re.sub(r"\W", "_", stem)


def _exec_file(path: Path, module_name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(_("cannot load {path}").format(path=path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _exec_notebook(path: Path, root: str, notes: list[str]) -> types.ModuleType:
    """Run a notebook's definition cells, in order, in one module (as one kernel would).

    A cell whose definitions raise (``from common.layers import *`` with no ``common``) is named and
    passed over, as running the cells one by one would leave it; the later cells still run.
    """
    module = types.ModuleType(f"gradprop_notebook_{next(_counter)}_{_safe(path.stem)}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    rel, known = _rel(str(path), root), set()
    for cell in notebook.read_cells(path):
        where = notebook.cell_of(rel, cell.number)
        if cell.cell_magic:
            notes.append(_("{where} skipped: it is a {magic} cell, not Python").format(where=where,
                                                                                     magic=cell.cell_magic))
            continue
        if cell.magics:
            notes.append(plural("{where}: left out line {lines} (IPython magic or shell command)",
                                "{where}: left out lines {lines} (IPython magic or shell command)",
                                len(cell.magics)).format(where=where, lines=", ".join(map(str, cell.magics))))
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            notes.append(_("{where} skipped: it is not valid Python (line {line}: {error})").format(
                where=where, line=exc.lineno, error=exc.msg))
            continue
        part = notebook.split(tree, notebook=True, known=known)
        if part.left_out:
            notes.append(notebook.describe_left_out(where, part.left_out, bool(part.kept.body)))
        if not part.kept.body:
            continue
        filename = notebook.cell_filename(str(path), cell.number)
        lines = cell.source.splitlines(True)
        linecache.cache[filename] = (len(cell.source), None, lines, filename)
        for stmt in part.kept.body:  # one by one: a failed line costs what depends on it, not the cell
            try:
                exec(compile(ast.Module([stmt], []), filename, "exec", dont_inherit=True), module.__dict__)
            except Exception as exc:  # noqa: BLE001 - the cell's own error; SystemExit still stops the load
                notes.append(_failed_statement(stmt, exc, where, module.__dict__))
    return module


def _failed_statement(stmt: ast.stmt, exc: BaseException, where: str, namespace: dict[str, Any]) -> str:
    """A note for a notebook statement that raised; a failed import leaves, under each name it
    would have bound, a stand-in that raises its error when used (``import-error``)."""
    text = f"{type(exc).__name__}: {exc}"
    line = stmt.lineno
    if isinstance(stmt, (ast.Import, ast.ImportFrom)) and isinstance(exc, ImportError):
        for alias in stmt.names:
            if alias.name != "*":
                name = alias.asname or alias.name.split(".")[0]
                namespace.setdefault(name, _missing(name, _("{where}, line {line}: {error}").format(
                    where=where, line=line, error=text)))
            else:  # the names it would have brought are unknown: a NameError later points back here
                failed = _("{where}, line {line}: {code} failed ({error})")
                namespace.setdefault(FAILED_IMPORTS, []).append(failed.format(where=where, line=line,
                                                                              code=ast.unparse(stmt), error=text))
        return _("{where}, line {line}: the import failed ({error}); what uses it fails with import-error, the rest "
                 "of the cell was kept").format(where=where, line=line, error=text)
    names = ", ".join(notebook.split(ast.Module([stmt], [])).defines)
    if not names:
        return _("{where}, line {line}: running it raised {error}; it defines nothing, the rest of the cell was "
                 "kept").format(where=where, line=line, error=text)
    return _("{where}, line {line}: running it raised {error}; it defines {names}, the rest of the cell was "
             "kept").format(where=where, line=line, error=text, names=names)


#: in a notebook's namespace: the star imports that failed (``from common.layers import *``)
FAILED_IMPORTS = "__gradprop_failed_imports__"


def _missing(name: str, error: str) -> Any:
    """What stands for a name a failed import would have bound: using it raises that error."""
    class Missing:
        def __getattr__(self, attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise ImportError(error)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise ImportError(error)

    Missing.__name__ = Missing.__qualname__ = f"missing {name}"
    return Missing()


def _load_file(path: Path, root: str, notes: list[str]) -> types.ModuleType:
    if path.suffix == ".ipynb":
        return _exec_notebook(path, root, notes)
    return _exec_file(path, f"gradprop_submission_{next(_counter)}_{path.stem}")


# --- reading a folder ------------------------------------------------------------------------------


@dataclass
class _Source:
    rel: str
    defines: dict[str, bool]
    left_out: list[tuple[int, str]]
    error: SyntaxError | None = None
    #: the top-level names of its absolute imports (``common`` for ``from common.layers import *``)
    imports: frozenset[str] = frozenset()


#: ``class Affine`` / ``def softmax`` at the top of a file that does not parse
_TOP_DEFINITION = re.compile(rb"^(class|def)\s+([A-Za-z_]\w*)", re.MULTILINE)


def _broken(data: bytes, error: SyntaxError, rel: str) -> _Source:
    """A file that does not parse: what it seems to define (so that its items fail with its syntax
    error rather than "not defined")."""
    defines = {m.group(2).decode(): m.group(1) == b"class" for m in _TOP_DEFINITION.finditer(data)}
    return _Source(rel, defines, [], error)


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def _read_source(path: Path, rel: str) -> _Source:
    if path.suffix == ".ipynb":
        defines: dict[str, bool] = {}
        try:
            cells = notebook.read_cells(path)
        except (ValueError, OSError) as exc:
            return _Source(rel, {}, [], SyntaxError(_("not a notebook ({error})").format(error=exc)))
        known: set[str] = set()
        imports: set[str] = set()
        for cell in cells:
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue  # named when the notebook is loaded
            defines.update(notebook.split(tree, notebook=True, known=known).defines)
            imports |= _imports_of(tree)
        return _Source(rel, defines, [], imports=frozenset(imports))
    data = path.read_bytes()
    try:
        tree = ast.parse(data, str(path))
    except (SyntaxError, ValueError) as exc:
        return _broken(data, exc if isinstance(exc, SyntaxError) else SyntaxError(str(exc)), rel)
    part = notebook.split(tree)
    return _Source(rel, part.defines, part.left_out, imports=_imports_of(tree))


def _imports_of(tree: ast.AST) -> frozenset[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return frozenset(found)


def _sources(root: Path) -> list[_Source]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _NOT_SUBMISSION
                             and not d.endswith(".egg-info") and depth < _MAX_DEPTH)
        for name in sorted(filenames):
            if name.endswith((".py", ".ipynb")) and not name.startswith(("test_", "setup.py", "conftest.py")):
                path = Path(dirpath) / name
                found.append(_read_source(path, path.relative_to(root).as_posix()))
                if len(found) >= _MAX_FILES:
                    return found
    return found


def _rank(rel: str) -> tuple:
    """Which of two files defining one item to prefer when no network file says."""
    book = BOOK_FILES.index(rel) if rel in BOOK_FILES else len(BOOK_FILES)
    return (book, rel.endswith(".ipynb"), not _CHAPTER5.search(rel.rpartition("/")[0]), rel.count("/"), rel)


def module_name(rel: str) -> str | None:
    """``commons.layers`` for ``commons/layers.py``; None when the path is not importable by name."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _import(root: Path, src: _Source, finder: _Finder, notes: list[str]) -> types.ModuleType:
    path = root / src.rel
    if src.rel.endswith(".ipynb"):
        return _exec_notebook(path, finder.root, notes)
    dotted = module_name(src.rel)
    if dotted is not None and (root / "__init__.py").is_file() and root.name.isidentifier():
        # the folder is a package itself: its modules may import each other relatively
        if str(root.parent) not in sys.path:
            sys.path.append(str(root.parent))
        return importlib.import_module(f"{root.name}.{dotted}")
    if dotted is not None:
        return importlib.import_module(dotted)
    spec = finder.spec(f"gradprop_submission_{next(_counter)}_{_safe(path.stem)}", str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _scripts_note(scripts: list[_Source]) -> str:
    shown = [_("{file} ({why}, line {line})").format(file=s.rel, why=s.left_out[0][1], line=s.left_out[0][0])
             for s in scripts[:3]]
    if len(scripts) > 3:
        shown.append(_("and {n} more").format(n=len(scripts) - 3))
    return plural("skipped {n} file that does more than define things and defines no item: {files}",
                  "skipped {n} files that do more than define things and define no item: {files}",
                  len(scripts)).format(n=len(scripts), files="; ".join(shown))


def _load_folder(root: Path, finder: _Finder, notes: list[str], support: frozenset[str] = frozenset()) -> dict[str, Any]:
    sources = _sources(root)
    wanted = {group: [s for s in sources if match_name(group, s.defines)] for group in BOOK_ITEMS}
    for group, srcs in wanted.items():  # the submission's own definition first, the course's only without one
        if any(s.rel not in support for s in srcs):
            wanted[group] = [s for s in srcs if s.rel not in support]
    chosen_files = sorted({s.rel for group in wanted.values() for s in group}, key=_rank)
    broken = [s for s in sources if s.error is not None]
    if not chosen_files:
        if broken:
            raise broken[0].error
        names = ", ".join(g[0] for g in BOOK_ITEMS)
        raise FileNotFoundError(_("no file in {folder} defines any of {names}").format(folder=root.name, names=names))
    for s in broken:
        notes.append(_("{file} is not valid Python for the Python {version} that grades it (line {line}: {error}): "
                       "the items it defines fail with its error").format(
                           file=s.rel, version=python_version(), line=s.error.lineno, error=s.error.msg))
    scripts = [s for s in sources if s.left_out and s.rel not in chosen_files and s.error is None]
    if scripts:
        notes.append(_scripts_note(scripts))
    # The folder first (``from common.layers import *``), then each folder holding a chosen file
    # (sibling imports: ``from functions import softmax``).
    folders = list(dict.fromkeys([str(root)] + sorted(str((root / rel).parent) for rel in chosen_files)))
    sys.path[:] = folders + [p for p in sys.path if p not in folders]
    modules: dict[str, types.ModuleType] = {}
    errors: dict[str, BaseException] = {}
    for rel in chosen_files:
        src = next(s for s in sources if s.rel == rel)
        if src.error is not None:  # it does not parse: its items fail with its syntax error
            errors[rel] = src.error
            continue
        try:
            modules[rel] = _import(root, src, finder, notes)
        except Exception as exc:  # noqa: BLE001 - one broken file costs only the items it alone defines
            errors[rel] = exc
            notes.append(_("{file} could not be imported: {error}").format(file=rel,
                                                                          error=_error_text(exc, finder.root)))
    for group, srcs in wanted.items():
        # an item only unimportable files define: a stand-in that raises the import's error when
        # used, so that the item fails with that error rather than "not defined"
        if srcs and all(src.rel in errors for src in srcs):
            src = min(srcs, key=lambda s: _rank(s.rel))
            modules.setdefault(src.rel, _unimportable(root / src.rel, errors[src.rel], finder.root))
            real = match_name(group, src.defines)
            setattr(modules[src.rel], real, _stand_in(real, src.defines[real], modules[src.rel]))
    namespace: dict[str, Any] = {}
    for rel in reversed(chosen_files):  # the preferred file's names win
        if rel in modules:
            namespace.update({k: v for k, v in vars(modules[rel]).items() if not k.startswith("__")})
    network = _choose(("TwoLayerNet",), wanted, modules, None, namespace, notes)
    net_ns = vars(modules[network]) if network else {}
    for group in BOOK_ITEMS:
        if group != ("TwoLayerNet",):
            _choose(group, wanted, modules, network, namespace, notes, net_ns)
    return namespace


def _error_text(exc: BaseException, root: str) -> str:
    """``NameError: name 'np' is not defined (line 3 of common/layers.py)``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _under(f.filename, root)]
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        where = _("line {line} of {file}").format(line=exc.lineno, file=_rel(exc.filename, root))
        return _("{error} ({where}; Python {version} grades it)").format(error=error, where=where,
                                                                          version=python_version())
    if frames:
        where = _("line {line} of {file}").format(line=frames[-1].lineno, file=_rel(frames[-1].filename, root))
        return _("{error} ({where})").format(error=error, where=where)
    return error


def _unimportable(path: Path, exc: BaseException, root: str) -> types.ModuleType:
    """A module standing for a file that could not be imported (it holds the stand-ins)."""
    module = types.ModuleType(f"gradprop_unimportable_{next(_counter)}_{_safe(path.stem)}")
    module.__file__ = str(path)
    module.__gradprop_error__ = _("{file} could not be imported: {error}").format(file=_rel(str(path), root),
                                                                                   error=_error_text(exc, root))
    sys.modules[module.__name__] = module
    return module


def _stand_in(name: str, is_class: bool, module: types.ModuleType) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise ImportError(module.__gradprop_error__)

    if is_class:
        return type(name, (), {"__init__": fail, "__module__": module.__name__})
    fail.__name__ = fail.__qualname__ = name
    fail.__module__ = module.__name__
    return fail


def _file_of(obj: Any) -> str | None:
    """The file that defines a class or function (its module's ``__file__``)."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    return os.path.realpath(file) if file else None


def _imports_file(src: _Source, rel: str) -> bool:
    """Does ``src`` import the module of the file ``rel`` (``common.layers`` for common/layers.py)?"""
    dotted = module_name(rel)
    return dotted is not None and any(i == dotted or i.startswith(dotted + ".") for i in src.imports)


def _choose(group: tuple[str, ...], wanted: dict, modules: dict[str, types.ModuleType], network: str | None,
            namespace: dict[str, Any], notes: list[str], net_ns: Mapping[str, Any] | None = None) -> str | None:
    """Put the item's definition from the right file into ``namespace``; return that file."""
    sources = {s.rel: s for s in wanted[group]}
    options = []
    for src in sorted(wanted[group], key=lambda s: _rank(s.rel)):
        if src.rel in modules:
            real = match_name(group, _kinds(vars(modules[src.rel])))
            if real is not None:
                options.append((src.rel, real, vars(modules[src.rel])[real]))
    if not options:
        return None
    rel, real, obj = options[0]
    if len(options) > 1:
        # By file, not identity: the network may import the same file under another module name.
        imported = {(_file_of(v), getattr(v, "__name__", None)) for v in (net_ns or {}).values() if callable(v)}
        used = [o for o in options if (_file_of(o[2]), o[1]) in imported]
        # a file that imports another file of these and defines the item itself (a notebook that
        # imports the book's common/layers.py and writes its own Affine): its own definition
        importers = [o for o in options if any(_imports_file(sources[o[0]], other[0]) for other in options
                                                if other is not o)]
        if used:
            rel, real, obj = used[0]
            why = _("{network} imports it").format(network=network)
        elif len(importers) == 1:
            rel, real, obj = importers[0]
            why = _("it imports the others and defines its own")
        elif network:
            why = _("the first in the book's order; {network} imports none of them").format(network=network)
        else:
            why = _("the first in the book's order")
        files = ", ".join(o[0] for o in options)
        notes.append(_("{item} is defined in {n} files ({files}); took the one in {file} ({why})").format(
            item=group[0], n=len(options), files=files, file=rel, why=why))
    for other_rel, other_real, other in options:
        if other_real != real and namespace.get(other_real) is other:
            del namespace[other_real]  # one spelling per item, so that every caller finds the same one
    namespace[real] = obj
    return rel


def _origins(namespace: Mapping[str, Any], root: str, notes: list[str]) -> dict[str, str]:
    """The file each item's definition came from, and a note for each name matched loosely."""
    kinds, origins = _kinds(namespace), {}
    for group in BOOK_ITEMS:
        real = match_name(group, kinds)
        if real is None:
            keys = {_key(w) for w in group}
            close = sorted(n for n in kinds if _key(n) in keys and n not in group)
            if len(close) == 2:
                notes.append(_("{item}: {a} and {b} could both be it; not guessing (name one {item})").format(
                    item=group[0], a=close[0], b=close[1]))
            elif len(close) > 2:
                notes.append(_("{item}: {names} could each be it; not guessing (name one {item})").format(
                    item=group[0], names=", ".join(close)))
            continue
        file = _file_of(namespace[real])
        if file and _under(file, root):
            origins[real] = _rel(file, root)
        if real not in group:
            if real in origins:
                text = _("took class {name} from {file} as {item}") if kinds[real] else \
                    _("took function {name} from {file} as {item}")
            else:
                text = _("took class {name} as {item}") if kinds[real] else _("took function {name} as {item}")
            notes.append(text.format(name=real, file=origins.get(real, ""), item=group[0]))
    return origins


def load(path: str | os.PathLike, support: Sequence[str] = ()) -> Loaded:
    """Import the layer set at ``path`` (a .py file, a .ipynb notebook or a folder). ``support``:
    the course's files in it (posix, relative to its folder), from which an item is taken only
    when no file of the submission's own defines it.

    Exceptions raised while importing a single file, or every file that defines an item, propagate
    unchanged: the caller reports them as ``import-error``.
    """
    p = Path(path).resolve()
    if not p.exists():
        raise FileNotFoundError(_("no such file or folder: {path}").format(path=path))
    folder = p if p.is_dir() else p.parent
    root = str(folder).rstrip(os.sep) + os.sep
    notes: list[str] = []
    finder = _Finder(root, notes)
    _forget(str(folder))
    sys.meta_path.insert(0, finder)
    try:
        if p.is_file():
            # Students import sibling files (``from functions import softmax``): let them.
            sys.path.insert(0, str(folder))
            namespace = dict(vars(_load_file(p, root, notes)))
        else:
            namespace = _load_folder(p, finder, notes, frozenset(support))
    finally:
        sys.meta_path.remove(finder)
    origins = _origins(namespace, root, notes)
    more = [_("... and {n} more notes").format(n=len(notes) - 50)] if len(notes) > 50 else []
    return Loaded(namespace, origins, notes[:50] + more)


def load_layer_set(path: str | os.PathLike) -> dict[str, Any]:
    """The names of the layer set at ``path`` (see ``load``)."""
    return load(path).namespace
