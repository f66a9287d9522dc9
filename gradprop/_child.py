"""The sandbox child: loads one submission and runs the parent's requests against it.

Started by ``gradprop.sandbox.SandboxSession`` (see ``BOOTSTRAP`` there) as

    python -c BOOTSTRAP PACKAGE_DIR SITE_DIRS JAIL_SPEC REQUEST_FD REPLY_FD DIAG_FD

in its own session and process group, confined by ``gradprop._jail`` before anything else runs,
with stdin and stdout on /dev/null and stderr on the diagnostics pipe (until start-up is done).
It imports only the standard library, numpy, ``gradprop.wire``, ``gradprop.loader`` (with
``gradprop.notebook``), ``gradprop._steady`` and ``gradprop.session`` (``alias_facts``, ``put_plain``...);
the bootstrap registers ``gradprop`` as a bare namespace so that ``gradprop/__init__.py`` never runs here.

Protocol: the child first sends a ``ready`` reply. A request is ``(free_ids, ops)``, each op
``(name, *params)`` (see ``_Child.op_*``), run in order: every op but seed/new/iadd/group sends
one reply, ``{"ok": true, ...}`` plus wire values; an op that fails sends ``{"ok": false, "tag":
..., "message": ...}`` instead, and the rest of its group (up to the next ``group`` op) is not
run; the next group is.
"""
from __future__ import annotations

import builtins
import errno
import faulthandler
import gc
import io
import os
import pickle
import random
import signal
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np

from gradprop import _standins, _steady, wire
from gradprop.i18n import _, set_language
from gradprop.loader import FAILED_IMPORTS, load, python_version
from gradprop.notebook import where as where_in
from gradprop.session import (Ref, alias_facts, at_line, entries, exception_tag, fit_arguments, importing,
                              no_method, not_defined, put_plain, raised, read_path,
                              typo_note)

OUTPUT_LIMIT = 8 * 1024  # characters of printed output kept per op
MESSAGE_LIMIT = 2000
BROKEN_STATUS = wire.BROKEN_STATUS
QUIET = wire.QUIET_OPS

_BUILTINS = builtins.__dict__
_ORIG_BUILTINS = dict(_BUILTINS)
_ORIG_KEYS = list(_ORIG_BUILTINS)
_ORIG_VALUES = list(_ORIG_BUILTINS.values())


def _builtins_untouched() -> bool:
    # after every call into the submission: list equality compares identity first, in C (a
    # replaced builtin is compared with ==, which can only run the submission's own code here)
    return len(_BUILTINS) == len(_ORIG_KEYS) and list(_BUILTINS.values()) == _ORIG_VALUES \
        and list(_BUILTINS) == _ORIG_KEYS


#: what an OSError says when the scratch folder (or one file) is full, and the limits it reached
#: (MB; no scratch limit but the disk's without namespaces)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_LIMIT = os.environ.get("GRADPROP_SCRATCH_LIMIT", "")
_FILE_LIMIT = os.environ.get("GRADPROP_FILE_LIMIT", "")


_MISSING = object()


class _Fault(Exception):
    def __init__(self, tag: str, message: str):
        super().__init__(message)
        self.tag = tag
        self.message = message


class _CappedBinary(io.RawIOBase):
    def __init__(self, text: "_Capture"):
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._text.write(data.decode("utf-8", "replace"))
        return len(data)


class _Capture(io.TextIOBase):
    """sys.stdout / sys.stderr for one op: keeps the first OUTPUT_LIMIT characters, counts the rest."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, limit: int = OUTPUT_LIMIT):
        self._limit = limit
        self._parts: list[str] = []
        self._kept = 0
        self.dropped = 0
        self.buffer = _CappedBinary(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, s: Any) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        n = len(s)
        room = self._limit - self._kept
        if room > 0:
            piece = s[:room]
            self._parts.append(piece)
            self._kept += len(piece)
            self.dropped += n - len(piece)
        else:
            self.dropped += n
        return n

    def text(self) -> str:
        text = "".join(self._parts)
        if self.dropped:
            text += "\n" + _("[... {n} more characters of output not shown]").format(n=self.dropped)
        return text


def _watch_parent(parent: int) -> None:
    """Leave if the grading process went away while a submission hangs."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(70)


