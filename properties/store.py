"""An on-disk memo of what every run computes alike: the derandomized examples and the JAX
reference's answers on them.

A derandomized example list is a function of the strategy and the settings; a reference answer is
a function of the reference and its inputs. Both are the same in every process, so a fresh process
(a Gradescope run, a pytest-xdist worker, a grading worker) reads them here instead of drawing the
examples again and tracing the reference (~15 ms per signature even when JAX's compile cache has
the program). Nothing is stored that depends on a layer set.

One SQLite file per *version*: a hash of gradprop's ``properties`` and ``reference`` sources and of
the versions of Python, numpy, Hypothesis, JAX and jaxlib. Change any of them and the file is a new
one; the files of the three versions used last are kept and older ones removed. Values are plain
arrays and JSON (no pickle): reading a store never runs code. The file lives in ``GRADPROP_STORE``
(a folder; ``off`` disables it), default ``~/.cache/gradprop``. Any error of
the store (a read-only disk, a locked or corrupt file) turns it off for the process: it only ever
saves time.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

#: numeric dtypes only: an object array would need pickle
_KINDS = "biufc"
#: unsaved entries that trigger a write
_BATCH = 256
#: a store bigger than this starts again empty (random ``dev`` runs add answers on new inputs)
_LIMIT_BYTES = 512 * 2**20
#: store files kept in the folder: the ones of the versions used last (another venv's, an earlier
#: release's); each upgrade or edit of the suite makes a new one, and the oldest beyond these go
_KEEP_VERSIONS = 3


def version() -> str:
    """The hash naming the store file: the sources and library versions its entries depend on."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"python {sys.version_info[:2]}".encode())
    for dist in ("numpy", "hypothesis", "jax", "jaxlib"):
        try:
            h.update(f"{dist} {metadata.version(dist)};".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist} none;".encode())
    from gradprop import reference  # noqa: PLC0415 - imports JAX; only asked for once per process

    for package in (Path(__file__).resolve().parent, Path(reference.__file__).resolve().parent):
        for f in sorted(package.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def folder() -> Path | None:
    """Where store files live, or None when ``GRADPROP_STORE`` turns the store off."""
    path = os.environ.get("GRADPROP_STORE")
    if path is not None and path.lower() in ("", "0", "off", "none"):
        return None
    return Path(path or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                     "gradprop"))


# --- values as bytes (no pickle) --------------------------------------------------------------------


def pack(value: Any) -> bytes:
    """Nested dicts (str keys), lists, tuples, JSON scalars and numeric arrays / numpy scalars, as
    a JSON skeleton plus raw array bytes. TypeError for anything else."""
    arrays: list[np.ndarray] = []

    def skeleton(v: Any) -> Any:
        if isinstance(v, np.ndarray) or isinstance(v, np.generic):
            a = np.asarray(v)
            if a.dtype.kind not in _KINDS:
                raise TypeError(f"cannot store a {a.dtype} array")
            arrays.append(np.asarray(a, order="C"))  # not ascontiguousarray: it makes 0-d arrays 1-d
            return {"@a" if isinstance(v, np.ndarray) else "@s": len(arrays) - 1}
        if v is None or type(v) in (bool, int, float, str):
            return v
        if type(v) is tuple:
            return {"@t": [skeleton(x) for x in v]}
        if type(v) is list:
            return [skeleton(x) for x in v]
        if type(v) is dict and all(type(k) is str and not k.startswith("@") for k in v):
            return {k: skeleton(x) for k, x in v.items()}
        raise TypeError(f"cannot store a {type(v).__name__}")

    head = json.dumps({"v": skeleton(value), "a": [[a.dtype.str, a.shape] for a in arrays]}).encode()
    return b"".join([len(head).to_bytes(8, "little"), head, *(a.tobytes() for a in arrays)])


