"""Grading throughput: gradprop's grader against a straightforward torch-gradcheck grader, side by side.

    python benchmarks/grading.py [N ...] [--jobs 2] [--rounds 1]

For each N (12 and 60 by default: a class's first run, a lecture's), both graders get the same N
copies of ``examples/book_correct.py`` (a correct chapter-5 submission) in a temporary folder and
the same number of parallel workers (``--jobs``, 2 by default). Each round runs, one after the
other, so that a load that drifts falls on neighbours alike:

1. gradprop's **first run**: ``gradprop grade COPIES --out DIR -j JOBS`` with ``XDG_CACHE_HOME``
   pointed at a new empty folder (no store, no JAX compile cache: an instructor's first grading
   run after ``pip install``, nothing warmed up beforehand);
2. the **torch grader**: ``python benchmarks/torch_gradcheck.py -j JOBS COPIES``: one fresh process
   per submission, JOBS at a time, each importing torch and running gradcheck (slow mode) on each
   item with a backward, one input each; no sandbox, no time limit, no other property;
3. gradprop **again**, with the caches the first run left (steady state).

Every command is timed whole (``machine.timed``): wall seconds and the CPU seconds of every process
it started. The reference workload (``machine.REFERENCE``) is timed before and after, so that a
reader on another machine can scale the figures. Prints the machine, a Markdown table and the
ratios; writes ``benchmarks/results/grading.json``. Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from machine import describe, machine, reference, timed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUBMISSION = ROOT / "examples" / "book_correct.py"


def copies(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    paths = [folder / f"student_{i:03d}.py" for i in range(n)]
    for p in paths:
        shutil.copyfile(SUBMISSION, p)
    return [str(p) for p in paths]


def gradprop(paths: list[str], out: Path, cache: Path, jobs: int) -> dict:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("GRADPROP_STORE", None)
    run = timed([sys.executable, "-m", "gradprop.cli", "grade", *paths, "--out", str(out), "-j", str(jobs)],
                cwd=out.parent, env=env)
    if run["exit"] != 0:
        raise SystemExit(f"gradprop grade exited {run['exit']}:\n{run['stderr']}")
    with open(out / "grades.csv", newline="") as f:
        run["result"] = ", ".join(sorted({f"{row['score']}/{row['max_score']}" for row in csv.DictReader(f)}))
    return run


def torch(paths: list[str], jobs: int) -> dict:
    run = timed([sys.executable, str(HERE / "torch_gradcheck.py"), "-j", str(jobs), *paths], cwd=HERE)
    if run["exit"] != 0:
        raise SystemExit(f"the torch grader exited {run['exit']}:\n{run['stderr']}")
    run["result"] = run["last_line"].split(": ", 1)[-1]
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[12, 60], help="class sizes (default 12 60)")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="parallel workers for both graders (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of first run / torch / again (default 1)")
    args = parser.parse_args()

    where = machine()
    print(f"machine: {describe(where)}", file=sys.stderr)
    before = reference()
    runs: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="gradprop-grading-") as tmp:
        for n in args.sizes:
            paths = copies(Path(tmp) / f"class{n}", n)
            runs[n] = []
            for r in range(args.rounds):
                cache = Path(tmp) / f"cache{n}-{r}"
                row = {"first": gradprop(paths, Path(tmp) / f"first{n}-{r}", cache, args.jobs),
                       "torch": torch(paths, args.jobs),
                       "again": gradprop(paths, Path(tmp) / f"again{n}-{r}", cache, args.jobs)}
                runs[n].append(row)
                print(f"  {n} submissions, round {r + 1}: " + ", ".join(
                    f"{k} {v['wall_s']:.1f} s" for k, v in row.items()), file=sys.stderr)
    after = reference()

    print(f"Machine: {describe(where)}. Reference workload (`machine.REFERENCE`, ten fresh Pythons importing "
          f"numpy): {before['wall_s']:.2f} s wall, {before['cpu_s']:.2f} s CPU before the run; "
          f"{after['wall_s']:.2f} s / {after['cpu_s']:.2f} s after.\n")
    print(f"Grading N copies of examples/book_correct.py, {args.jobs} parallel workers for both graders, in "
          f"the order first run, torch, again ({args.rounds} round(s); medians over rounds). first = `gradprop "
          f"grade -j {args.jobs}` with an empty XDG_CACHE_HOME (nothing warmed up); again = the same with the "
          f"caches the first run left; torch = `python benchmarks/torch_gradcheck.py -j {args.jobs}` (a fresh "
          f"process per submission, gradcheck slow mode). CPU = seconds of every process the command started; "
          f"load = 1-minute load average before the command.\n")
    print("| N | grader | wall s | CPU s | submissions / min | load | result |")
    print("|---:|---|---:|---:|---:|---:|---|")
    figures = {}
    for n, rows in runs.items():
        med = {k: {f: statistics.median(row[k][f] for row in rows) for f in ("wall_s", "cpu_s", "load_before")}
               for k in rows[0]}
        for k, label in (("first", "gradprop, first run"), ("torch", "torch gradcheck"), ("again", "gradprop, again")):
            m = med[k]
            print(f"| {n} | {label} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {60 * n / m['wall_s']:.1f} | "
                  f"{m['load_before']:.1f} | {rows[0][k]['result']} |")
        figures[n] = {"runs": rows, "median": med,
                      "first_over_torch": med["torch"]["wall_s"] / med["first"]["wall_s"],
                      "again_over_torch": med["torch"]["wall_s"] / med["again"]["wall_s"],
                      "first_over_torch_cpu": med["torch"]["cpu_s"] / med["first"]["cpu_s"],
                      "torch_over_reference": med["torch"]["wall_s"] / before["wall_s"],
                      "first_over_reference": med["first"]["wall_s"] / before["wall_s"]}
    print()
    for n, f in figures.items():
        print(f"{n} submissions: gradprop grades {f['first_over_torch']:.2f}x the torch grader's rate in its first "
              f"run, {f['again_over_torch']:.2f}x again (CPU: {f['first_over_torch_cpu']:.2f}x less in the first "
              f"run); the first run took {f['first_over_reference']:.1f} reference workloads, torch "
              f"{f['torch_over_reference']:.1f}.")
    for rows in runs.values():  # a run's stderr is for the exit message above, not for the record
        for row in rows:
            for run in row.values():
                run.pop("stderr", None)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "grading.json").write_text(json.dumps({
        "machine": where, "jobs": args.jobs, "rounds": args.rounds, "reference": {"before": before, "after": after},
        "sizes": {str(n): f for n, f in figures.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
