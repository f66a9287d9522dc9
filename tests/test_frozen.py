"""The shipped grading examples (properties/frozen.py): current, complete, used, and what Hypothesis
draws.

``examples.bin`` must be written again after a change of a strategy (``python -m
gradprop.properties.frozen``); until then the first test here fails and says so.
"""
from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
from hypothesis import settings

from gradprop.properties import frozen, runner
from gradprop.properties.checks import properties_for
from gradprop.properties.registry import ITEMS

REWRITE = "run python -m gradprop.properties.frozen to draw them again"


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _forget() -> None:
    frozen._shipped.cache_clear()
    frozen._list.cache_clear()


def test_the_shipped_examples_are_current_and_complete():
    _forget()
    shipped = frozen._shipped()
    assert shipped, f"properties/examples.bin is missing or was drawn from other strategies: {REWRITE}"
    missing = [frozen.key(item.name, runner._regime_key(regime), budget) for item, regime, budget in frozen.wanted()
               if frozen.key(item.name, runner._regime_key(regime), budget) not in shipped]
    assert not missing, f"no shipped examples for {missing[:5]}: {REWRITE}"


def test_grading_reads_the_shipped_examples_and_draws_nothing(monkeypatch):
    def refuse(*args):
        raise AssertionError("drew examples that are shipped")

    monkeypatch.setattr(runner, "draw", refuse)
    monkeypatch.setattr(runner, "_EXAMPLES", {})
    for budget in frozen.budgets():
        for item in ITEMS:
            regime = dict(properties_for(item)[0].regime)
            cases = runner.examples(item, regime, settings(settings.get_profile("grading"), max_examples=budget))
            assert len(cases) == budget, (item.name, len(cases))


def test_a_stale_file_is_not_read(monkeypatch):
    _forget()
    monkeypatch.setattr(frozen, "fingerprint", lambda: "another tree")
    try:
        assert frozen.cases("Affine", "[]", 25) is None
    finally:
        _forget()


@pytest.mark.parametrize("budget", [3, 25])
def test_the_shipped_examples_are_what_hypothesis_draws(budget):
    """Drawn again under the Hypothesis that drew them, every item's first list is the same, case
    by case (under another Hypothesis the shipped ones are still what grades: that is the point)."""
    import zlib

    from gradprop.properties.store import unpack

    drew = unpack(zlib.decompress(frozen.FILE.read_bytes()))["hypothesis"]
    if drew != metadata.version("hypothesis"):
        pytest.skip(f"the shipped examples were drawn by Hypothesis {drew}; this is {metadata.version('hypothesis')}")
    profile = settings(settings.get_profile("grading"), max_examples=budget)
    for item in ITEMS if budget == 3 else ITEMS[:9]:
        regime = dict(properties_for(item)[0].regime)
        live = [frozen.plain(c) for c in runner.draw(item, regime, profile)]
        shipped = [frozen.plain(c) for c in frozen.cases(item.name, runner._regime_key(regime), budget)]
        assert _same(live, shipped), f"{item.name}: the shipped examples differ from Hypothesis' draw: {REWRITE}"
