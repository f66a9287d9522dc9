"""Diagnosis on hand-made values: a hint when one slip explains the value, none when the input is
too plain to tell slips apart or when two slips explain it. The fixtures' meta-test
(test_fixtures.py) shows each hint firing on real broken layers and staying silent elsewhere."""
from __future__ import annotations

import numpy as np

from gradprop.properties.diagnosis import Evidence, borrow, diagnose, hint, hints_in

def rng() -> np.random.Generator:
    return np.random.default_rng(0)  # per test: the values do not depend on which tests ran before


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_a_slip_that_changes_nothing_on_this_input_explains_nothing():
    gen = rng()
    x, W, dout = gen.standard_normal((1, 3)), gen.standard_normal((3, 2)), gen.standard_normal((1, 2))
    ev = Evidence("Affine", "b", "db", {"x": x, "W": W, "b": gen.standard_normal(2)},
                  {"x": dout @ W.T, "W": x.T @ dout, "b": dout.sum(axis=0)}, dout)
    assert diagnose(dout[0] + 1.0, ev, 1e-9, 1e-12) is None  # no candidate: nothing
    assert diagnose(dout[0], ev, 1e-9, 1e-12) is None  # batch size 1: dout[0] is the right db


def test_db_from_the_first_row_and_from_everything():
    gen = rng()
    x, W, dout = gen.standard_normal((4, 3)), gen.standard_normal((3, 2)), gen.standard_normal((4, 2))
    ev = Evidence("Affine", "b", "db", {"x": x, "W": W, "b": gen.standard_normal(2)},
                  {"x": dout @ W.T, "W": x.T @ dout, "b": dout.sum(axis=0)}, dout)
    assert diagnose(dout[0], ev, 1e-9, 1e-12) == ("db-first-row", "")
    assert diagnose(np.sum(dout), ev, 1e-9, 1e-12) == ("db-sum-all", "")
    assert diagnose(dout.sum(axis=0) / 4, ev, 1e-9, 1e-12) == ("divided-by-batch", "")


def test_a_plain_input_gets_no_hint_of_its_own():
    gen = rng()
    x, dout = np.zeros((1, 1)), gen.standard_normal((1, 1))
    y = sigmoid(x)
    ev = Evidence("Sigmoid", "x", "dx", {"x": x}, {"x": dout * y * (1 - y)}, dout)
    assert diagnose(dout * (1 - y), ev, 1e-12, 1e-14) is None  # at x = 0, (1 - y) is also 2 y(1 - y)
    x = gen.standard_normal((2, 3))
    y = sigmoid(x)
    ev = Evidence("Sigmoid", "x", "dx", {"x": x}, {"x": dout * y * (1 - y)}, dout)
    assert diagnose(dout * (1 - y), ev, 1e-12, 1e-14) == ("sigmoid-missing-y", "")


def test_two_slips_that_agree_give_no_hint():
    gen = rng()
    x, dout = -np.abs(gen.standard_normal((2, 3))) - 0.1, np.abs(gen.standard_normal((2, 3))) + 0.1
    ev = Evidence("Relu", "x", "dx", {"x": x}, {"x": np.zeros_like(x)}, dout)
    # x < 0 and dout > 0 everywhere: an inverted mask and a mask from dout both give dout
    assert diagnose(dout, ev, 1e-9, 1e-12) is None
    x = np.array([[0.5, -1.0, 2.0], [-0.3, 0.7, -1.5]])  # both signs
    ev = Evidence("Relu", "x", "dx", {"x": x}, {"x": np.where(x > 0, dout, 0.0)}, dout)
    assert diagnose(np.where(x > 0, 0.0, dout), ev, 1e-9, 1e-12) == ("relu-mask-inverted", "")


def test_swapped_gradients_name_the_other_one():
    gen = rng()
    x, y, dout = (gen.standard_normal((2, 2)) for _ in range(3))
    ev = Evidence("MulLayer", "x", "dx", {"x": x, "y": y}, {"x": dout * y, "y": dout * x}, dout)
    assert diagnose(dout * x, ev, 1e-9, 1e-12) == ("swapped", "dy")
    assert "dx is what dy should be" in hint(dout * x, ev, 1e-9, 1e-12)


def test_a_hint_never_breaks_a_finding():
    ev = Evidence("Affine", "b", "db", {}, {"b": np.ones(2)}, None)  # nothing the candidates need
    assert hint(np.zeros(2), ev, 1e-9, 1e-12) == ""


def test_a_plain_input_borrows_the_hint_other_inputs_agree_on():
    message = "Sigmoid: dx is wrong at 1 of 1 entries.\n  tolerance: ...\n\nReproduce:\n    ..."
    other = ("sigmoid-missing-y", "  Hint [sigmoid-missing-y]: dx uses (1 - y) alone ...")
    consistent = frozenset({"sigmoid-missing-y", "sigmoid-missing-one-minus-y"})  # what x = 0 cannot tell apart
    borrowed, found = borrow(message, [other, other, None], consistent)
    assert found == other and hints_in(borrowed) == ["sigmoid-missing-y"]
    assert borrowed.index("Hint") < borrowed.index("Reproduce")
    conflicting = ("sign-flipped", "  Hint [sign-flipped]: ...")
    assert borrow(message, [other, conflicting], consistent) == (message, None)
    # a hint the plain input's value does not fit (x N at batch size 1), or no knowledge of it: none
    assert borrow(message, [other, other], frozenset({"divided-by-batch"})) == (message, None)
    assert borrow(message, [other, other], None) == (message, None)
