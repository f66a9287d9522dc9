"""What every benchmark here says about where it ran, and how it times a whole command.

A figure measured on one machine tells a reader with another machine little: each benchmark
prints the machine (cores, CPU model, versions), the load before each command, wall and CPU
seconds, and the same run's time of ``REFERENCE``, a fixed workload of the kind grading is made
of (Python processes that start, import numpy and compute a little), so that a figure can be
read as a multiple of it and compared across machines.
"""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Mapping, Sequence

#: a cpuacct cgroup (v1) counts the CPU of every process started inside it, even of those no
#: process waits for (a fork server, where gradprop starts one, outlives the command): used where we may make one
_CPUACCT = Path("/sys/fs/cgroup/cpuacct")

#: the reference workload: ten fresh Pythons, each importing numpy and doing 2000 small array ops
REFERENCE = [sys.executable, "-c",
             "import subprocess, sys\n"
             "code = 'import numpy as np\\na = np.ones((8, 8))\\nfor _ in range(2000): a = a @ a * 0.125'\n"
             "for _ in range(10): subprocess.run([sys.executable, '-c', code], check=True)\n"]


def machine() -> dict:
    """Cores, CPU model, Python and the versions that decide speed, and the load average now."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("gradprop", "numpy", "jax", "hypothesis", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"cpus": len(os.sched_getaffinity(0)), "cpu_model": model, "python": platform.python_version(),
            "versions": versions, "load_average": round(os.getloadavg()[0], 2)}


def describe(m: Mapping) -> str:
    return (f"{m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
            + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; load average {m['load_average']}")


def timed(cmd: Sequence[str], cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> dict:
    """Run ``cmd``: wall seconds, CPU seconds of every process it started (a cpuacct cgroup where
    we may make one, else those it waited for), its exit status and last line, the load before."""
    load = os.getloadavg()[0]
    group: Path | None = _CPUACCT / f"gradprop-bench-{os.getpid()}-{time.monotonic_ns()}"
    try:
        group.mkdir()
    except OSError:
        group = None
    join = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(list(cmd), cwd=cwd, env=dict(env) if env is not None else None, capture_output=True,
                          text=True, preexec_fn=join)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if group is not None:
        time.sleep(0.5)  # what outlives the command (a fork server) ends on its own
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        try:
            group.rmdir()
        except OSError:  # something still runs in it: left for the machine's next reboot
            pass
    else:
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "exit": done.returncode,
            "load_before": round(load, 2), "last_line": last, "stderr": done.stderr[-2000:]}


def reference() -> dict:
    """The reference workload, timed (see the module docstring)."""
    return timed(REFERENCE)
