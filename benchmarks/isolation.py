"""What the sandbox's isolation layers cost: a child's start-up, and a whole submission's grading.

    python benchmarks/isolation.py [N]

Alternates, N times each (10 by default), with every layer this machine has and with none:
starting one sandbox child for examples/book_correct.py, and grading that file in full
(``grade_submission``, every item, the grading profile, one process, warm JAX cache). Prints
medians and the throughput ratio; writes benchmarks/results/isolation.json. "none" keeps what
is not a layer of isolation (the scratch copy and the scrubbed environment cost next to nothing).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import gradprop.sandbox as sandbox
from gradprop import isolation
from gradprop.grading import GradeOptions, grade_submission

HERE = Path(__file__).resolve().parent
SUBMISSION = HERE.parent / "examples" / "book_correct.py"


def use(iso: isolation.Isolation) -> None:
    sandbox.probe = lambda: iso  # what each new session asks for its layers


def start_once() -> float:
    t = time.perf_counter()
    sandbox.SandboxSession(SUBMISSION).close()
    return time.perf_counter() - t


def grade_once(mode: str) -> float:
    t = time.perf_counter()
    result = grade_submission(SUBMISSION, GradeOptions(isolation=mode))
    took = time.perf_counter() - t
    if result.errors or result.score != result.max_score:  # refused, or not graded in full: no figure
        raise SystemExit(f"{SUBMISSION.name} was not graded in full ({mode}): {result.score}/{result.max_score}, "
                         f"{result.errors or [i.tags for i in result.items]}")
    return took


def main(n: int = 10) -> None:
    full = isolation.probe()
    bare = isolation.Isolation(("scratch", "env", "rlimits"), (), None, 0, False, ())
    modes = {"all layers": full, "none": bare}
    # "none" is graded as --isolation weak would grade it (auto refuses a machine without the layers)
    accept = {"all layers": "auto", "none": "weak"}
    for name, iso in modes.items():  # warm: imports, the file cache, JAX's compiled references
        use(iso)
        grade_once(accept[name])
    starts: dict[str, list[float]] = {k: [] for k in modes}
    grades: dict[str, list[float]] = {k: [] for k in modes}
    for _ in range(n):
        for name, iso in modes.items():
            use(iso)
            starts[name].append(start_once())
            grades[name].append(grade_once(accept[name]))
    start = {k: statistics.median(v) for k, v in starts.items()}
    grade = {k: statistics.median(v) for k, v in grades.items()}
    print(f"layers on this machine: {', '.join(full.on)}")
    print(f"{'':>12} {'child start':>12} {'one submission':>15} {'per minute':>11}")
    for k in modes:
        print(f"{k:>12} {start[k] * 1000:9.0f} ms {grade[k]:13.2f} s {60 / grade[k]:11.1f}")
    ratio = grade["none"] / grade["all layers"]
    print(f"throughput with the layers: {ratio:.2f} of without (median of {n}, one process)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "isolation.json").write_text(json.dumps({
        "layers": list(full.on), "n": n, "child_start_seconds": start, "submission_seconds": grade,
        "throughput_ratio_with_layers": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
