"""What a submission's box holds: the submission, and what it imports from beside it, copied once.

A file is graded with the folder it lives in, as ``python hw5.py`` or a Jupyter kernel started
there would run it: ``from common.layers import *``, ``from functions import softmax`` (a sibling
module) and, after ``sys.path.append(os.pardir)``, ``from ch04.functions import ...`` (a module
beside its folder) all find what they find there. Only what is imported is taken (the modules and
packages its imports name, and theirs in turn), never the rest of the folder: in a folder of
submissions, a classmate's file is not there, and neither is any other submission of the run
(``exclude``) even when a file imports it by name.

The copy is made once per submission, read-only for every child process that runs it (a bind
mount, Landlock and the file modes say so), and bounded: regular files only (no symbolic links,
FIFOs or devices), no hidden folders or ``__pycache__``, at most ``MAX_FILE`` bytes a file
(notebooks excepted) and ``MAX_COPY`` bytes and ``MAX_FILES`` files in all. Whatever was taken
besides the file, and whatever was left out, is said in ``Stage.notes``.

Layout of ``Stage.root``: for a file ``.../repo/ch05/hw5.py``, ``ch05/hw5.py`` with the modules
it takes from ``ch05/`` beside it, and those it takes from ``repo/`` at the top; the child runs
in ``ch05/``. For a folder ``.../mynet``, ``mynet/`` and what it holds.
"""
from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from . import notebook
from .i18n import _

#: bytes of a submission copied in all, per file (notebooks excepted: their saved plots weigh),
#: and files: a data set or a .git folder next to the layers is not what is graded
MAX_COPY = 64 * 1024 * 1024
MAX_FILE = 4 * 1024 * 1024
MAX_FILES = 2000
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "dist-packages"}


@dataclass
class Stage:
    """A submission's read-only copy (see the module docstring)."""

    #: the host folder holding the copy
    root: str
    #: the submission inside ``root`` (posix): ``ch05/hw5.py`` or ``mynet``
    entry: str
    #: the folder the child runs in, inside ``root`` (posix): ``ch05``, or the submission folder
    cwd: str
    #: sentences for the report: what was taken besides the file, what was left out
    notes: list[str] = field(default_factory=list)
    #: bytes copied
    size: int = 0
    #: the course's files in the copy, relative to ``cwd`` (``common/functions.py``): what is taken
    #: from them is not the submission's own
    support: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        _rmtree(os.path.dirname(self.root))


class _Plan:
    """The files to copy (source, destination relative to the copy's root), within the bounds."""

    def __init__(self) -> None:
        self.bytes, self.files = MAX_COPY, MAX_FILES
        self.copies: list[tuple[Path, str]] = []
        self.left_out: list[str] = []
        #: the submission inside the copy, the folder to run in, notes (see ``Stage``)
        self.entry = self.cwd = ""
        self.notes: list[str] = []
        #: the course's files, relative to ``cwd`` (posix)
        self.support: list[str] = []

    def file(self, src: Path, dest: str, shown: str) -> bool:
        try:
            st = os.lstat(src)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISLNK(st.st_mode):
                self.left_out.append(_("{file} (a symbolic link)").format(file=shown))
            return False
        per_file = self.bytes if src.suffix == ".ipynb" else MAX_FILE
        if st.st_size > min(self.bytes, per_file) or self.files <= 0:
            self.left_out.append(_("{file} (over {mb} MB)").format(file=shown, mb=MAX_FILE >> 20)
                                 if st.st_size > per_file else
                                 _("{file} (over the copy's limit of {mb} MB, {n} files)").format(
                                     file=shown, mb=MAX_COPY >> 20, n=MAX_FILES))
            return False
        self.bytes -= st.st_size
        self.files -= 1
        self.copies.append((src, dest))
        return True

    def tree(self, src: Path, dest: str, shown: str, exclude: frozenset[str], modules_only: bool = False) -> int:
        """The regular files of ``src`` (see the module docstring), or with ``modules_only`` its
        Python modules alone (a package a file imports: its code, not the data or results beside
        it); how many were taken."""
        taken = 0
        for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS
                                 and not d.endswith(".egg-info") and not os.path.islink(here / d)
                                 and not _touches(here / d, exclude))
            for name in sorted(filenames):
                if name.endswith((".pyc", ".pyo")) or _touches(here / name, exclude) \
                        or (modules_only and not name.endswith(".py")):
                    continue
                sub = (here / name).relative_to(src).as_posix()
                taken += self.file(here / name, f"{dest}/{sub}", f"{shown}/{sub}")
        return taken


def _touches(path: Path, exclude: frozenset[str]) -> bool:
    """Is ``path`` another submission of the run, inside one, or a folder holding one?"""
    real = os.path.realpath(path)
    return any(real == e or real.startswith(e + os.sep) or e.startswith(real + os.sep) for e in exclude)


# --- what a file imports ---------------------------------------------------------------------------