def unpack(data: bytes) -> Any:
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8:8 + n])
    arrays, at = [], 8 + n
    for dtype, shape in head["a"]:
        dt = np.dtype(dtype)
        size = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        count = size // dt.itemsize if dt.itemsize else 0
        arrays.append(np.frombuffer(data, dt, count, at).reshape(tuple(shape)).copy())
        at += size

    def build(v: Any) -> Any:
        if isinstance(v, list):
            return [build(x) for x in v]
        if isinstance(v, dict):
            if "@a" in v:
                return arrays[v["@a"]]
            if "@s" in v:
                return arrays[v["@s"]][()]
            if "@t" in v:
                return tuple(build(x) for x in v["@t"])
            return {k: build(x) for k, x in v.items()}
        return v

    return build(head["v"])


# --- the file ---------------------------------------------------------------------------------------


class Store:
    """get / put by (kind, key bytes); puts are written in batches, and at exit."""

    def __init__(self, path: Path | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pid = -1
        self._pending: dict[tuple[str, bytes], bytes] = {}

    def _connect(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None or self._pid != os.getpid():  # never use a connection across a fork
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.exists() and self.path.stat().st_size > _LIMIT_BYTES:
                    _remove(self.path)
                if not self.path.exists() and _create(self.path):
                    _prune(self.path)
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last write is harmless
                _touch(self.path)
            except (sqlite3.Error, OSError):
                self.path = None
                return None
            self._db, self._pid = db, os.getpid()
        return self._db

    def get(self, kind: str, key: bytes) -> Any:
        """The stored value, or None."""
        if (kind, key) in self._pending:
            return unpack(self._pending[(kind, key)])
        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute("SELECT value FROM memo WHERE kind = ? AND key = ?", (kind, key)).fetchone()
            return None if row is None else unpack(row[0])
        except (sqlite3.Error, ValueError, KeyError, TypeError):
            self.path = None
            return None

    def put(self, kind: str, key: bytes, value: Any) -> None:
        if self.path is None:
            return
        try:
            self._pending[(kind, key)] = pack(value)
        except TypeError:
            return
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what this process computed since the last flush."""
        db = self._connect() if self._pending else None
        if db is None:
            return
        rows = [(kind, key, value) for (kind, key), value in self._pending.items()]
        self._pending = {}
        try:
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO memo VALUES (?, ?, ?)", rows)
        except sqlite3.Error:
            self.path = None


def _create(path: Path) -> bool:
    """Make a new store file whole before anyone sees it (WAL mode, so that readers never wait for
    a writer, and its table), and put it in place unless another process did first. Workers that
    start together all open a new store at once; switching a shared file to WAL then failed with
    "database is locked" now and then, and turned that worker's store off for the run."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # one of its own per caller
    os.close(fd)
    aside = Path(name)
    try:
        with contextlib.closing(sqlite3.connect(aside, isolation_level=None)) as db:
            db.execute("PRAGMA synchronous=OFF")  # an empty table: nothing to lose in a crash
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS memo (kind TEXT, key BLOB, value BLOB, PRIMARY KEY (kind, key))")
        try:
            os.link(aside, path)
        except FileExistsError:
            return False
        return True
    finally:
        _remove(aside)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _touch(path: Path) -> None:
    """Mark the file used now (what ``_prune`` goes by); a store one may read but not write is
    still read."""
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(current: Path) -> None:
    """Remove the store files of all but the ``_KEEP_VERSIONS`` versions used last (by the time
    each was last opened), this one always kept. A process still using a removed file goes on
    with it; the next process of that version starts a new one."""
    def last_used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    others = sorted((p for p in current.parent.glob("store-*.sqlite") if p != current), key=last_used, reverse=True)
    for old in others[_KEEP_VERSIONS - 1:]:
        try:
            _remove(old)
        except OSError:
            pass


_STORE: Store | None = None


def store() -> Store:
    """This process's store (opened on first use)."""
    global _STORE
    if _STORE is None:
        where = folder()
        _STORE = Store(where / f"store-{version()}.sqlite" if where else None)
        atexit.register(_STORE.flush)
    return _STORE
