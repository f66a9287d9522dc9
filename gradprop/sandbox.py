"""``SandboxSession``: a submission's layer set runs in a child process.

The grading process never imports or calls submission code and never unpickles what the child
sends (see ``gradprop.wire``). One child serves a whole submission; it is killed and started
again, transparently, after an op that hangs (``timeout``) or kills it (``exception``).

- Time: each op must answer within ``time_limit`` seconds, loading within ``import_time_limit``.
  After a timeout in an item, further ops of that item fail at once with the same fault.
- Memory: ``memory_mb`` for the child's whole tree where cgroups are available, and as
  ``RLIMIT_AS`` of each process (numpy's MemoryError is an ``exception``).
- Isolation: every child runs in a fresh ``gradprop.isolation.Box`` (scratch copy, scrubbed
  environment, namespaces, its own uid, Landlock, cgroups, rlimits: what this machine has).
- Output: the child keeps the first 8 KB a call prints (``Reply.output``); its fds 1 and 2 go to
  /dev/null, so no flood can fill memory, disk or a pipe.
- Processes: the child leads its own session and process group; the whole group is killed.
"""
from __future__ import annotations

import math
import os
import re
import select
import signal
import stat
import subprocess
import threading
import time
import weakref
from typing import Any, Sequence

import numpy as np

from . import processes, wire
from .findings import SubmissionFault
from .i18n import _, language
from ._jail import JAIL_STATUS
from .text import safe_text
from ._standins import AUTODIFF
from .isolation import OWN, SITE_DIRS, Box, Isolation, probe
from .staging import Stage, stage
from .notebook import cell_line, where as where_in
from .session import Later, Opaque, Ref, Reply, Session, not_defined, reading, updating

#: How the child starts: ``python -P -S`` (``processes.python``). ``-P``: no working folder on
#: sys.path (its environment is the box's, ``PYTHONHASHSEED=0`` among it). ``-S`` skips the .pth files of site-packages (a quarter of the
#: start-up time); the bootstrap puts the parent's site-packages folders on sys.path instead and
#: adds the ``exit``/``quit`` builtins that ``site`` would. It registers ``gradprop`` as a bare
#: package, so that ``gradprop/__init__.py`` (and whatever it may import one day) never runs in
#: the child. The cycle collector waits until the imports are done (``_child.main`` turns it back
#: on before any submission code runs): collections during numpy's import were an eighth of it.
BOOTSTRAP = (
    "import gc\n"
    "gc.disable()\n"
    "import sys\n"
    "import types\n"
    "if sys.argv[2]:\n"
    "    import site; site.setquit()\n"
    "    import os; sys.path.extend(sys.argv[2].split(os.pathsep))\n"
    "p = types.ModuleType('gradprop'); p.__path__ = [sys.argv[1]]; sys.modules['gradprop'] = p\n"
    "from gradprop._jail import main as confine\n"
    "confine(sys.argv[3:4])\n"
    "from gradprop._child import main\n"
    "main(sys.argv[4:])\n"
)

STARTUP_LIMIT = 60.0  # seconds for a fresh interpreter to import numpy (not the submission's time)
OUTPUT_LIMIT = 16 * 1024  # characters of Reply.output accepted from the child
MESSAGE_LIMIT = 8 * 1024

_FRAME_LINE = re.compile(r'^\s*File "(.+)", line (\d+) in (\S+)')


class _Died(Exception):
    """The child went away (or sent garbage) while we waited for it."""


class _TimedOut(Exception):
    pass