def _trees(path: Path) -> list[ast.AST]:
    """The parsed code of a .py file or a notebook's code cells. The file is the submission's, read
    in the grading process: only a regular file of at most ``MAX_FILE`` bytes is read, and whatever
    does not parse (a malformed notebook, an expression nested 100000 deep) is passed over, never
    raised: the sandbox's loader says what is wrong with it."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > (MAX_COPY if path.suffix == ".ipynb" else MAX_FILE):
            return []
        if path.suffix == ".ipynb":
            sources = [cell.source for cell in notebook.read_cells(path) if not cell.cell_magic]
        else:
            sources = [path.read_bytes()]
    except Exception:  # noqa: BLE001 - OSError, a notebook that is not one (TypeError, RecursionError...)
        return []
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(source))
        except Exception:  # noqa: BLE001 - SyntaxError, RecursionError, MemoryError on a monstrous file
            continue
    return trees


def _scan(path: Path) -> tuple[tuple[str, ...], bool]:
    """What the code of ``path`` imports and whether it reaches the folder above (``_what_it_reaches``),
    read once per version of the file: a run plans each submission twice (its resume key and the
    neighbours it takes), each walk of a book file's syntax tree costing a few hundredths of a second."""
    try:
        st = os.lstat(path)
    except OSError:
        return (), False
    return _what_it_reaches(str(path), st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=256)
