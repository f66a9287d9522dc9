"""What the sandbox's layers cost: start-up of one child, with every layer and with none.

    python benchmarks/sandbox_startup.py [N]

Starts N children (15 by default) for examples/book_correct.py each way, alternating, and
prints the median; writes benchmarks/results/sandbox_startup.json. "none" keeps only what is
not a layer of isolation (the scratch copy and the scrubbed environment are kept: they cost
next to nothing).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import gradprop.sandbox as sandbox
from gradprop import isolation

HERE = Path(__file__).resolve().parent
SUBMISSION = HERE.parent / "examples" / "book_correct.py"


def start_once(iso: isolation.Isolation) -> float:
    sandbox.probe = lambda: iso  # the session asks this for its layers
    t = time.perf_counter()
    session = sandbox.SandboxSession(SUBMISSION)
    seconds = time.perf_counter() - t
    session.close()
    return seconds


def main(n: int = 15) -> None:
    full = isolation.probe()
    bare = isolation.Isolation(("scratch", "env", "rlimits"), (), None, 0, False, ())
    times: dict[str, list[float]] = {"all layers": [], "none": []}
    start_once(full), start_once(bare)  # warm the file cache
    for _ in range(n):
        times["all layers"].append(start_once(full))
        times["none"].append(start_once(bare))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"layers on this machine: {', '.join(full.on)}")
    for k, v in medians.items():
        print(f"{k:>10}: {v * 1000:6.0f} ms per child start (median of {n})")
    print(f"cost of the layers: {(medians['all layers'] - medians['none']) * 1000:.0f} ms per child")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "sandbox_startup.json").write_text(json.dumps(
        {"layers": list(full.on), "n": n, "median_seconds": medians}, indent=2) + "\n")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
