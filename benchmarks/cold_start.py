"""Cold start: what one Gradescope run of one submission costs, from a fresh process.

    python benchmarks/cold_start.py [--repeats 3]

In a temporary folder: first ``python -m gradprop.properties.warm`` (what the bundle's
``setup.sh`` runs once when the image is built) with the on-disk store and JAX's compile cache
pointed at empty folders; then, ``--repeats`` times, the bundle's own command,
``python -m gradprop.cli gradescope-run --root ROOT`` with ``examples/book_correct.py`` as
``ROOT/submission``: a fresh interpreter, empty in-memory caches, the disk caches as setup left
them. For comparison the same run with the store off (``GRADPROP_STORE=off``: JAX's compile cache
only, as before the store existed). Wall time with time.perf_counter around each process.

Prints a table; writes ``benchmarks/results/cold_start.json``. Nothing here asserts on time.
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
SUBMISSION = ROOT / "examples" / "book_correct.py"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        raise SystemExit(f"{' '.join(cmd[:4])} exited {done.returncode}")
    return wall, done.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    where = machine()
    ref = reference()
    load = os.getloadavg()[0]  # the machine is shared: other processes move the figures
    with tempfile.TemporaryDirectory(prefix="gradprop-cold-") as tmp:
        tmp = Path(tmp)
        (tmp / "ag" / "submission").mkdir(parents=True)
        shutil.copyfile(SUBMISSION, tmp / "ag" / "submission" / SUBMISSION.name)
        env = {**os.environ, "GRADPROP_STORE": str(tmp / "store"), "GRADPROP_JAX_CACHE": str(tmp / "jax")}
        setup, _ = timed([sys.executable, "-m", "gradprop.properties.warm"], env)
        run = [sys.executable, "-m", "gradprop.cli", "gradescope-run", "--root", str(tmp / "ag")]
        rows = {}
        for name, extra in (("store + JAX cache (setup.sh warmed both)", {}),
                            ("JAX cache only (GRADPROP_STORE=off)", {"GRADPROP_STORE": "off"})):
            walls, result = [], ""
            for _ in range(args.repeats):
                wall, result = timed(run, {**env, **extra})
                walls.append(wall)
            rows[name] = {"median_s": statistics.median(walls), "runs_s": walls, "result": result}

    print(f"Machine: {describe(where)}. Reference workload (benchmarks/machine.py: ten fresh Pythons importing "
          f"numpy): {ref['wall_s']:.2f} s wall, {ref['cpu_s']:.2f} s CPU; the warm-up took {setup / ref['wall_s']:.1f} "
          f"of them.\n")
    print(f"Table: one fresh `python -m gradprop.cli gradescope-run` on examples/book_correct.py "
          f"(wall time, time.perf_counter, median of {args.repeats}), {os.cpu_count()} CPUs, after "
          f"`python -m gradprop.properties.warm` into empty cache folders ({setup:.1f} s, once); 1-minute "
          f"load average before the run: {load:.1f}.\n")
    print("| disk caches | cold start s (median) | runs s | result |")
    print("|---|---:|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['median_s']:.2f} | {', '.join(f'{w:.2f}' for w in r['runs_s'])} | {r['result']} |")
    print("\ntarget: <= 3 s")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "cold_start.json").write_text(json.dumps(
        {"machine": where, "reference": ref, "cpus": os.cpu_count(), "load_average_before": load, "setup_warm_s": setup, "repeats": args.repeats,
         **rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
