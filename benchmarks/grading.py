"""Grading throughput: gradprop's grader against a straightforward torch-gradcheck grader.

    python benchmarks/grading.py N [--jobs 2]

Both graders get the same N copies of ``examples/book_correct.py`` (a correct submission) in a
temporary folder, and the same number of parallel workers (``--jobs``, 2 by default: the 2 cores
of these machines). Wall time is measured around the whole run with time.perf_counter.

- gradprop: one ``gradprop grade COPIES --out DIR -j JOBS`` (run as ``python -m gradprop.cli``):
  every item, every property, Hypothesis' ``grading`` profile, each submission in a sandboxed
  child process. Before the clock starts, ``python -m gradprop.properties.warm`` (what the
  Gradescope ``setup.sh`` runs) fills the on-disk store and JAX's compile cache, as an
  instructor's first grading run would; its time is printed apart.
- torch: ``python benchmarks/torch_gradcheck.py COPY``, one fresh process per submission, at most
  JOBS at a time: import torch, load the file, ``gradcheck`` (slow mode) on each item with a
  backward, on one input each, print pass/fail. No sandbox, no time limit, no other property.

Each grader runs ``--rounds`` times (2 by default), in the order A B B A: on a shared machine the
load drifts, and this way a drift falls on both graders alike. The figures are over all rounds.
Prints a table of submissions per minute and the ratio; writes ``benchmarks/results/grading.json``.
Nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUBMISSION = ROOT / "examples" / "book_correct.py"


def copies(folder: Path, n: int) -> list[Path]:
    paths = [folder / f"student_{i:03d}.py" for i in range(n)]
    for p in paths:
        shutil.copyfile(SUBMISSION, p)
    return paths


def run_gradprop(paths: list[Path], out: Path, jobs: int) -> tuple[float, list[float], str]:
    """Wall seconds of one ``gradprop grade`` run, each submission's seconds, and the scores it
    wrote (one distinct value expected: the copies are identical)."""
    cmd = [sys.executable, "-m", "gradprop.cli", "grade", *map(str, paths), "--out", str(out), "-j", str(jobs)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        raise SystemExit(f"gradprop grade exited {done.returncode}")
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    scores = sorted({f"{row['score']}/{row['max_score']}" for row in rows})
    # each submission's own time, as the grader reports it (results.json's execution_time)
    each = [json.loads((out / row["submission"] / "results.json").read_text())["execution_time"] for row in rows]
    return wall, each, ", ".join(scores)


def run_torch(paths: list[Path], jobs: int) -> tuple[float, list[float], str]:
    """Wall seconds of the torch grader over every path, ``jobs`` processes at a time, each
    process's seconds, and what they printed last (one distinct line expected)."""
    script = HERE / "torch_gradcheck.py"
    pending, running, each, finals = list(paths), [], [], set()
    start = time.perf_counter()
    while pending or running:
        while pending and len(running) < jobs:
            running.append((time.perf_counter(), subprocess.Popen(
                [sys.executable, str(script), str(pending.pop(0))], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        began, proc = running.pop(0)
        stdout, stderr = proc.communicate()
        each.append(time.perf_counter() - began)
        if proc.returncode != 0:
            print(stderr, file=sys.stderr)
            raise SystemExit(f"torch grader exited {proc.returncode}")
        finals.add(stdout.strip().splitlines()[-1])
    return time.perf_counter() - start, each, ", ".join(sorted(finals))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="how many copies of examples/book_correct.py to grade")
    parser.add_argument("--jobs", "-j", type=int, default=2, help="parallel workers for both graders (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each grader, order A B B A (default 2)")
    args = parser.parse_args()

    load = os.getloadavg()[0]  # the machine is shared: other processes move both graders' figures
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradprop.properties.warm"], cwd=ROOT, check=True, capture_output=True)
    warm = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="gradprop-grading-") as tmp:
        paths = copies(Path(tmp), args.n)
        graders = {"gradprop": lambda r: run_gradprop(paths, Path(tmp) / f"out{r}", args.jobs),
                   "torch_gradcheck": lambda r: run_torch(paths, args.jobs)}
        runs: dict[str, list] = {name: [] for name in graders}
        for r in range(args.rounds):  # A B B A: a load that drifts during the run falls on both alike
            for name in (list(graders) if r % 2 == 0 else list(graders)[::-1]):
                runs[name].append(graders[name](r))
                print(f"  {name}, round {r + 1}: {runs[name][-1][0]:.1f} s", file=sys.stderr)

    rows = {name: (sum(wall for wall, _, _ in rs), [e for _, each, _ in rs for e in each],
                   ", ".join(sorted({result for _, _, result in rs}))) for name, rs in runs.items()}
    graded = args.n * args.rounds
    figures = {name: {"wall_s": wall, "submissions_per_min": 60 * graded / wall,
                      "per_submission_s": {"median": statistics.median(each), "max": max(each)},
                      # what the rate tends to once every worker is past its first submission
                      "steady_submissions_per_min": 60 * args.jobs / statistics.median(each),
                      "result": result}
               for name, (wall, each, result) in rows.items()}
    print(f"Table: grading {args.n} copies of examples/book_correct.py with {args.jobs} parallel workers, "
          f"{os.cpu_count()} CPUs, {args.rounds} rounds per grader in the order A B B A; wall time summed over "
          f"each grader's rounds (time.perf_counter). gradprop = `gradprop grade "
          f"-j {args.jobs}` (every property of every item, sandboxed, grading profile; caches warmed "
          f"beforehand by `python -m gradprop.properties.warm`, {warm:.1f} s, not counted). torch = one "
          f"process per submission running torch gradcheck (slow mode) on each item with a backward, one "
          f"input each. Per submission: the "
          f"grader's own execution_time (gradprop) or the process's wall time (torch); steady = jobs x 60 / "
          f"median, the rate once every worker is past its first submission. 1-minute load average before "
          f"the run: {load:.1f}.\n")
    print("| grader | submissions | wall s | submissions / min | per submission s (median, max) "
          "| steady submissions / min | result |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, f in figures.items():
        each = f["per_submission_s"]
        print(f"| {name} | {graded} | {f['wall_s']:.1f} | {f['submissions_per_min']:.1f} | "
              f"{each['median']:.1f}, {each['max']:.1f} | {f['steady_submissions_per_min']:.1f} | {f['result']} |")
    ratio = figures["gradprop"]["submissions_per_min"] / figures["torch_gradcheck"]["submissions_per_min"]
    print(f"\ngradprop / torch gradcheck grader: {ratio:.2f}x the submissions per minute "
          f"(targets: >= 60 per minute, >= 3x)")

    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "grading.json").write_text(json.dumps({
        "submissions": args.n, "rounds": args.rounds, "jobs": args.jobs, "cpus": os.cpu_count(), "warm_s": warm,
        "load_average_before": load,
        **figures, "gradprop_over_torch": ratio,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
