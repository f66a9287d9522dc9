"""The sandbox child confines itself before any submission code (or numpy) is loaded.

Runs first thing in the child (see ``BOOTSTRAP`` in ``gradprop.sandbox``), with the standard
library only. Every layer here is the kernel's, asked for through its system calls; the parent
(``gradprop.isolation``) decides which are on and passes them as one JSON argument:

- ``cgroup_fds``: fds of cgroups' ``cgroup.procs`` to join (memory and process count are then
  counted for the whole tree of processes, not per process);
- ``uid``: when started as root, drop to this unprivileged uid/gid with no supplementary groups;
- no new privileges (``PR_SET_NO_NEW_PRIVS``): no setuid binary can give them back;
- ``landlock``: read-only access to ``read`` paths, listing only of ``list`` folders (on the way
  to what is hidden), read-write to ``write`` paths, nothing else on the file system; no TCP bind/connect; no signals or abstract unix sockets out of the sandbox
  (Landlock ABI >= 6);
- rlimits: address space, file size, core dumps, and (with a uid of its own) the number of tasks.

If a layer the parent asked for cannot be set up, the child exits with ``JAIL_STATUS`` and says
why on stderr (the diagnostics pipe): it never runs a submission with less than was promised.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import struct
import sys

JAIL_STATUS = 87

# Landlock (include/uapi/linux/landlock.h); the same syscall numbers on x86_64 and aarch64.
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_CREATE_VERSION = 1
_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | (1 << 14) | (1 << 15)  # + truncate, ioctl_dev
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class JailError(RuntimeError):
    pass


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is not available."""
    if not sys.platform.startswith("linux"):
        return 0
    abi = _libc.syscall(ctypes.c_long(_SYS_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_VERSION))
    return max(int(abi), 0)


def _fail(what: str) -> None:
    err = ctypes.get_errno()
    raise JailError(f"{what}: {os.strerror(err) if err else 'failed'}")


def _landlock(read: list[str], write: list[str], abi: int, listed: list[str] = ()) -> None:
    fs_all = _FS_ALL_BY_ABI.get(abi, (1 << 16) - 1)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs_all, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    buf = ctypes.create_string_buffer(attr[:size], size)
    fd = _libc.syscall(ctypes.c_long(_SYS_CREATE), buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        _fail("landlock_create_ruleset")
    try:
        read_rights = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for paths, rights in ((read, read_rights), (listed, _FS_READ_DIR), (write, fs_all)):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path this machine does not have (e.g. /lib64)
                try:
                    allowed = rights if os.path.isdir(path) else rights & _FS_FILE_ONLY
                    if not allowed:
                        continue
                    rule = ctypes.create_string_buffer(struct.pack("=Qi", allowed, pfd), 12)
                    if _libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH),
                                     rule, ctypes.c_uint32(0)) < 0:
                        _fail(f"landlock_add_rule({path})")
                finally:
                    os.close(pfd)
        if _libc.syscall(ctypes.c_long(_SYS_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
            _fail("landlock_restrict_self")
    finally:
        os.close(fd)


def _limit(which: int, value: int) -> None:
    """Best effort, as before the other layers: some systems refuse some limits (macOS, RLIMIT_AS)."""
    try:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def confine(spec: dict) -> None:
    """Apply ``spec`` (see the module docstring) to this process, for good."""
    for fd in spec.get("cgroup_fds", ()):
        try:
            os.write(fd, b"0\n")  # "0": the writing process itself (done while still root)
        except OSError as exc:
            raise JailError(f"joining a cgroup: {exc.strerror}") from None
        finally:
            os.close(fd)
    uid = spec.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getgroups():
            raise JailError("the uid could not be dropped")
    if sys.platform.startswith("linux") and _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    if spec.get("landlock"):
        _landlock(spec["read"], spec["write"], int(spec["landlock"]), spec.get("list", []))
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, spec.get("fsize_mb", 256) * 1024 * 1024)
    if spec.get("memory_mb"):
        _limit(resource.RLIMIT_AS, spec["memory_mb"] * 1024 * 1024)
    if spec.get("nproc"):
        _limit(resource.RLIMIT_NPROC, spec["nproc"])


def main(argv: list[str]) -> None:
    """``confine(json.loads(argv[0]))``, or exit with JAIL_STATUS saying why."""
    try:
        confine(json.loads(argv[0]))
    except (JailError, OSError, ValueError) as exc:
        sys.stderr.write(f"gradprop sandbox: {exc}\n")
        sys.stderr.flush()
        os._exit(JAIL_STATUS)
