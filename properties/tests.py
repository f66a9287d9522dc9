"""Every property over every registry entry, against the layer set under test.

The layer set is the project's own ``layers/``, or ``--submission PATH``. Adding a registry entry
adds its tests here; nothing in this file names an item. This module is installed with gradprop:
the pytest plugin (``gradprop.plugin``) collects it for ``--submission`` from any folder, and the
repository's ``tests/test_properties.py`` imports its tests.
"""
from __future__ import annotations

import pytest

from gradprop.properties.checks import properties_for
from gradprop.properties.registry import ITEMS

GENERIC = ("forward", "backward", "numerical", "shapes", "mutates-input", "stale-state",
           "mutates-dout", "aliases-output", "ignores-dout", "update", "in-place")


def cases(name: str | None):
    """(item, property) pairs for one generic property, or for the regimes when name is None."""
    return [
        pytest.param(item, prop, id=item.name if name else f"{item.name}-{prop.name}")
        for item in ITEMS
        for prop in properties_for(item)
        if prop.name == name or (name is None and prop.name not in GENERIC)
    ]


@pytest.mark.parametrize("item, prop", cases("forward"))
def test_forward(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("backward"))
def test_backward(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("numerical"))
def test_numerical(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("shapes"))
def test_shapes(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("mutates-input"))
def test_mutates_input(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("stale-state"))
def test_stale_state(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("update"))
def test_update(suite, item, prop):
    """An optimizer's trajectory over several update calls."""
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("in-place"))
def test_in_place(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases(None))
def test_regime(suite, item, prop):
    """The item's regimes (batch-1, large-logits, ...), extensions (rank>2, labels-index, padding)
    and its own properties."""
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("mutates-dout"))
def test_mutates_dout(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("aliases-output"))
def test_aliases_output(suite, item, prop):
    suite.verify(item, prop)


@pytest.mark.parametrize("item, prop", cases("ignores-dout"))
def test_ignores_dout(suite, item, prop):
    suite.verify(item, prop)


def test_every_property_has_a_test():
    """A property added to checks.properties_for must not go unexercised."""
    names = {prop.name for item in ITEMS for prop in properties_for(item)}
    specific = {name for item in ITEMS for name in (*item.regimes, *item.extensions)}
    specific |= {p.name for item in ITEMS for p in item.properties}
    assert names - specific <= set(GENERIC)
