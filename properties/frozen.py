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

With each list go **gradprop's own answers** on its cases (``checks._own_answer``: its own
layers' outputs and gradients, which settle a correct submission's values before JAX is asked),
as the checks ask for them on a correct layer set. Working them out was a quarter of a second of
CPU in every grading worker's first submission and in every ``gradprop check``. They are a
function of gradprop's own layers and of the checks (``ANSWER_SOURCES``, by hash): after an edit
of either they are not read (they are worked out live, as for any other case) until the file is
written again. They are recorded by screening a copy of gradprop's own layers as a submission
(``record_answers``); ``tests/test_frozen.py`` checks that they are what the layers answer now.
"""
from __future__ import annotations

import contextlib
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
#: what gradprop's own answers on them are a function of, besides the examples (paths from the
#: repository's root: the checks that ask for them, and gradprop's own layers)
ANSWER_SOURCES = ("properties/checks.py", "layers")


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


def answers_fingerprint() -> str:
    h = hashlib.blake2b(digest_size=12)
    for name in ANSWER_SOURCES:
        path = HERE.parent / name
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            h.update(f"{name}/{file.name}".encode())
            h.update(file.read_bytes())
    return h.hexdigest()


def key(item: str, regime: str, max_examples: int) -> str:
    return f"{item}|{regime}|{max_examples}"


@functools.cache
def _content() -> dict[str, Any]:
    try:
        return unpack(zlib.decompress(FILE.read_bytes()))
    except (OSError, zlib.error, ValueError, KeyError):
        return {}


@functools.cache
def _shipped() -> dict[str, np.ndarray]:
    """The shipped lists by ``key``, each still packed, or nothing when the file is missing or stale."""
    content = _content()
    if content.get("fingerprint") != fingerprint():
        return {}
    return content["examples"]


@functools.cache
def _shipped_answers() -> dict[str, np.ndarray]:
    """gradprop's own answers by ``key``, each list still packed, or nothing when they are stale."""
    if not _shipped() or _content().get("answers_fingerprint") != answers_fingerprint():
        return {}
    return _content().get("answers", {})


@functools.cache
def _list(name: str) -> list[dict] | None:
    packed = _shipped().get(name)
    return None if packed is None else unpack(packed.tobytes())


def plain(case: Case) -> dict:
    """What a case is made of, as ``store.pack`` writes it."""
    return {"init": dict(case.init), "inputs": dict(case.inputs), "seed": case.seed, "extra": dict(case.extra)}


def cases(item: str, regime: str, max_examples: int) -> list[Case] | None:
    """The shipped cases of one example list, or None if it is not shipped (another budget, a
    new regime, a stale file), each with gradprop's own answers on it where they are current."""
    name = key(item, regime, max_examples)
    fields = _list(name)
    if fields is None:
        return None
    drawn = [Case(**f) for f in fields]
    packed = _shipped_answers().get(name)
    if packed is not None:
        for case, entries in zip(drawn, unpack(packed.tobytes())):
            case.memo.update((_mark(m), value) for m, value in entries)
    return drawn


def _mark(packed: tuple) -> tuple:
    """A memo key as ``checks._own_answer`` makes it (bytes are kept as uint8 arrays)."""
    return tuple(bytes(x) if isinstance(x, np.ndarray) else x for x in packed)


def _packable(mark: tuple) -> tuple:
    assert not any(isinstance(x, np.ndarray) for x in mark), mark
    return tuple(np.frombuffer(x, dtype=np.uint8) if isinstance(x, bytes) else x for x in mark)


def record_answers(item: Any, lists: dict[str, list[Case]]) -> dict[str, list[list]]:
    """gradprop's own answers on each of ``item``'s example lists (by regime key), as the checks
    ask for them on a correct layer set: a copy of gradprop's own layers (the same code under new
    names, so that its answers are not taken for the layers' own) is screened as a submission, and
    what the cases kept is read off them. Empty for an item gradprop's own layers do not answer."""
    from gradprop.session import InProcessSession

    from .checks import Target, _own, own_session, properties_for
    from .runner import _regime_key, screen

    original = own_session()
    name = original.resolve(item.names)
    copy = InProcessSession({k: _renamed(v) for k, v in original._ns.items()})
    if name is None or _own(Target(copy, item, name, "")) is None:
        return {}
    target = Target(copy, item, name, "gradprop.layers")
    out = {}
    for regime, cases in lists.items():
        props = [p for p in properties_for(item) if _regime_key(p.regime) == regime]
        with _examples({(item.name, regime): cases}):
            failed, _ = screen(target, props)
        assert not failed, f"gradprop's own {item.name} fails {sorted(failed)}: {failed}"
        out[regime] = [[[_packable(m), v] for m, v in c.memo.items() if m[0] == "own"] for c in cases]
    return out


def _renamed(value: Any) -> Any:
    """The same code as another object: a subclass of a class, a wrapper of a function."""
    if isinstance(value, type):
        return type(value.__name__, (value,), {"__module__": value.__module__})
    if callable(value):
        return functools.wraps(value)(lambda *args, **kwargs: value(*args, **kwargs))
    return value


@contextlib.contextmanager
def _examples(lists: dict[tuple[str, str], list[Case]]) -> Iterator[None]:
    """``runner.examples`` gives these lists (by (item, regime key)) while it is open."""
    from . import runner

    saved = runner.examples
    runner.examples = lambda item, regime, settings=None: lists[(item.name, runner._regime_key(regime))]
    try:
        yield
    finally:
        runner.examples = saved


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

    examples, answers = {}, {}
    lists: dict[tuple[Any, int], dict[str, list[Case]]] = {}
    for item, regime, budget in wanted():
        drawn = runner.draw(item, regime, settings(settings.get_profile("grading"), max_examples=budget))
        packed = pack([plain(c) for c in drawn])
        examples[key(item.name, runner._regime_key(regime), budget)] = np.frombuffer(packed, dtype=np.uint8)
        lists.setdefault((item, budget), {})[runner._regime_key(regime)] = drawn
    for (item, budget), by_regime in lists.items():
        for regime, entries in record_answers(item, by_regime).items():
            answers[key(item.name, regime, budget)] = np.frombuffer(pack(entries), dtype=np.uint8)
    return {"fingerprint": fingerprint(), "hypothesis": metadata.version("hypothesis"), "examples": examples,
            "answers_fingerprint": answers_fingerprint(), "answers": answers}


def main() -> int:
    content = draw()
    FILE.write_bytes(zlib.compress(pack(content), 9))
    print(f"{FILE}: {len(content['examples'])} example lists, drawn by Hypothesis {content['hypothesis']}, "
          f"gradprop's own answers on {len(content['answers'])} of them, "
          f"{FILE.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
