"""Run one property of one target under Hypothesis, and say what came of it.

Used alike by the pytest suite and by the grader: the same checks, the same messages.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import Verbosity, given, settings as Settings
from hypothesis.errors import Flaky

from gradprop.findings import Finding

from . import profiles  # noqa: F401 - dev / ci / grading exist wherever checks run
from .assertions import reproduce_block
from .checks import Target, reproduction
from .model import Case, Property


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
    # one failure per run (the shrunk one), and no chatter: the Outcome is the report
    settings = Settings(settings or Settings(), verbosity=Verbosity.quiet, report_multiple_bugs=False)
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
        if "Reproduce" not in finding.message:
            finding = Finding(finding.tag, finding.message + reproduce_block(
                reproduction(target, failing[-1]), "Reproduce (the smallest failing input)"))
        return failed(target.name, prop, finding)
    return Outcome(target.name, prop.name, prop.tier, prop.about)


def evaluate_item(session, item, origin: str, settings: Settings | None = None,
                  until: str | None = None) -> list[Outcome]:
    """Every property of ``item`` on the layer set behind ``session``, in order.

    An import error or a missing name fails every property at once, with that finding. With
    ``until``, stop at the first outcome tagged ``until`` (a meta-test that only needs to know a
    fixture is caught).
    """
    from .checks import properties_for

    props = properties_for(item)
    if session.import_error or session.resolve(item.names) is None:
        finding = (Finding("import-error", session.import_error) if session.import_error else
                   Finding("not-found", f"{' / '.join(item.names)} is not defined by the layer set."))
        return [failed(item.name, prop, finding) for prop in props]
    target = Target(session, item, session.resolve(item.names), origin)
    if until is not None:  # the property named like the tag first (mutates-input, stale-state, ...)
        props.sort(key=lambda prop: prop.name != until)
    outcomes = []
    for prop in props:
        outcomes.append(run_property(target, prop, settings))
        if until is not None and outcomes[-1].tag == until:
            break
    return outcomes