class _Child:
    """One running child process and its pipes (parent side)."""

    def __init__(self, box: Box):
        self.box = box
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        diag_r, diag_w = os.pipe()
        argv, fds = box.command(processes.python(*(["-S"] if SITE_DIRS else []), "-c", BOOTSTRAP, "{lib}",
                                                 os.pathsep.join(SITE_DIRS), "{jail}", str(req_r), str(rep_w),
                                                 str(diag_w), flags=processes.SAFE_PATH))
        try:
            self.proc = processes.popen(
                argv, stdout=subprocess.DEVNULL, stderr=diag_w,
                pass_fds=(req_r, rep_w, diag_w, *fds), start_new_session=True, close_fds=True,
                env=box.env(), cwd="/" if box.namespaces else box.cwd,  # bwrap changes to box.cwd itself
            )
        except BaseException:
            for fd in (req_w, rep_r, diag_r):
                os.close(fd)
            box.cleanup()
            raise
        finally:
            for fd in (req_r, rep_w, diag_w):
                os.close(fd)
            box.close_fds()
        self.req_w, self.rep_r, self.diag_r = req_w, rep_r, diag_r
        os.set_blocking(req_w, False)
        os.set_blocking(diag_r, False)
        self.poll_in = select.poll()
        self.poll_in.register(rep_r, select.POLLIN)
        self.poll_out = select.poll()
        self.poll_out.register(req_w, select.POLLOUT)
        self.rbuf = bytearray()
        self.closed = False

    # -------------------------------------------------------------- low level

    def peek(self, timeout: float = 0.0) -> int | None:
        """The child's return code if it has ended, else None; without reaping it.

        The dead child stays a zombie until ``kill`` so that its pid, which is also the id of its
        process group, cannot be reused before the group has been killed.
        """
        end = time.monotonic() + timeout
        while True:
            if self.proc.returncode is not None:
                return self.proc.returncode
            try:
                info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return self.proc.poll()
            if info is not None and info.si_pid:
                return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            if time.monotonic() >= end:
                return None
            time.sleep(0.005)

    def alive(self) -> bool:
        return self.peek() is None

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.req_w, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                raise _Died() from None
            if not self._wait(self.poll_out, deadline):
                raise _TimedOut()

    def _wait(self, poller: Any, deadline: float) -> bool:
        """Wait until ``poller`` fires; False at the deadline. Notices a dead child."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Slices, so that a child that died while a grandchild holds the pipe is noticed.
            if poller.poll(math.ceil(min(left, 0.5) * 1000)):
                return True
            if not self.alive():
                raise _Died()

    def read(self, n: int, deadline: float) -> bytearray:
        """The next ``n`` bytes, as a bytearray of the caller's own (the decoder's arrays can be
        views of it instead of copies)."""
        buf = self.rbuf
        if len(buf) >= n:
            out = buf[:n]
            del buf[:n]
            return out
        if n - len(buf) > (1 << 20):
            # large: read straight into the result
            out = bytearray(n)
            got = len(buf)
            out[:got] = buf
            buf.clear()
            view = memoryview(out)
            while got < n:
                if not self._wait(self.poll_in, deadline):
                    raise _TimedOut()
                k = os.readv(self.rep_r, [view[got:]])
                if k == 0:
                    raise _Died()
                got += k
            return out
        while len(buf) < n:
            if not self._wait(self.poll_in, deadline):
                raise _TimedOut()
            chunk = os.read(self.rep_r, max(65536, n - len(buf)))
            if not chunk:
                raise _Died()
            buf += chunk
        out = buf[:n]
        del buf[:n]
        return out

    def recv(self, deadline: float, keys: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            hlen, plen = wire.parse_frame_header(self.read(wire.FRAME_SIZE, deadline))
            doc = wire.decode_header(self.read(hlen, deadline))
            payload = self.read(plen, deadline) if plen else b""
            values = wire.decode_values(doc, keys, payload, Opaque) if doc.get("ok") is True else {}
        except wire.WireError as exc:
            raise _Died(_("the process sent a malformed reply ({error})").format(error=safe_text(exc))) from None
        except (ValueError, TypeError, OverflowError, MemoryError, RecursionError, KeyError) as exc:
            # whatever the decoder missed is a malformed reply too: the child is replaced, so
            # that no half-read reply is left in the pipe for the next request
            raise _Died(_("the process sent a malformed reply ({error})").format(error=type(exc).__name__)) from None
        return doc, values

    def diagnostics(self, wait: float) -> str:
        """What faulthandler wrote on the diagnostics pipe (a stack dump), up to 64 KB."""
        chunks: list[bytes] = []
        size = 0
        end = time.monotonic() + wait
        poller = select.poll()
        poller.register(self.diag_r, select.POLLIN)
        while size < 65536:
            left = end - time.monotonic()
            if not poller.poll(max(0, math.ceil(left * 1000)) if chunks == [] else 20):
                break
            try:
                chunk = os.read(self.diag_r, 65536 - size)
            except BlockingIOError:
                continue
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def kill(self) -> None:
        if self.closed:
            return
        self.closed = True
        pid = self.proc.pid
        if self.proc.returncode is None:  # not reaped yet: pid and group id are still ours
            for kill in (os.killpg, os.kill):  # the group, and the child even if it left the group
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        for fd in (self.req_w, self.rep_r, self.diag_r):
            try:
                os.close(fd)
            except OSError:
                pass
        # after the child: whatever it started dies with it (pid namespace, cgroup or uid), and
        # its scratch folder goes
        self.box.cleanup()

    def python_pid(self) -> int:
        """The pid of the Python process itself (under bwrap, two processes below ours)."""
        pid = self.proc.pid
        if "namespaces" not in self.box.isolation.on:
            return pid
        for _level in range(2):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                return pid
            if len(kids) != 1:
                return pid
            pid = int(kids[0])
        return pid

    def exit_status(self) -> str:
        rc = self.peek(timeout=1.0)
        if rc is None:
            return _("the process stopped answering")
        if rc > 128 and "namespaces" in self.box.isolation.on:
            rc = 128 - rc  # bwrap reports a child killed by signal N as 128 + N
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = _("signal {n}").format(n=-rc)
            if -rc == signal.SIGKILL:
                return _("the process was killed by {signal} (perhaps for using too much memory)").format(signal=name)
            return _("the process was killed by {signal}").format(signal=name)
        if rc == wire.BROKEN_STATUS:
            return _("the sandbox's own code failed (did the submission patch builtins, numpy or the standard "
                     "library?)")
        if rc == JAIL_STATUS:
            return _("the sandbox could not confine the process")
        return _("the process exited with status {status}").format(status=rc)


def _plain(value: Any, depth: int = 0) -> Any:
    """Arguments as plain numpy/python data, so that the child never needs to import e.g. jax."""
    t = type(value)
    if value is None or t in (bool, int, float, str, np.ndarray, Ref) or isinstance(value, np.generic):
        return value
    if depth > 20:
        return value
    if t is tuple:
        return tuple(_plain(v, depth + 1) for v in value)
    if t is list:
        return [_plain(v, depth + 1) for v in value]
    if t is dict:
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if hasattr(value, "__array__") and not isinstance(value, np.ndarray):
        return np.asarray(value)
    return value


class SandboxSession(Session):
    """Runs the layer set at ``path`` in a child process with time and memory limits."""

    def __init__(self, path: str | os.PathLike, *, time_limit: float = 10.0, memory_mb: int = 2048,
                 import_time_limit: float | None = None, isolation: str = OWN,
                 forbid: Sequence[str] = AUTODIFF, exclude: Sequence[str] = (), support: Sequence[str] = (),
                 parent: str = "all", lang: str | None = None):
        self.path = os.path.abspath(str(path))
        #: the language the child writes its messages in (None: the one in use as the session
        #: starts, ``i18n.use``, in which this side writes its own)
        self.lang = lang or language()
        self.time_limit = float(time_limit)
        self.memory_mb = int(memory_mb)
        self.import_time_limit = float(time_limit if import_time_limit is None else import_time_limit)
        #: the layers that keep this submission in its box (``gradprop.isolation``)
        self.isolation: Isolation = probe().require(isolation)
        #: top-level modules the submission may import but not use, nor reach (the rubric's forbid)
        self.forbid = tuple(forbid)
        #: the submission's read-only copy, with what it imports from beside it and the course's
        #: ``support`` files (``staging``); ``exclude``: the run's other submissions, never part of it;
        #: ``parent``: what of the folder above a file may be reached, "all" or "book" (``staging.reach_parent``)
        self.stage: Stage | None = None
        self.stage = stage(self.path, exclude, support=support, parent=parent)
        #: the course's files in the copy (an item taken from one is not the submission's own)
        self.support_files: frozenset[str] = frozenset(self.stage.support)
        self.import_error: str | None = None
        #: what the submission printed while being imported
        self.import_output = ""
        self._names: frozenset[str] = frozenset()
        self.kinds: dict[str, bool] = {}
        #: the item -> file and the notes the child's loader sent (see gradprop.loader.Loaded)
        self.origins: dict[str, str] = {}
        self.load_notes: tuple[str, ...] = ()
        self._lock = threading.RLock()
        self._child: _Child | None = None
        self._pending_load = False
        self._broken: str | None = None
        self._timed_out: dict[str, str] = {}
        self._next_id = 0
        self._min_live_id = 1
        self._lost_reason = ""
        self._freed: list[int] = []
        #: np.random/random are seeded with this before the submission is imported (again)
        self._last_seed = 0
        #: ops for the next request, in order. seed/new/iadd answer nothing of their own: they go
        #: along with the next call or read. A call or read asked for with ``later`` waits here
        #: too, until some reply is needed: a build, forward, backward and the gradient reads
        #: are one request, and the child answers each in turn (one round trip, not four)
        self._queue: list[tuple] = []
        #: one entry per call or read in the queue, in order: (Later, where, item, keys, convert, refs,
        #: group)
        self._waiting: list[tuple] = []
        #: the group the next ops asked for belong to (``group``)
        self._group = 0
        #: seconds the first start took (interpreter + numpy + the submission's import)
        self.startup_seconds = 0.0
        self.restarts = 0
        started = time.perf_counter()
        self._spawn()
        error = self._finish_load()
        self.startup_seconds = time.perf_counter() - started
        if error is not None:
            self.import_error = error
            self._stop_child()

    # -------------------------------------------------------------- child management

    def _spawn(self) -> None:
        # a fresh box each time, over the same read-only copy: nothing the submission wrote survives
        # a restart
        assert self.stage is not None
        box = Box(self.stage, self.memory_mb, self.isolation, self.forbid)
        self._child = _Child(box)
        self._pending_load = True
        # Sent now, read by the child as soon as it is up: start-up overlaps with our own work.
        try:
            request = ([], [("load", box.path, self._last_seed, self.forbid, tuple(self.stage.support), self.lang)])
            self._child.send(wire.encode_request(request), time.monotonic() + STARTUP_LIMIT)
        except (_Died, _TimedOut):
            pass  # reported by _finish_load

    def _finish_load(self) -> str | None:
        """Wait for the child started by _spawn to load the submission; the import error or None."""
        child = self._child
        assert child is not None
        self._pending_load = False
        try:
            doc, _values = child.recv(time.monotonic() + STARTUP_LIMIT)
            if not doc.get("ready"):
                raise _Died(_("the process sent a malformed greeting"))
        except (_Died, _TimedOut) as exc:
            status = child.exit_status() if not isinstance(exc, _TimedOut) else _("it did not start in time")
            diag = child.diagnostics(0.2).strip()
            child.kill()
            raise RuntimeError(_("the sandbox could not start ({status}): {diagnostics}").format(
                status=status, diagnostics=diag[-2000:])) from None
        limit = self.import_time_limit
        try:
            doc, _values = child.recv(time.monotonic() + limit)
        except _TimedOut:
            return _("importing the file did not finish within {limit} s").format(limit=f"{limit:g}") \
                + self._where_stuck(child)
        except _Died as exc:
            if exc.args:
                return _("importing the file failed: {error}").format(error=exc.args[0])
            return _("{status} while importing the file").format(status=child.exit_status()) \
                + self._where_crashed(child)
        self.import_output = _text(doc.get("output"), OUTPUT_LIMIT)
        if doc.get("ok") is not True:
            return _text(doc.get("message"), MESSAGE_LIMIT) or _("importing the file failed")
        names = doc.get("names")
        if type(names) is not list:
            return _("importing the file failed: {error}").format(error=_("the process sent a malformed reply"))
        self._names = frozenset(n for n in names if type(n) is str)
        classes = doc.get("classes") if type(doc.get("classes")) is list else []
        self.kinds = {n: n in classes for n in self._names}
        origins, notes = doc.get("origins"), doc.get("notes")
        self.origins = {k: _text(v, 300) for k, v in origins.items()} if type(origins) is dict else {}
        notes = [_text(n, 500) for n in notes[:50]] if type(notes) is list else []
        self.load_notes = tuple(self.stage.notes + notes) if self.stage else tuple(notes)
        return None

    def _stop_child(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None
        self._pending_load = False

    def _restart(self, reason: str) -> None:
        self._stop_child()
        self._min_live_id = self._next_id + 1
        self._lost_reason = reason
        self._freed.clear()
        self._queue.clear()
        self.restarts += 1
        try:
            self._spawn()
        except OSError as exc:  # pragma: no cover - e.g. out of processes
            self._broken = _("the sandbox could not be restarted after {reason}: {error}").format(reason=reason,
                                                                                               error=exc)

    def _ready_child(self) -> _Child:
        if self._broken:
            raise SubmissionFault("exception", self._broken)
        if self._child is None:
            raise SubmissionFault("exception", _("the session is closed"))
        if self._pending_load:
            try:
                error = self._finish_load()
            except RuntimeError as exc:
                error = str(exc)
            if error is not None:
                self._stop_child()
                self._broken = _("the submission could not be loaded again after {reason}: {error}").format(
                    reason=self._lost_reason, error=error)
                raise SubmissionFault("exception", self._broken)
        return self._child  # type: ignore[return-value]

    def _where_stuck(self, child: _Child) -> str:
        try:
            os.kill(child.python_pid(), signal.SIGUSR1)
        except OSError:
            return ""
        return self._frame_text(child.diagnostics(0.3), child.box)

    def _where_crashed(self, child: _Child) -> str:
        return self._frame_text(child.diagnostics(0.05), child.box)

    def _frame_text(self, dump: str, box: Box) -> str:
        """The most recent line of the submission in a faulthandler dump, as ' (at line N of f.py: ...)'."""
        for line in dump.splitlines():
            m = _FRAME_LINE.match(line)
            if not m:
                continue
            filename, lineno = m.group(1), int(m.group(2))
            real = box.host_path(filename)  # where the grader reads the copy the child ran
            if not real:
                continue
            text = cell_line(real, lineno) if "#cell" in real else _source_line(real, lineno)
            return safe_text(_(" (it was running {where}: {code})").format(where=where_in(real, lineno), code=text))
        return ""


    # -------------------------------------------------------------- requests

    def _enqueue(self, op: tuple, where: str, item: str | None, keys: tuple[str, ...], convert,
                 refs: tuple = ()) -> Later:
        """Queue an op that answers; its Later sends the queue when its value is needed."""
        later = Later(self._flush)
        with self._lock:
            self._queue.append(op)
            # refs: the Refs the op names stay alive (not freed in the child) until it has run
            self._waiting.append((later, where, item, keys, convert, refs, self._group))
        return later

    def group(self) -> None:
        """What is asked from now on is a group of its own (one example's calls): a fault stops the
        rest of its group, not the groups asked after it in the same request."""
        with self._lock:
            if self._queue and self._queue[-1][0] in wire.QUIET_OPS - {"group"}:
                # quiet ops nothing asked after yet (a check that stopped between a build and its
                # call): a fault of theirs must be answered in their own group, not the next one's,
                # or the replies of that group would be taken for skipped
                self._enqueue(("ping",), "ping", None, (), lambda doc, values, where: None)
            self._group += 1
            self._queue.append(("group",))

    def _flush(self) -> None:
        """Send every queued op up to the last one that answers, as one request, and settle each
        waiting Later from its reply, in order. The child stops a group at its first fault: that
        Later and every later one of its group get the fault (their ops were not run); the next
        group runs. A hang or a crash (the child is started again) fails every Later left."""
        with self._lock:
            if not self._waiting:
                return
            waiting, self._waiting = self._waiting, []
            last = len(self._queue) - 1
            while self._queue[last][0] in wire.QUIET_OPS:
                last -= 1  # seed/new/iadd after the last answering op wait for the next request
            ops, self._queue = self._queue[:last + 1], self._queue[last + 1:]
            # (a Later names no item that timed out: ``later`` refuses those, and a timeout
            # happens only here, after every waiting Later was taken)
            answered, sent = 0, False
            try:
                child = self._ready_child()
                free = []
                while self._freed:
                    free.append(self._freed.pop())
                data = wire.encode_request((free, ops))
                while answered < len(waiting):
                    later, where, item, keys, convert, _, group = waiting[answered]
                    try:
                        doc, values = self._answer(child, None if sent else data, where, item, keys)
                        sent = True
                        later.settle(convert(doc, values, where))
                        answered += 1
                    except SubmissionFault as fault:
                        if self._child is not child:  # started again: nothing after it was run
                            raise
                        sent = True  # refused: the child skipped the rest of this group, and goes on
                        while answered < len(waiting) and waiting[answered][6] == group:
                            waiting[answered][0].fail(fault)
                            answered += 1
            except SubmissionFault as fault:
                for later, *_ in waiting[answered:]:
                    later.fail(fault)

    def _answer(self, child: _Child, data: bytes | None, where: str, item: str | None,
                keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send ``data`` (if any) and read one reply, within the time limit from now."""
        deadline = time.monotonic() + self.time_limit
        try:
            if data is not None:
                child.send(data, deadline)
            doc, values = child.recv(deadline, keys)
        except _TimedOut:
            message = _("{where} did not return within {limit} s").format(where=where, limit=f"{self.time_limit:g}") \
                + self._where_stuck(child)
            if item is not None:
                self._timed_out[item] = message
            self._restart(_("{where} timed out").format(where=where))
            raise SubmissionFault("timeout", message) from None
        except _Died as exc:
            if exc.args:
                message = _("{status} while running {where}").format(status=exc.args[0], where=where)
            else:
                message = _("{status} while running {where}").format(status=child.exit_status(), where=where) \
                    + self._where_crashed(child)
            self._restart(_("{where} stopped the process").format(where=where))
            raise SubmissionFault("exception", message) from None
        if doc.get("ok") is not True:
            tag = doc.get("tag")
            tag = tag if tag in ("not-found", "exception", "import-error", "forbidden-import") else "exception"
            message = _text(doc.get("message"), MESSAGE_LIMIT) or _("{where} failed").format(where=where)
            output = _text(doc.get("output"), 1000)
            if output.strip():
                message += "\n" + _("  it printed: {output}").format(output=output.strip())
            raise SubmissionFault(tag, message)
        return doc, values

    def _reply(self, doc: dict[str, Any], values: dict[str, Any], where: str, sent: tuple | None = None) -> Reply:
        """A call's reply, judged: the arguments come back as many as were sent, each array still
        an array (the child can change one in place, not replace it), and alias facts are pairs
        of names. Anything else is a malformed reply: the submission's finding, never ours.
        ``sent`` None: a call whose arguments were not asked back (``later_value``)."""
        args_after, aliases = (), []
        if sent is not None:
            args_after, aliases = values.get("args"), doc.get("aliases", [])
            if type(args_after) is not tuple or type(aliases) is not list or not all(
                type(a) is list and len(a) == 2 and all(type(x) is str for x in a) for a in aliases
            ) or len(args_after) != len(sent) or any(
                isinstance(before, np.ndarray) and type(after) is not np.ndarray
                for before, after in zip(sent, args_after)
            ):
                self._restart(_("{where} sent a malformed reply").format(where=where))
                raise SubmissionFault("exception", _("{status} while running {where}").format(
                    status=_("the process sent a malformed reply"), where=where))
        dropped = doc.get("dropped", [])
        return Reply(
            value=values.get("value"),
            args_after=args_after,
            aliases=tuple((a, b) for a, b in aliases),
            output=_text(doc.get("output"), OUTPUT_LIMIT),
            dropped=tuple(_text(d, 100) for d in dropped[:20]) if type(dropped) is list else (),
        )

    def _check_ref(self, ref: Ref) -> None:
        if ref.item in self._timed_out:
            raise SubmissionFault("timeout", self._timed_out[ref.item])
        if ref.id < self._min_live_id:
            raise SubmissionFault("exception", _("this {item} object was lost when the previous call was stopped "
                                                 "({reason})").format(item=ref.item, reason=self._lost_reason))

    # -------------------------------------------------------------- Session

    def defines(self, name: str) -> bool:
        return name in self._names

    def new(self, item: str, *args: Any, **kwargs: Any) -> Ref:
        if item in self._timed_out:
            raise SubmissionFault("timeout", self._timed_out[item])
        if not self.defines(item):
            raise SubmissionFault("not-found", not_defined(item))
        with self._lock:
            ref_id = self._next_id + 1
            where = f"{item}(...)"
            self._queue.append(("new", ref_id, item, where, _plain(args), _plain(kwargs)))
            self._next_id = ref_id
            ref = Ref(ref_id, item)
            fin = weakref.finalize(ref, self._freed.append, ref_id)
            fin.atexit = False
            return ref

    def later(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        return self._later_call(target, method, args, kwargs, True)

    def later_value(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Later:
        return self._later_call(target, method, args, kwargs, False)

    def _later_call(self, target: str | Ref, method: str | None, args: tuple, kwargs: dict, echo: bool) -> Later:
        """A call op; ``echo``: the child sends the arguments back, as the call left them (and what
        the value shares with them), else the value alone."""
        if isinstance(target, Ref):
            self._check_ref(target)
            where, item, wire_target = f"{target.item}.{method}", target.item, target.id
        else:
            if target in self._timed_out:
                raise SubmissionFault("timeout", self._timed_out[target])
            if not self.defines(target):
                raise SubmissionFault("not-found", not_defined(target))
            where, item, wire_target = target, target, target
        for a in (*args, *kwargs.values()):
            if isinstance(a, Ref):
                self._check_ref(a)
        sent = _plain(args)
        op: tuple = ("call", wire_target, method, where, sent, _plain(kwargs))
        if echo:
            keys, answered = ("value", "args"), sent
        else:
            op, keys, answered = (*op, False), ("value",), None
        return self._enqueue(op, where, item, keys, lambda doc, values, where: self._reply(doc, values, where, answered),
                             (target, args, kwargs))

    def call(self, target: str | Ref, method: str | None, *args: Any, **kwargs: Any) -> Reply:
        return self.later(target, method, *args, **kwargs).value()

    def later_get(self, ref: Ref, *path: str) -> Later:
        self._check_ref(ref)
        where = reading(ref.item, path)
        return self._enqueue(("get", ref.id, tuple(path), where), where, ref.item, ("value",),
                             lambda doc, values, where: values.get("value"), (ref,))

    def get(self, ref: Ref, *path: str) -> Any:
        return self.later_get(ref, *path).value()

    defers = True

    def later_put(self, ref: Ref, path: tuple[str, ...], values: dict[str, np.ndarray]) -> Later:
        self._check_ref(ref)
        where = reading(ref.item, path)  # a hang here is the hang of reading them
        return self._enqueue(("put", ref.id, tuple(path), _plain(values), where), where, ref.item, (),
                             lambda doc, values, where: None, (ref,))

    def unpickle(self, data: bytes, where: str | None = None) -> Any:
        """``pickle.loads(data)`` run in the child, where submission code runs: a pickle is code
        (the book's mnist.pkl for ``gradprop gradcheck``). Only plain values and arrays come back."""
        where = where or _("unpickling a data file")
        later = self._enqueue(("unpickle", bytes(data), where), where, None, ("value",),
                              lambda doc, values, where: values.get("value"))
        return later.value()

    def iadd(self, ref: Ref, path: tuple[str, ...], delta: np.ndarray) -> None:
        self._check_ref(ref)
        where = updating(ref.item, path)
        with self._lock:
            self._queue.append(("iadd", ref.id, tuple(path), _plain(delta), where))

    def seed(self, seed: int) -> None:
        if self.import_error is not None:
            return
        # sent along with the next request, in its place among the queued ops
        self._last_seed = int(seed)
        with self._lock:
            self._queue.append(("seed", self._last_seed))

    def ping(self) -> None:
        """One empty round trip (for benchmarks)."""
        self._enqueue(("ping",), "ping", None, (), lambda doc, values, where: None).value()

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:
            if getattr(self, "stage", None) is not None:  # the load never started
                self.stage.cleanup()
                self.stage = None
            return
        with lock:
            self._stop_child()
            self._broken = self._broken or _("the session is closed")
            if self.stage is not None:
                self.stage.cleanup()
                self.stage = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit anything may be gone
            pass


def _text(value: Any, limit: int) -> str:
    """A string the child sent, cut to ``limit`` and made safe for JSON, CSV and terminals."""
    if type(value) is not str:
        return ""
    return safe_text(value if len(value) <= limit else value[:limit] + "...")


def _source_line(path: str, lineno: int) -> str:
    """Line ``lineno`` of a regular file, read with care (the file belongs to the submission)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(4 * 1024 * 1024)
    except OSError:
        return ""
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if not 1 <= lineno <= len(lines):
        return ""
    return lines[lineno - 1].decode("utf-8", "replace").strip()[:200]
