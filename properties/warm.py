"""Fill the caches a grading run reads: ``python -m gradprop.properties.warm [--max-examples N]``.

Puts gradprop's own layers (trusted: they run in this process) through every property of every
item under the grading profile. That draws every derandomized example list and asks the JAX
reference every question a correct submission raises; both land in the on-disk store
(``properties/store.py``), and the compiled programs in JAX's compile cache. Gradescope's
``setup.sh`` runs it once when the image is built, so that grading a correct submission traces
and compiles nothing. ``--max-examples`` must match the grader's (it changes the examples).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from hypothesis import settings as Settings


def warm(settings: Settings) -> list[str]:
    """Every item on gradprop's own layers under ``settings``; the properties that did not hold
    (none, unless gradprop itself is broken)."""
    import gradprop.layers as layers
    from gradprop.session import InProcessSession

    from .registry import ITEMS
    from .runner import evaluate_item
    from .store import store

    session = InProcessSession(dict(vars(layers)))
    failed = [f"{o.item}: {o.prop} [{o.tag}]" for item in ITEMS
              for o in evaluate_item(session, item, "gradprop.layers", settings) if not o.passed]
    store().flush()
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    from gradprop.grading import GradeOptions

    from .store import store

    parser = argparse.ArgumentParser(prog="python -m gradprop.properties.warm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="the grader's --max-examples, if it is given one")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    failed = warm(GradeOptions(max_examples=args.max_examples).settings())
    where = store().path or "nowhere (GRADPROP_STORE is off)"
    print(f"gradprop: caches warm in {time.perf_counter() - start:.1f} s; store: {where}")
    for line in failed:  # a cache that stays cold costs time, not grades: say so and go on
        print(f"gradprop: warning: gradprop's own layers fail {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