def _what_it_reaches(path: str, mtime_ns: int, size: int, inode: int) -> tuple[tuple[str, ...], bool]:
    """The top-level names of the absolute imports in the file's code, in order (``common`` for
    ``from common.layers import *``), wherever they stand (a function may import when called); and
    whether the code puts something on ``sys.path`` (``sys.path.append(os.pardir)``): then what it
    imports may come from the folder above its own, as it would for ``python hw5.py``."""
    names: dict[str, None] = {}
    reaches = False
    for tree in _trees(Path(path)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(dict.fromkeys(a.name.split(".")[0] for a in node.names))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names[node.module.split(".")[0]] = None
            elif isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys":
                reaches = True
    return tuple(names), reaches


def _find(name: str, roots: list[Path]) -> tuple[Path, Path] | None:
    """(root, module path) of ``name`` as the first root that has it would import it."""
    for root in roots:
        for candidate in (root / f"{name}.py", root / name):
            if candidate.is_file() if candidate.suffix == ".py" else (candidate.is_dir() and not candidate.is_symlink()):
                return root, candidate
    return None


# --- staging ---------------------------------------------------------------------------------------


def plan(path: str | os.PathLike, exclude: Iterable[str | os.PathLike] = (),
         support: Iterable[str | os.PathLike] = (), parent: str = "all") -> _Plan:
    """What ``stage`` copies (``_Plan.copies``), where the submission is in the copy and which
    folder to run in, and the notes. Reads, never writes.

    ``support``: the course's files (a folder such as ``course/common``, or a file), each put
    beside the submission under its own name (``common/...``), as the course's layout has it. Where
    the submission holds a file of the same place, the course's copy is the one taken, and a note
    says so.

    ``parent``: what a file reaches with ``sys.path.append(os.pardir)`` may take from the folder
    above its own: ``"all"``, or the ``"book"``'s names only (see ``reach_parent``)."""
    src = Path(os.path.abspath(path))
    others = frozenset(os.path.realpath(e) for e in exclude if os.path.realpath(e) != os.path.realpath(src))
    files = _Plan()
    if src.is_dir():
        name = src.name or "submission"
        files.tree(src, name, name, others)
        files.entry = files.cwd = name
    else:
        here = src.parent.name or "submission"
        files.entry, files.cwd = f"{here}/{src.name}", here
        files.file(src, files.entry, src.name)
        files.notes += _imports_beside(src, here, files, others, parent)
    _add_support(files, [Path(os.path.abspath(p)) for p in support])
    if files.left_out:
        more = [_("and {n} more").format(n=len(files.left_out) - 5)] if len(files.left_out) > 5 else []
        files.notes.append(_("not copied into the sandbox: {files}").format(files=", ".join(files.left_out[:5] + more)))
    return files


def _add_support(files: _Plan, support: list[Path]) -> None:
    """The course's files beside the submission, replacing the submission's own at the same place."""
    if not support:
        return
    theirs = {dest for _, dest in files.copies}
    ours = _Plan()
    for src in support:
        dest = f"{files.cwd}/{src.name}"
        if src.is_dir():
            ours.tree(src, dest, src.name, frozenset())
        else:
            ours.file(src, dest, src.name)
    replaced = sorted(dest for _, dest in ours.copies if dest in theirs)
    keep = {dest for _, dest in ours.copies}
    files.copies = [(s, d) for s, d in files.copies if d not in keep] + ours.copies
    files.left_out += ours.left_out
    prefix = files.cwd + "/"
    files.support = [d[len(prefix):] for _, d in ours.copies]
    names = ", ".join(sorted({f"{p.name}/" if p.is_dir() else p.name for p in support}))
    files.notes.append(_("the course's files beside the submission (read-only): {files}").format(files=names))
    if replaced:
        files.notes.append(_("the course's copy was used instead of the submission's own: {files}").format(
            files=", ".join(d[len(prefix):] for d in replaced)))


def stage(path: str | os.PathLike, exclude: Iterable[str | os.PathLike] = (), tmp: str | None = None,
          support: Iterable[str | os.PathLike] = (), parent: str = "all") -> Stage:
    """Copy the submission at ``path`` (a .py file, a notebook or a folder), with what a file
    imports from beside it and the course's ``support`` files, into a fresh read-only folder (see
    the module docstring)."""
    files = plan(path, exclude, support, parent)
    top = tempfile.mkdtemp(prefix="gradprop-stage-", dir=tmp)
    root = Path(top) / "work"
    try:
        (root / files.cwd).mkdir(parents=True)
        for src, dest in files.copies:
            (root / dest).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(src, root / dest, follow_symlinks=False)
            except OSError:
                continue  # gone or unreadable since it was planned: the loader says what is missing
        _read_only(Path(top))
    except BaseException:
        _rmtree(top)
        raise
    return Stage(str(root), files.entry, files.cwd, files.notes, MAX_COPY - files.bytes, files.support)


_DEFINES = re.compile(rb"^(?:class|def)\s+([A-Za-z_]\w*)", re.MULTILINE)


def neighbours(files: _Plan, names: Iterable[str]) -> list[str]:
    """The files a plan takes from beside a file submission that define one of ``names`` (items):
    a classmate's file in a folder of single files looks like that, and so does a helper of the
    student's own; the instructor is told which (``cli``)."""
    found = []
    if "/" not in files.entry or files.entry.endswith("/"):
        return found
    wanted = set(names)
    for src, dest in files.copies:
        if dest == files.entry or dest.count("/") != 1 or dest[len(files.cwd) + 1:] in files.support:
            continue
        try:
            defined = {m.decode() for m in _DEFINES.findall(src.read_bytes()[:MAX_FILE])}
        except OSError:
            continue
        if defined & wanted:
            found.append(src.name)
    return found


#: what the book's code reaches above its own folder (``sys.path.append(os.pardir)``)
BOOK_ABOVE = re.compile(r"^(common|dataset|ch(apter)?[-_ ]?0?\d+)$", re.IGNORECASE)


def reach_parent(path: str | os.PathLike, submissions: Iterable[str | os.PathLike]) -> str:
    """What a graded file may take from the folder above its own: ``"all"`` where each
    submission of the run is a folder of its own (``repos/*/ch05/hw.py``) and that folder above
    holds no other submission; else only ``"book"`` modules, the names the book's layout has there
    (``common``, ``dataset``, ``ch04``): a lone file's folder above may be the autograder's
    (Gradescope's /autograder) and a folder of files' the instructor's (answers/, earlier results)."""
    subs = [os.path.realpath(p) for p in submissions]
    here = os.path.realpath(path)
    above = os.path.dirname(os.path.dirname(here))
    folders = {os.path.dirname(p) for p in subs}
    own = len(subs) > 1 and len(folders) == len(subs) and not any(
        p != here and (p + os.sep).startswith(above + os.sep) for p in subs)
    return "all" if own else "book"


def _imports_beside(src: Path, here: str, files: _Plan, others: frozenset[str], parent: str = "all") -> list[str]:
    """Plan what the file at ``src`` imports from its folder (and, when it reaches for it, the
    folder above), and what those import in turn; the notes saying what was taken."""
    folder = src.parent
    names, reaches = _scan(src)
    roots = [folder]
    if reaches and folder.parent != folder:
        roots.append(folder.parent)
    taken: list[str] = []
    seen: set[Path] = set()
    queue = list(names)
    while queue:
        name = queue.pop(0)
        found = _find(name, roots)
        if found is None or found[1] in seen or found[1] == src or _touches(found[1], others):
            continue
        at, module = found
        if at != folder and parent != "all" and not BOOK_ABOVE.match(module.stem if module.is_file() else module.name):
            continue
        seen.add(module)
        rel = module.relative_to(at).as_posix()
        dest, shown = (f"{here}/{rel}", rel) if at == folder else (rel, f"../{rel}")
        if module.is_dir():
            if not files.tree(module, dest, shown, others, modules_only=True):
                continue
            taken.append(f"{shown}/")
            sources = [p for p in module.rglob("*.py") if not _touches(p, others)]
        else:
            if not files.file(module, dest, shown):
                continue
            taken.append(shown)
            sources = [module]
        for f in sources:
            queue += [n for n in _scan(f)[0] if n not in queue]
    if not taken:
        return []
    return [_("took from beside {file}: {files} (read-only in the sandbox)").format(file=src.name,
                                                                                     files=", ".join(taken))]


def _read_only(top: Path) -> None:
    """Folders 0755, files 0644: another uid (the child's own) may read the copy, not change it."""
    for dirpath, dirnames, filenames in os.walk(top):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def _rmtree(top: str) -> None:
    """Remove a folder whatever was done to its modes."""
    for dirpath, dirnames, _files in os.walk(top):
        for d in dirnames:
            try:
                os.chmod(os.path.join(dirpath, d), 0o700)
            except OSError:
                pass
    shutil.rmtree(top, ignore_errors=True)
