"""How long report.html takes to build, and how big it is, for classes of growing size.

    python benchmarks/report.py [N ...]        # default: 30 100 300 1000

Each class is N made-up results over the default rubric (every registry item): random shares of
each item's points, one or two finding tags on each item not fully earned, a hint on some. The
time is ``render_report`` alone, the best of 3 runs, measured with time.perf_counter. Prints a table; nothing here asserts on time.
"""
from __future__ import annotations

import argparse
import random
import time
from fractions import Fraction

from gradprop.findings import TAGS
from gradprop.grading import ItemResult, Rubric, SubmissionResult
from gradprop.report import render_report

HINTS = ("transposed", "times-batch", "db-first-row", "stale")


def made_up_class(n: int, rubric: Rubric, seed: int = 0) -> list[SubmissionResult]:
    rng = random.Random(seed)
    subs = []
    for i in range(n):
        items = []
        for name, weight in rubric.weights:
            score = weight if rng.random() < 0.6 else Fraction(rng.randint(0, 4), 4) * weight
            tags = () if score == weight else tuple(rng.sample(list(TAGS), rng.randint(1, 2)))
            hint = f"\n  Hint [{rng.choice(HINTS)}]: ..." if tags and rng.random() < 0.4 else ""
            items.append(ItemResult(name, score, weight, "failed" if tags else "passed", tags, hint))
        subs.append(SubmissionResult(f"student_{i:04d}", f"/{i}.py", tuple(items), ""))
    return subs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[30, 100, 300, 1000])
    sizes = parser.parse_args().sizes
    rubric = Rubric.default()
    print("| submissions | items | render ms (best of 3) | page KB |\n|---:|---:|---:|---:|")
    for n in sizes:
        subs = made_up_class(n, rubric)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            page = render_report(subs, rubric)
            times.append(time.perf_counter() - start)
        print(f"| {n} | {len(rubric.items)} | {min(times) * 1000:.0f} | {len(page.encode()) / 1024:.0f} |")


if __name__ == "__main__":
    main()
