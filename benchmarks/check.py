"""The student's loop: ``gradprop check`` on a whole correct chapter-5 file, cold and warm, beside
``pytest -n auto --submission`` on the same file.

    python benchmarks/check.py [--repeat 3]

The file is ``examples/book_correct.py`` (chapter 5 only: MulLayer .. TwoLayerNet), copied into
a temporary folder outside the repository, which is also where every command runs.

- cold: a fresh process and on-disk caches as right after ``pip install``: ``XDG_CACHE_HOME``
  points at a new empty folder (JAX's compile cache and anything else gradprop keeps there;
  ``GRADPROP_JAX_CACHE`` and ``GRADPROP_STORE`` are unset so that they default into it);
- warm: the same command again, a fresh process each time, with what the cold run left on disk
  (median of ``--repeat`` runs).

Each command gets its own cache folder, so that pytest does not profit from check's cold run.
Wall time around the whole command (time.perf_counter), exit status and the last line printed.
Prints a table; writes ``benchmarks/results/check.json``. Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from machine import describe, machine, reference
from machine import timed as machine_timed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUBMISSION = ROOT / "examples" / "book_correct.py"

COMMANDS = {
    "gradprop check": [sys.executable, "-m", "gradprop.cli", "check", "my_layers.py"],
    "pytest -n auto --submission": [sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
                                    "--submission", "my_layers.py"],
}


def timed(cmd: list[str], cwd: Path, cache: Path) -> dict:
    """``cmd`` run whole from ``cwd`` with its caches in ``cache`` (``machine.timed``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADPROP_JAX_CACHE", "GRADPROP_STORE", "CI")}
    env["XDG_CACHE_HOME"] = str(cache)
    run = machine_timed(cmd, cwd, env)
    run.pop("stderr")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm runs per command (default 3; median)")
    args = parser.parse_args()

    from gradprop.check import EXAMPLES

    where = machine()
    ref = reference()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gradprop-check-bench-") as tmp:
        work = Path(tmp) / "hw"
        work.mkdir()
        shutil.copyfile(SUBMISSION, work / "my_layers.py")
        for name, cmd in COMMANDS.items():
            cache = Path(tmp) / f"cache-{len(results)}"
            cold = timed(cmd, work, cache)
            print(f"  {name}, cold: {cold['wall_s']:.1f} s, exit {cold['exit']}", file=sys.stderr)
            warm = [timed(cmd, work, cache) for _ in range(args.repeat)]
            seconds = ", ".join(f"{w['wall_s']:.1f}" for w in warm)
            print(f"  {name}, warm: {seconds} s", file=sys.stderr)
            results[name] = {"cold": cold, "warm": warm,
                             "warm_median_s": statistics.median(w["wall_s"] for w in warm),
                             "warm_median_cpu_s": statistics.median(w["cpu_s"] for w in warm)}

    print(f"Machine: {describe(where)}. Reference workload (benchmarks/machine.py: ten fresh Pythons importing "
          f"numpy): {ref['wall_s']:.2f} s wall, {ref['cpu_s']:.2f} s CPU.\n")
    print(f"Table: a correct chapter-5 file (examples/book_correct.py) checked from a folder outside the "
          f"repository, {os.cpu_count()} CPUs; wall time of the whole command. cold = fresh process, empty "
          f"on-disk caches (a new XDG_CACHE_HOME, as after pip install); warm = run again, median of "
          f"{args.repeat}. CPU = user + system seconds of every process the command started (a cpuacct "
          f"cgroup; where none can be made, of those it waited for). gradprop check: "
          f"{EXAMPLES} examples per input strategy, stops an item at its first finding, 2 processes; "
          f"pytest: the ci profile (derandomized, 20 examples per property).\n")
    print("| command | cold s | warm s | cold CPU s | warm CPU s | load before (cold) | exit | last line |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(f"| `{name}` | {r['cold']['wall_s']:.1f} | {r['warm_median_s']:.1f} | {r['cold']['cpu_s']:.1f} | "
              f"{r['warm_median_cpu_s']:.1f} | {r['cold']['load_before']:.1f} | {r['cold']['exit']} "
              f"| {r['cold']['last_line']} |")
    print("\ntargets for gradprop check: <= 10 s cold, <= 3 s warm")
    for name, r in results.items():
        print(f"{name}: cold {r['cold']['wall_s'] / ref['wall_s']:.1f}, warm {r['warm_median_s'] / ref['wall_s']:.1f} "
              f"reference workloads")

    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "check.json").write_text(json.dumps({
        "submission": "examples/book_correct.py", "machine": where, "reference": ref, "cpus": os.cpu_count(), "check_examples": EXAMPLES,
        "repeat": args.repeat, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
