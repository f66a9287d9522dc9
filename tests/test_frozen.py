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
from gradprop.properties.model import Case
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
    frozen._content.cache_clear()
    frozen._shipped.cache_clear()
    frozen._shipped_answers.cache_clear()
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


def test_the_shipped_answers_are_current_and_what_gradprops_own_layers_answer_now():
    """gradprop's own answers ship with the examples (for every item its layers answer), and are
    what the layers answer on this machine, to round-off; after an edit of the layers or the
    checks they are not read."""
    _forget()
    assert frozen._shipped_answers(), f"the own answers in properties/examples.bin are stale: {REWRITE}"
    for item in ITEMS[:9]:  # the book's chapter 5
        regime = runner._regime_key(dict(properties_for(item)[0].regime))
        shipped = frozen.cases(item.name, regime, 3)
        plain = [Case(c.init, c.inputs, c.seed, c.extra) for c in shipped]
        live = frozen.record_answers(item, {regime: plain})[regime]
        assert live, item.name
        for case, entries in zip(shipped, live):
            kept = {m: v for m, v in case.memo.items() if m[0] == "own"}
            assert {frozen._mark(m) for m, _ in entries} == set(kept), item.name
            for m, value in entries:
                _close(kept[frozen._mark(m)], value, item.name)


def _close(a, b, where) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], where)
    elif a is None:
        assert b is None, where
    else:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=where)  # another CPU: round-off only


def test_stale_answers_are_not_read_and_the_examples_still_are(monkeypatch):
    _forget()
    monkeypatch.setattr(frozen, "answers_fingerprint", lambda: "other layers")
    try:
        cases = frozen.cases("Affine", "[]", 25)
        assert cases is not None and not any(c.memo for c in cases)
    finally:
        _forget()


def test_gradprops_own_layers_are_never_answered_by_the_shipped_answers():
    """The suite holds gradprop's own layers to the JAX reference: the answers shipped for them
    (or kept from a submission graded before) are not their own check's first answer."""
    from gradprop.properties.checks import Target, _own_out, own_session

    own = own_session()
    item = next(i for i in ITEMS if i.name == "Affine")
    case = frozen.cases("Affine", "[]", 3)[0]
    assert any(m[0] == "own" for m in case.memo)
    assert _own_out(Target(own, item, "Affine", "gradprop.layers"), case) is None
