"""The contribution gate: every layer has a registry entry, a JAX reference, a tolerance with its
reason, and at least one broken fixture (which test_fixtures.py proves is caught)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import gradprop.layers as layers
from gradprop.properties.registry import ITEMS, REGISTRY

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
#: public names of layers/ that are helpers, not graded items
NOT_ITEMS = {"numerical_gradient"}


def fixture_items(kind: str) -> set[str]:
    found = set()
    for path in (FIXTURES / kind).glob("*.py"):
        match = re.search(r"item=(\S+)", path.read_text(encoding="utf-8").splitlines()[0])
        if match:
            found.add(match.group(1))
    return found


@pytest.mark.parametrize("name", sorted(set(layers.__all__) - NOT_ITEMS))
def test_every_layer_has_a_registry_entry(name: str):
    known = {n for item in ITEMS for n in item.names}
    assert name in known, (f"layers/ exports {name}, but properties/registry.py has no entry for it: "
                           f"add an Item (see CONTRIBUTING.md, step 3)")


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.name)
def test_every_entry_is_complete(item):
    module = inspect.getmodule(item.reference)
    assert module is not None and module.__name__.startswith("gradprop.reference"), (
        f"{item.name}: its reference must be a JAX function in reference/ (CONTRIBUTING.md, step 2)")
    assert any(hasattr(layers, n) for n in item.names), f"{item.name}: no such layer in layers/ (step 1)"
    assert item.why.strip(), f"{item.name}: say why its tolerance is what it is (the entry's why=)"
    assert item.name in fixture_items("broken"), (
        f"{item.name}: no broken fixture in fixtures/broken/ names item={item.name} (CONTRIBUTING.md, fixtures)")


@pytest.mark.parametrize("item, name", [(i, n) for i in ITEMS for n in i.extensions],
                         ids=lambda v: getattr(v, "name", v))
def test_every_extension_has_a_fixture_it_catches(item, name):
    """An extension that nothing fails could not fail: a chapter-text form (fails=) or a broken
    fixture (in=) must name it; test_fixtures.py proves the extension catches it."""
    headers = [p.read_text(encoding="utf-8").splitlines()[0] for kind in ("chapter_text", "broken")
               for p in (FIXTURES / kind).glob("*.py")]
    named = re.compile(rf"\b(fails|in)={re.escape(name)}(\s|$)")
    assert any(f"item={item.name} " in h and named.search(h) for h in headers), (
        f"{item.name}: no fixture in fixtures/chapter_text/ (fails={name}) or fixtures/broken/ (in={name})")


def test_registry_names_are_unique():
    names = [n for item in ITEMS for n in item.names]
    assert len(names) == len(set(names)) and len(REGISTRY) == len(ITEMS)
