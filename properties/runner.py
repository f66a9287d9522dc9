"""Run one property of one target under Hypothesis, and say what came of it.

Used alike by the pytest suite and by the grader: the same checks, the same messages.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import Verbosity, given, settings as Settings
from hypothesis.errors import Flaky

from gradprop.findings import Finding

from .checks import Property, Target
from .registry import Case


@dataclass(frozen=True)
class Outcome:
    item: str
    prop: str
    tier: str
    about: str
    #: None when the property held, else the finding's tag
    tag: str | None = None
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.tag is None


def failed(item: str, prop: Property, finding: Finding) -> Outcome:
    """The property failed. Its tier (not the finding's) decides whether it costs marks: a strict
    property that trips over a crash is still a warning; the core properties report the crash."""
    return Outcome(item, prop.name, prop.tier, prop.about, finding.tag, finding.message)


def run_property(target: Target, prop: Property, settings: Settings | None = None) -> Outcome:
    """Search for a failing case; on failure, explain the smallest one Hypothesis found."""
    settings = Settings(settings or Settings(), verbosity=Verbosity.quiet)
    failing: list[Case] = []

    @settings
    @given(target.item.cases(**prop.regime))
    def search(case: Case) -> None:
        try:
            prop.check(target, case, False)
        except Finding:
            failing[:] = [case]  # the last failing case is the shrunk one Hypothesis replays
            raise

    try:
        search()
    except (Finding, Flaky) as exc:
        finding = exc if isinstance(exc, Finding) else None
        try:
            prop.check(target, failing[-1], True)  # the detailed message, on the smallest case
        except Finding as detailed:
            finding = detailed
        if finding is None:
            finding = Finding("exception", f"{target.name} gave different results for the same input: "
                                           "hidden randomness or state kept between calls.")
        return failed(target.name, prop, finding)
    return Outcome(target.name, prop.name, prop.tier, prop.about)