class _Child:
    def __init__(self, reply_fd: int):
        self.reply_fd = reply_fd
        self.ns: dict[str, Any] = {}
        self.objects: dict[int, Any] = {}
        self.quiet = False  # while running ops deferred by the parent
        self.root = ""
        self.capture = _Capture()
        #: the builtins as the submission left them, when it changed them (e.g. patched ``abs``)
        self.student_builtins: dict[str, Any] | None = None
        #: optional constructor arguments left out since the last call (``fit_arguments``)
        self.dropped: tuple[str, ...] = ()

    # ------------------------------------------------------------------ helpers

    def enter_student(self) -> None:
        """Give the submission its own view of builtins (as it left them)."""
        if self.student_builtins is not None:
            _BUILTINS.clear()
            _BUILTINS.update(self.student_builtins)

    def leave_student(self) -> None:
        """Back to the real builtins for the sandbox's own code, keeping the submission's changes."""
        if _builtins_untouched():
            self.student_builtins = None
            return
        self.student_builtins = dict(_BUILTINS)
        _BUILTINS.clear()
        _BUILTINS.update(_ORIG_BUILTINS)

    def describe(self, exc: BaseException, where: str) -> str:
        try:
            msg = str(exc)
        except BaseException:  # noqa: BLE001
            msg = _("<the exception's text could not be shown>")
        if len(msg) > MESSAGE_LIMIT:
            msg = msg[:MESSAGE_LIMIT] + "..."
        text = raised(where, exc, msg)
        try:
            frames = traceback.extract_tb(exc.__traceback__)
        except BaseException:  # noqa: BLE001
            frames = []
        mine = [f for f in frames if self.root and f.filename.startswith(self.root)]
        if mine:
            f = mine[-1]
            text += "\n" + at_line(where_in(f.filename, f.lineno), (f.line or "").strip())
        elif isinstance(exc, SyntaxError) and exc.lineno:
            text += "\n" + at_line(where_in(exc.filename or "", exc.lineno), (exc.text or "").strip())
        if isinstance(exc, SyntaxError):
            text += "\n" + _("  (Python {version} grades it)").format(version=python_version())
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            text += "\n" + (_("  (a submission may write {scratch} MB in all, in its scratch folder: HOME and TMPDIR; "
                              "a file at most {file} MB)") if _DISK_LIMIT else
                            _("  (a submission may write what the disk allows, in its scratch folder: HOME and TMPDIR; "
                              "a file at most {file} MB)")).format(scratch=_DISK_LIMIT, file=_FILE_LIMIT)
        elif isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            text += "\n" + _("  (in the sandbox a submission reads Python, its packages and its own files, and writes "
                             "only its scratch folder: HOME, TMPDIR)")
        return text

    def student(self, where: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.enter_student()
        try:
            value = fn(*args, **kwargs)
        except _Fault:  # ours, raised inside (a method the object lacks): as it is
            self.leave_student()
            raise
        except BaseException as exc:  # noqa: BLE001 - the submission's failure is a finding
            self.leave_student()
            failed = self.ns.get(FAILED_IMPORTS) if isinstance(exc, NameError) else None
            if failed:  # a name a failed star import would have brought: a missing dependency
                raise _Fault("import-error", self.describe(exc, where) + "\n"
                             + _("  (the import it would come from failed: {error})").format(error=failed[0])) from None
            raise _Fault(exception_tag(exc), self.describe(exc, where)) from None
        self.leave_student()
        return value

    def obj(self, ref_id: int, where: str) -> Any:
        try:
            found = self.objects[ref_id]
        except KeyError:
            raise _Fault("exception", _("{where}: the object no longer exists in the sandbox").format(where=where)) \
                from None
        if isinstance(found, _Fault):  # its constructor failed: that is what every later use says
            raise _Fault(found.tag, found.message)
        return found

    def resolve_refs(self, args: tuple, kwargs: dict, where: str) -> tuple[tuple, dict]:
        if any(type(a) is Ref for a in args):
            args = tuple(self.obj(a.id, where) if type(a) is Ref else a for a in args)
        if any(type(v) is Ref for v in kwargs.values()):
            kwargs = {k: self.obj(v.id, where) if type(v) is Ref else v for k, v in kwargs.items()}
        return args, kwargs

    def send(self, doc: dict[str, Any], values: dict[str, Any] | None = None) -> None:
        if self.quiet:  # a deferred op's "ok": the request it came with answers for it
            return
        doc.setdefault("output", self.capture.text())
        try:
            buffers = wire.encode_reply(doc, values)
            if len(buffers[1]) > wire.MAX_HEADER:
                raise ValueError("header too large")
        except (ValueError, TypeError, RecursionError, OverflowError, MemoryError) as exc:
            where = doc.get("where") or _("the call")
            buffers = wire.encode_reply({
                "ok": False, "tag": "exception", "output": "",
                "message": _("{where} returned a value that could not be sent back ({error})").format(
                    where=where, error=f"{type(exc).__name__}: {exc}"),
            })
        wire.write_all(self.reply_fd, buffers)

    # ------------------------------------------------------------------ ops

    def op_load(self, path: str, seed: int, forbid: tuple[str, ...] = (), support: tuple[str, ...] = (),
                lang: str = "en") -> None:
        # every message from here on in the student's language, its catalog read before the
        # submission runs (nothing it patches can stop the messages about it)
        try:
            set_language(lang)
        except (OSError, ValueError):  # no catalog to read: English, never a fault blamed on the submission
            pass
        np.random.seed(seed)  # deterministic from the start, and the same after a restart
        random.seed(seed)
        _steady.reset(seed)
        root = os.path.realpath(path)
        self.root = root if os.path.isdir(root) else os.path.dirname(root)
        self.root = self.root.rstrip(os.sep) + os.sep
        _standins.install(forbid)
        _standins.LOADING[0] = True
        try:
            loaded = load(path, support)
        except BaseException as exc:  # noqa: BLE001 - SystemExit at import is an import error too
            self.leave_student()
            raise _Fault("import-error", self.describe(exc, importing())) from None
        finally:
            _standins.LOADING[0] = False
        self.leave_student()
        for name in _standins.IMPORTED_FORBIDDEN:
            loaded.notes.append(_("imports {module}, which this assignment forbids (the rubric's forbid): an item "
                                  "that uses it fails with forbidden-import").format(module=name))
        for name in _standins.STOOD_IN:
            loaded.notes.append(_("imports {module}, which is not installed here: stood in for (it only shows "
                                  "things); an item that uses it in a checked call fails").format(module=name))
        self.ns = ns = loaded.namespace
        names, classes = [], []
        for k, v in list(ns.items()):
            try:
                if type(k) is str and callable(v):
                    names.append(k)
                    if isinstance(v, type):
                        classes.append(k)
            except BaseException:  # noqa: BLE001
                pass
        # which file each item came from, and what loading skipped: for the student's report
        self.send({"ok": True, "names": names, "classes": classes,
                   "origins": {str(k): str(v) for k, v in loaded.origins.items()},
                   "notes": [str(n) for n in loaded.notes]})

    def op_new(self, ref_id: int, item: str, where: str, args: tuple, kwargs: dict) -> None:
        fn = self.ns.get(item)
        if not callable(fn):
            raise _Fault("not-found", not_defined(item))
        args, kwargs = self.resolve_refs(args, kwargs, where)
        args, kwargs, dropped = self.student(where, fit_arguments, fn, args, kwargs)
        try:
            self.objects[ref_id] = self.student(where, fn, *args, **kwargs)
        except _Fault as fault:
            fault = _Fault(fault.tag, fault.message + typo_note(fn, "__init__"))
            self.objects[ref_id] = fault  # every later use of the object says what went wrong here
            raise fault from None
        self.dropped += dropped
        self.send({"ok": True})

    def op_call(self, target: Any, method: str | None, where: str, args: tuple, kwargs: dict,
                echo: bool = True) -> None:
        args, kwargs = self.resolve_refs(args, kwargs, where)
        if type(target) is int:
            obj, fn = self.obj(target, where), None
        else:
            fn = self.ns.get(target)
            if not callable(fn):
                raise _Fault("not-found", not_defined(target))

        def call() -> tuple:  # one passage into the submission's code per op: it is on every call's path
            f = fn
            if f is None:
                f = getattr(obj, method, _MISSING)
                if f is _MISSING:
                    raise _Fault("exception", no_method(where, obj, method))
            a, k, dropped = fit_arguments(f, args, kwargs)
            before = entries(a) if echo else None  # to tell which dict entries the call replaced (alias_facts)
            return f(*a, **k), a, dropped, before

        value, args, dropped, before = self.student(where, call)
        dropped, self.dropped = [*self.dropped, *dropped], ()
        if not echo:  # nothing reads the arguments back, nor what the value shares with them
            self.send({"ok": True, "where": where, "dropped": list(dropped)}, {"value": value})
            return
        facts = [list(f) for f in alias_facts(args, value, before)]
        self.send({"ok": True, "aliases": facts, "where": where, "dropped": list(dropped)},
                  {"value": value, "args": tuple(args)})

    def op_get(self, ref_id: int, path: tuple[str, ...], where: str) -> None:
        obj = self.obj(ref_id, where)
        value = self.student(where, read_path, obj, path)
        self.send({"ok": True, "where": where}, {"value": value})

    def op_iadd(self, ref_id: int, path: tuple[str, ...], delta: Any, where: str) -> None:
        obj = self.obj(ref_id, where)

        def add() -> None:
            target = read_path(obj, path)
            np.add(target, delta, out=target)

        self.student(where, add)
        self.send({"ok": True})

    def op_put(self, ref_id: int, path: tuple[str, ...], values: dict, where: str) -> None:
        obj = self.obj(ref_id, where)
        if not self.student(where, put_plain, obj, path, values):
            raise _Fault("exception", where)  # not plain arrays: the parent reads and updates them one by one
        self.send({"ok": True})

    def op_unpickle(self, data: bytes, where: str) -> None:
        """A data file the parent read but must not unpickle (a pickle is code): the book's mnist.pkl."""
        value = self.student(where, pickle.loads, data)
        self.send({"ok": True, "where": where}, {"value": value})

    def op_seed(self, seed: int) -> None:
        np.random.seed(seed)
        random.seed(seed)
        self.send({"ok": True})

    def op_ping(self) -> None:
        self.send({"ok": True})

    # ------------------------------------------------------------------ loop

    def handle(self, request: tuple) -> None:
        free, ops = request
        op = "the request"
        self.capture = _Capture()
        sys.stdout = sys.stderr = self.capture
        skipping = False  # after a fault, the rest of its group (the parent fails their waits itself)
        try:
            for op, *params in ops:
                if op == "group":
                    skipping = False
                    continue
                if skipping:
                    continue
                if op not in QUIET:  # objects the parent no longer holds a handle to (built or not)
                    self.free(free)
                # seed/new/iadd answer nothing of their own: the next op's reply answers for them
                self.quiet = op in QUIET
                try:
                    getattr(self, "op_" + op)(*params)
                except _Fault as fault:  # the reply of the op that failed; the rest of its group is not run
                    self.quiet = False
                    self.send({"ok": False, "tag": fault.tag, "message": fault.message})
                    skipping = True
                finally:
                    self.quiet = False
                if op not in QUIET or skipping:  # what the next op prints is its own
                    self.capture = _Capture()
                    sys.stdout = sys.stderr = self.capture
        except BaseException as exc:  # noqa: BLE001 - the submission may have broken the sandbox
            self.send({"ok": False, "tag": "exception",
                       "message": _("the sandbox failed while running {op}: {error}").format(
                           op=op, error=f"{type(exc).__name__}: {exc}")})
        finally:
            self.free(free)

    def free(self, ids: list[int]) -> None:
        while ids:
            self.objects.pop(ids.pop(), None)


def main(argv: list[str]) -> None:
    request_fd, reply_fd, diag_fd = (int(a) for a in argv[:3])
    faulthandler.enable(file=diag_fd, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=diag_fd, all_threads=True, chain=False)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.dont_write_bytecode = True
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    _steady.install()  # after the thread took the real time.sleep; before any submission code
    child = _Child(reply_fd)
    sys.stdout = sys.stderr = child.capture
    # what is imported so far stays for good: the collector, off while it was imported (BOOTSTRAP),
    # comes back on for the submission and never walks those objects again
    gc.freeze()
    gc.enable()
    child.send({"ok": True, "ready": True, "pid": os.getpid()})
    while True:
        try:
            request = wire.read_request(request_fd)
        except OSError:
            request = None
        if request is None:
            os._exit(0)
        try:
            child.handle(request)
        except BrokenPipeError:
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the submission patched something the sandbox needs
            os._exit(BROKEN_STATUS)


if __name__ == "__main__":
    # ``python -m gradprop._child ...`` works too (it runs gradprop/__init__.py first).
    main(sys.argv[1:])
