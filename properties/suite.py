"""The layer set under test in a pytest run, and the verdict of one property on it."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as Settings

from gradprop.findings import STRICT
from gradprop.i18n import _
from gradprop.session import InProcessSession, Session

from .checks import Property, Target
from .model import Item
from .runner import Outcome, check_property


class StrictFinding(UserWarning):
    """A strict-tier or extension finding on a submission: reported, not failed (unless
    --gradprop-strict)."""


def origin_of(path: str | None) -> str:
    """The import line a student would write for the reproduction snippet."""
    if path is None:
        return "gradprop.layers"
    p = Path(path)
    if p.suffix == ".ipynb":
        return _("# run this in a new cell at the end of {file}, after its definition cells").format(file=p.name)
    return p.stem if p.suffix == ".py" else "common.layers"


@dataclass
class Suite:
    session: Session
    origin: str
    #: strict findings fail the test (always for the project's own layers)
    strict: bool = True
    #: an item the layer set does not define is skipped (a submission), not failed (our layers)
    skip_missing: bool = False

    @classmethod
    def own_layers(cls) -> "Suite":
        import gradprop.layers as layers

        return cls(InProcessSession(dict(vars(layers))), "gradprop.layers")

    def target(self, item: Item) -> Target:
        __tracebackhide__ = True
        if self.session.import_error:
            pytest.fail(f"[import-error] {self.session.import_error}", pytrace=False)
        name = self.session.resolve(item.names)
        if name is None:
            read = "".join(f"\n  {note}" for note in self.session.load_notes)
            text = f"[not-found] {' / '.join(item.names)} is not defined by the layer set{read}"
            if self.skip_missing:
                pytest.skip(text)
            pytest.fail(text, pytrace=False)
        return Target(self.session, item, name, self.session.origin(name, self.origin))

    def verify(self, item: Item, prop: Property, settings: Settings | None = None) -> Outcome:
        __tracebackhide__ = True
        # as the grader does: the shared derandomized examples first, a shrinking search on failure
        outcome = check_property(self.target(item), prop, settings or Settings())
        if outcome.passed:
            return outcome
        text = f"[{outcome.tag}] {outcome.message}"
        if prop.chapter is not None and not self.strict:  # an extension: reported, counted only when asked
            warnings.warn(StrictFinding(f"(extension of ch. {prop.chapter}) {text}"))
            return outcome
        if prop.tier == STRICT and not self.strict:
            warnings.warn(StrictFinding(text))
            return outcome
        pytest.fail(text, pytrace=False)
