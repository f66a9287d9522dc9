"""The whole suite's time: ``pytest -n auto`` from empty caches, then with them warm.

    python benchmarks/suite.py [--repeat 3] [--dev]

Runs the README's test command on this checkout as CI does (``CI=true``; the derandomized
profile, whose examples and reference answers the store keeps; with ``--dev``, with
``--hypothesis-profile dev``: new random examples on every run) with ``XDG_CACHE_HOME`` pointed
at a new empty folder, so that gradprop's store and JAX's compile cache start empty
(``GRADPROP_STORE`` and ``GRADPROP_JAX_CACHE`` unset): the fresh run. Then ``--repeat`` more runs
with what it left: the warm runs. Wall time with
time.perf_counter around each pytest process; CPU is the machine's busy time over the run (from
/proc/stat, so it includes anything else running; the load average before each run is printed
beside it). A fresh clone's ``bash .ci/run`` adds a venv and an install to the fresh run.

Prints a table; writes ``benchmarks/results/suite.json`` (``suite_dev.json`` with ``--dev``).
Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, machine, reference

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (every core, every process)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run(cache: Path, dev: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADPROP_STORE", "GRADPROP_JAX_CACHE")}
    env.update(CI="true", XDG_CACHE_HOME=str(cache))
    load = os.getloadavg()[0]
    cpu, start = busy_seconds(), time.perf_counter()
    profile = ["--hypothesis-profile", "dev"] if dev else []
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider", *profile],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, busy_seconds() - cpu
    lines = done.stdout.strip().splitlines() or [""]
    result = {"wall_s": round(wall, 1), "busy_cpu_s": round(cpu, 1), "load_before": round(load, 2),
              "exit": done.returncode, "summary": lines[-1].strip("= ")}
    if done.returncode or "warning" in lines[-1]:  # what went wrong, to read later: the report's tail
        result["tail"] = lines[-60:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dev", action="store_true", help="--hypothesis-profile dev: new random examples each run")
    args = parser.parse_args()
    where = machine()
    ref = reference()
    cache = Path(tempfile.mkdtemp(prefix="gradprop-suite-"))
    try:
        fresh = run(cache, args.dev)
        print(f"  fresh: {fresh['wall_s']} s ({fresh['summary']})", file=sys.stderr)
        warm = []
        for _ in range(args.repeat):
            warm.append(run(cache, args.dev))
            print(f"  warm: {warm[-1]['wall_s']} s ({warm[-1]['summary']})", file=sys.stderr)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    command = "CI=true pytest -n auto --hypothesis-profile dev`" if args.dev else "CI=true pytest -n auto`"
    print(f"Machine: {describe(where)}. Reference workload (benchmarks/machine.py: ten fresh Pythons importing "
          f"numpy): {ref['wall_s']:.2f} s wall, {ref['cpu_s']:.2f} s CPU.\n")
    print(f"Table: `{command} on this checkout, {os.cpu_count()} CPUs; fresh = empty caches (a new "
          f"XDG_CACHE_HOME), warm = {args.repeat} runs after it; wall time of the pytest process; busy CPU = the "
          f"machine's, over the run.\n")
    print("| run | wall s | busy CPU s | load before | exit | pytest |\n|---|---:|---:|---:|---:|---|")
    for name, r in [("fresh", fresh)] + [(f"warm {i + 1}", w) for i, w in enumerate(warm)]:
        print(f"| {name} | {r['wall_s']:.1f} | {r['busy_cpu_s']:.1f} | {r['load_before']:.1f} | {r['exit']} | "
              f"{r['summary']} |")
    median = statistics.median(w["wall_s"] for w in warm)
    print(f"\nwarm median {median:.1f} s (target <= 30 s); fresh {fresh['wall_s']:.1f} s (target <= 60 s)")
    out = HERE / "results" / ("suite_dev.json" if args.dev else "suite.json")
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"machine": where, "reference": ref, "cpus": os.cpu_count(), "fresh": fresh, "warm": warm, "warm_median_s": median},
                              indent=2) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
