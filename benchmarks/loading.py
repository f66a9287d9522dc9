"""What reading a submission costs: a file, a notebook, a book-layout folder, and that folder
beside 200 scripts that train at import (which the loader parses but never runs).

    python benchmarks/loading.py

Prints, for each, the median time of ``gradprop.loader.load`` in this process and of starting a
``SandboxSession`` (a fresh child: interpreter, numpy, the scratch copy, the load).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from gradprop.loader import load
from gradprop.sandbox import SandboxSession

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPT = "import numpy as np\nfrom common.layers import *\n" + "x = np.arange(10)\nprint(TwoLayerNet(10, 5, 2).predict(x))\n" * 20


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def book_folder(top: Path, scripts: int) -> Path:
    """The book's layout: every layer in common/layers.py, the network in ch05/, and scripts."""
    (top / "common").mkdir(parents=True)
    (top / "ch05").mkdir()
    (top / "common" / "layers.py").write_text((EXAMPLES / "book_correct.py").read_text(encoding="utf-8"),
                                              encoding="utf-8")
    (top / "ch05" / "two_layer_net.py").write_text("import sys, os\nsys.path.append(os.pardir)\n"
                                                   "from common.layers import *\n", encoding="utf-8")
    for i in range(scripts):
        folder = top / f"ch{i % 8:02d}"
        folder.mkdir(exist_ok=True)
        (folder / f"train_{i}.py").write_text(SCRIPT, encoding="utf-8")
    return top


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("examples/notes.py", EXAMPLES / "notes.py"), ("examples/notes.ipynb", EXAMPLES / "notes.ipynb"),
                 ("book layout", book_folder(Path(tmp) / "book", 0)),
                 ("book layout + 200 scripts", book_folder(Path(tmp) / "big", 200))]
        print(f"{'submission':<28} {'load (ms)':>10} {'sandbox start (s)':>18}")
        for name, path in cases:
            in_process = median_seconds(lambda: load(path), 5)

            def start() -> None:
                with SandboxSession(path) as session:
                    assert session.import_error is None, session.import_error

            print(f"{name:<28} {in_process * 1000:>10.1f} {median_seconds(start, 3):>18.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
