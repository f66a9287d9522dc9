"""The examples a grade is decided on, drawn once for the release and shipped with it.

Derandomized Hypothesis draws the same examples for the same strategy and settings, but only
under the same Hypothesis version: two machines with two versions would grade a submission on
different inputs, and a first run drew every example list again (4 s of CPU per grading worker
for the book's chapter-5 items, 16 s for every item). So the example lists of the two fixed
budgets, the grader's (``grading`` profile, 25) and ``gradprop check``'s (3), are drawn by
Hypothesis here, with the strategies and settings of this source tree, and kept in
``examples.bin``: every machine and every run grades on these, whatever Hypothesis it has.

The file names the sources the examples depend on (``SOURCES``, by hash). While they match it is
used; after an edit of a strategy it is ignored (the examples are drawn live and kept in the
on-disk store, as for any other budget) and ``tests/test_frozen.py`` fails until it is written
again::

    python -m gradprop.properties.frozen

The file is a zlib-compressed ``store.pack``: arrays and JSON, no pickle, reading it runs no code.
Each list is packed on its own (a byte array in the outer pack), so that a process unpacks only
the lists it grades on (the chapter-5 items are a fifth of the file: unpacking all of it was a
tenth of a second in every grading worker's first submission).

Searches for a smaller failing input (shrinking) and hints still ask Hypothesis: they describe a
finding, they do not decide one.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .model import Case
from .store import pack, unpack

HERE = Path(__file__).resolve().parent
FILE = HERE / "examples.bin"
#: what the drawn examples are a function of, besides Hypothesis itself
SOURCES = ("registry.py", "strategies.py", "profiles.py", "model.py")


def budgets() -> tuple[int, ...]:
    """The example budgets shipped: the grader's and the student's check's."""
    from hypothesis import settings

    from gradprop.check import EXAMPLES

    from . import profiles  # noqa: F401 - registers the grading profile

    return (settings.get_profile("grading").max_examples, EXAMPLES)


def fingerprint() -> str:
    h = hashlib.blake2b(digest_size=12)
    for name in SOURCES:
        h.update(name.encode())
        h.update((HERE / name).read_bytes())
    return h.hexdigest()


def key(item: str, regime: str, max_examples: int) -> str:
    return f"{item}|{regime}|{max_examples}"


@functools.cache
def _shipped() -> dict[str, np.ndarray]:
    """The shipped lists by ``key``, each still packed, or nothing when the file is missing or stale."""
    try:
        content = unpack(zlib.decompress(FILE.read_bytes()))
    except (OSError, zlib.error, ValueError, KeyError):
        return {}
    if content.get("fingerprint") != fingerprint():
        return {}
    return content["examples"]


@functools.cache
def _list(name: str) -> list[dict] | None:
    packed = _shipped().get(name)
    return None if packed is None else unpack(packed.tobytes())


def plain(case: Case) -> dict:
    """What a case is made of, as ``store.pack`` writes it."""
    return {"init": dict(case.init), "inputs": dict(case.inputs), "seed": case.seed, "extra": dict(case.extra)}


def cases(item: str, regime: str, max_examples: int) -> list[Case] | None:
    """The shipped cases of one example list, or None if it is not shipped (another budget, a
    new regime, a stale file)."""
    fields = _list(key(item, regime, max_examples))
    return None if fields is None else [Case(**f) for f in fields]


def wanted() -> Iterator[tuple[Any, dict, int]]:
    """Every (item, regime, budget) a grade or a check may ask for."""
    from .checks import properties_for
    from .registry import ITEMS
    from .runner import _regime_key

    for item in ITEMS:
        regimes = {_regime_key(p.regime): dict(p.regime) for p in properties_for(item)}
        for regime in regimes.values():
            for budget in budgets():
                yield item, regime, budget


def draw() -> dict:
    """Every wanted example list, drawn by Hypothesis now (nothing shipped or stored is read)."""
    from hypothesis import settings

    from . import runner

    examples = {}
    for item, regime, budget in wanted():
        drawn = runner.draw(item, regime, settings(settings.get_profile("grading"), max_examples=budget))
        packed = pack([plain(c) for c in drawn])
        examples[key(item.name, runner._regime_key(regime), budget)] = np.frombuffer(packed, dtype=np.uint8)
    return {"fingerprint": fingerprint(), "hypothesis": metadata.version("hypothesis"), "examples": examples}


def main() -> int:
    content = draw()
    FILE.write_bytes(zlib.compress(pack(content), 9))
    print(f"{FILE}: {len(content['examples'])} example lists, drawn by Hypothesis {content['hypothesis']}, "
          f"{FILE.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
