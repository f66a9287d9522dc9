"""Run one property of one target under Hypothesis, and say what came of it.

Used alike by the pytest suite and by the grader: the same checks, the same messages.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from hypothesis import Phase, Verbosity, given, settings as Settings
from hypothesis.errors import Flaky

from gradprop.findings import CORE, FAULTS, Finding
from gradprop.i18n import _

from . import diagnosis, frozen, profiles  # noqa: F401 - dev / ci / grading exist wherever checks run
from .assertions import reproduce_block
from .checks import Target, own_session, prefetch, reproduction
from .model import Case, Property
from .store import store


@dataclass(frozen=True)
class Outcome:
    item: str
    prop: str
    tier: str
    about: str
    #: None when the property held, else the finding's tag
    tag: str | None = None
    message: str = ""
    #: for an extension, the chapter that adds it (it costs marks only when counted); else None
    chapter: int | None = None
    #: for a wrong value, the classic slips consistent with it (``diagnosis.candidates``)
    candidates: frozenset[str] | None = None
    #: the hint the message gives, (id, line) (``diagnosis.find_hint``), or None
    hint: tuple[str, str] | None = None

    @property
    def passed(self) -> bool:
        return self.tag is None


def failed(item: str, prop: Property, finding: Finding) -> Outcome:
    """The property failed. Its tier (not the finding's) decides whether it costs marks: a strict
    property that trips over a crash is still a warning; the core properties report the crash."""
    return Outcome(item, prop.name, prop.tier, prop.about, finding.tag, finding.message, prop.chapter,
                   getattr(finding, "candidates", None), getattr(finding, "hint", None))


@contextmanager
def _steady_generation():
    """Hypothesis draws now and then a constant it found in the source of the "local" modules
    loaded in the process: those outside site-packages, such as an editable gradprop, the tests,
    a benchmark. What it draws then depends on what happens to be imported and on how gradprop
    was installed, and a submission's grade could differ between two machines (or between
    examples a pytest run put in the store and those a grading worker draws). Our draws see no
    local constants: the same cases wherever they are drawn. (Hypothesis' internals; with a
    Hypothesis that has none of them, nothing to do.)"""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants

        saved = providers._get_local_constants, providers.CONSTANTS_CACHE
        ours = _OUR_CONSTANTS_CACHE.setdefault("cache", type(saved[1])(1024))
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another Hypothesis
        yield
        return
    none = Constants()
    providers._get_local_constants, providers.CONSTANTS_CACHE = (lambda: none), ours
    try:
        yield
    finally:
        providers._get_local_constants, providers.CONSTANTS_CACHE = saved


#: the constants Hypothesis may draw, by kind, as our draws see them (none of them local)
_OUR_CONSTANTS_CACHE: dict[str, Any] = {}


def _quiet(settings: Settings | None, shrink: bool = True) -> Settings:
    """One failure per run and no chatter (the Outcome is the report); optionally no shrinking."""
    base = settings or Settings()
    # Hypothesis' explain phase annotates a failure for its own report, which we do not print: it
    # cost 7 of 8 s grading a wrong Sigmoid
    skip = {Phase.explain} if shrink else {Phase.explain, Phase.shrink}
    phases = [p for p in base.phases if p not in skip]
    return Settings(base, verbosity=Verbosity.quiet, report_multiple_bugs=False, phases=phases)


def run_check(target: Target, prop: Property, case: Case, explain: bool = False) -> None:
    """``prop.check`` on ``case``, with what it raises judged in this one place.

    A Finding is the layer set's. Any other exception came from the grader's own code handling
    what the layer set gave it; whose fault it is, is found out by running the same check on the
    same input against gradprop's own layers: if they pass, the difference is in what the layer
    set sent back (a value numpy cannot take, a malformed structure), and that is its finding,
    a fault of the item. If ours fail too, the fault is gradprop's, and the exception goes on
    (the grader reports it as its own and grades the submission again)."""
    try:
        prop.check(target, case, explain)
    except Finding:
        raise
    except Exception as exc:  # noqa: BLE001 - judged below
        own = own_session()
        name = own.resolve(target.item.names)
        try:
            if name is None:
                raise LookupError(target.item.name)
            prop.check(Target(own, target.item, name, "gradprop.layers"), case, explain)
        except Exception:  # noqa: BLE001 - ours fail too: the grader's own fault
            raise exc from None
        raise Finding("exception", _(
            "gradprop could not use what {name} gave back ({error}). gradprop's own {item} passes this check on "
            "the same input, so the difference is in what your code returned: numbers and numpy arrays of the "
            "shapes the book's API gives.").format(name=target.name, item=target.item.name,
                                                   error=f"{type(exc).__name__}: {_short(exc)}")) from None


def _short(exc: BaseException, limit: int = 300) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - the text of an error about a value we could not use
        text = ""
    return text if len(text) <= limit else text[:limit] + "..."


def explain(target: Target, prop: Property, case: Case, finding: Finding | None) -> Outcome:
    """The outcome of a property that failed on ``case``: rerun the check there in its detailed
    form (which entries are wrong), and make sure the message says how to reproduce it."""
    try:
        run_check(target, prop, case, True)
    except Finding as detailed:
        finding = detailed
    if finding is None:
        finding = Finding("exception", _("{name} gave different results for the same input: hidden randomness "
                                         "or state kept between calls.").format(name=target.name))
    if _("Reproduce") not in finding.message:
        finding = Finding(finding.tag, finding.message + reproduce_block(
            reproduction(target, case), _("Reproduce (the smallest failing input)")), finding.candidates, finding.hint)
    return failed(target.name, prop, finding)


def run_property(target: Target, prop: Property, settings: Settings | None = None) -> Outcome:
    """Search for a failing case; on failure, explain the smallest one Hypothesis found."""
    failing: list[Case] = []

    @_quiet(settings)
    @given(target.item.cases(**prop.regime))
    def search(case: Case) -> None:
        try:
            run_check(target, prop, case, False)
        except Finding:
            failing[:] = [case]  # the last failing case is the shrunk one Hypothesis replays
            raise

    try:
        with _steady_generation():
            search()
    except (Finding, Flaky) as exc:
        return explain(target, prop, failing[-1], exc if isinstance(exc, Finding) else None)
    return Outcome(target.name, prop.name, prop.tier, prop.about, chapter=prop.chapter)


_EXAMPLES: dict[tuple, list[Case]] = {}


def _regime_key(regime: Mapping[str, Any]) -> str:
    return repr(sorted(regime.items()))


def examples(item, regime: dict, settings: Settings | None = None) -> list[Case]:
    """The cases Hypothesis generates for ``item.cases(**regime)`` under ``settings``, drawn once
    and kept: derandomized generation is a function of the strategy and the settings alone, so
    every layer set screened meets the same cases, and a grader pays for drawing them once, not
    once per submission. The budgets of ``grade`` and ``check`` are shipped with gradprop
    (``frozen.py``: the same cases under any Hypothesis); others are kept in the on-disk store."""
    settings = _quiet(settings, shrink=False)
    key = (item.name, _regime_key(regime), settings.max_examples, settings.derandomize)
    if key in _EXAMPLES and settings.derandomize:
        return _EXAMPLES[key]
    kept = settings.derandomize and settings.database is None
    drawn = frozen.cases(item.name, key[1], settings.max_examples) if kept else None
    stored = repr((*key, settings.phases)).encode()
    if drawn is None and kept:
        fields = store().get("examples", stored)
        drawn = None if fields is None else [Case(**f) for f in fields]
    if drawn is None:
        drawn = draw(item, regime, settings)
        if kept:
            store().put("examples", stored, [frozen.plain(c) for c in drawn])
    _EXAMPLES[key] = drawn
    return drawn


def draw(item, regime: dict, settings: Settings) -> list[Case]:
    """The cases Hypothesis draws for ``item.cases(**regime)`` under ``settings``, now.

    A derandomized run is seeded from the text of the test function, decorators and indentation
    included (``hypothesis.internal.reflection.function_digest``): ``collect`` below is written as
    it has been since the first release, so that live draws meet the examples they always met."""
    drawn: list[Case] = []
    settings = _quiet(settings, shrink=False)
    with _steady_generation():
        @settings
        @given(item.cases(**regime))
        def collect(case: Case) -> None:
            drawn.append(case)

        collect()
    return drawn


def screen(target: Target, props: list[Property], settings: Settings | None = None,
           stop: Callable[[Property], bool] | None = None) -> tuple[dict[str, tuple[Finding, Case]], set[str]]:
    """Every property on shared examples: the cases of each input strategy (the item's own, and
    one per regime) are drawn once, and each is put through every property that has not failed
    yet. Returns, per failed property, its first finding and the case; and the names of the
    properties that met every case.

    With ``stop``, screening ends after the first case on which a property ``stop`` picks (one
    whose finding would count) fails: the student's loop wants one finding fast, not every one.
    """
    found: dict[str, tuple[Finding, Case]] = {}
    screened: set[str] = set()
    groups: dict[str, tuple[dict, list[Property]]] = {}
    for prop in props:
        groups.setdefault(_regime_key(prop.regime), (dict(prop.regime), []))[1].append(prop)
    for regime, group in groups.values():
        cases = examples(target.item, regime, settings)
        # one forward/backward run per case for every reader, all asked for before any is read
        runs = [replace(target, shared=(case, {})) for case in cases]
        for shared, case in zip(runs, cases):
            prefetch(shared, case, group)
        for shared, case in zip(runs, cases):
            for prop in group:
                if prop.name not in found:
                    try:
                        run_check(shared, prop, case, False)
                    except Finding as finding:
                        found[prop.name] = (finding, case)
            if stop and any(stop(p) for p in group if p.name in found):
                return found, screened
        screened.update(p.name for p in group)
    return found, screened


def settle(target: Target, prop: Property, found: tuple[Finding, Case] | None, settings: Settings | None = None,
           search: bool = True) -> Outcome:
    """The outcome of a property from what the screen ``found``. A core wrong value is searched
    again on its own, with shrinking, to report the smallest failing input; a fault, a strict
    warning, and a wrong value the second search does not meet again, are reported on the input
    that showed them."""
    if found is None:
        return Outcome(target.name, prop.name, prop.tier, prop.about, chapter=prop.chapter)
    finding, case = found
    outcome = None
    if finding.tag not in FAULTS and prop.tier == CORE and search:
        # a failure is known to exist: search with at least the grading budget, so that a lean
        # check (3 examples) meets it again and shrinks it as pytest and grade do
        base = settings or Settings()
        outcome = run_property(target, prop, Settings(base, max_examples=max(base.max_examples, SEARCH_EXAMPLES)))
    if outcome is None or outcome.passed:
        outcome = explain(target, prop, case, finding)
    return outcome


#: examples the search for the smallest failing input may draw, at least (the grading profile's)
SEARCH_EXAMPLES = Settings.get_profile("grading").max_examples


def check_property(target: Target, prop: Property, settings: Settings | None = None) -> Outcome:
    """One property, as the grader settles it: a screen over the shared examples, then a search
    only if the screen failed."""
    outcome = settle(target, prop, screen(target, [prop], settings)[0].get(prop.name), settings)
    store().flush()
    return outcome


def evaluate_item(session, item, origin: str, settings: Settings | None = None,
                  until: str | None = None, stop: Callable[[Property], bool] | None = None) -> list[Outcome]:
    """Every property of ``item`` on the layer set behind ``session``, in order.

    First a screen over shared examples (cheap: a correct layer set meets each input strategy's
    examples once), then ``settle`` for each property. An import error or a missing name fails
    every property at once. ``until`` is accepted for callers that only need one tag; the
    screen finds every tag anyway.

    With ``stop`` (see ``screen``) the item stops at its first finding that ``stop`` picks: only
    the first failed property is shrunk, and the properties the screen did not finish are left
    out of the outcomes (neither held nor failed).
    """
    from .checks import properties_for

    props = properties_for(item)
    if session.import_error or session.resolve(item.names) is None:
        finding = (Finding("import-error", session.import_error) if session.import_error else
                   Finding("not-found", _("{names} is not defined by the layer set.").format(
                       names=" / ".join(item.names))))
        return [failed(item.name, prop, finding) for prop in props]
    name = session.resolve(item.names)
    target = Target(session, item, name, session.origin(name, origin))
    first, screened = screen(target, props, settings, stop)
    found_order = {name: i for i, name in enumerate(first)}  # the order the screen met the findings in
    outcomes = []
    shrunk = False
    for prop in props:
        if prop.name not in first and prop.name not in screened:
            continue  # a screen stopped early did not reach it: neither held nor failed
        search = until is None and not (stop and shrunk)  # with stop, only the first is shrunk
        found = first.get(prop.name)
        outcomes.append(_hinted(target, prop, settle(target, prop, found, settings, search=search), settings))
        shrunk = shrunk or (found is not None and found[0].tag not in FAULTS and prop.tier == CORE and search)
    store().flush()  # what this item taught the store is kept even if the process is killed later
    # after a hang in backward, every later call of the item fails at once with that timeout: the
    # check that met the fault first (backward, not forward) leads, the others keep the suite's order
    faults = [o for o in outcomes if o.tag in FAULTS and o.prop in found_order]
    if faults:
        first_fault = min(faults, key=lambda o: found_order[o.prop])
        outcomes = [first_fault] + [o for o in outcomes if o is not first_fault]
    return outcomes


#: failing inputs asked for a hint when the reported one is too plain to give one
HINT_EXAMPLES = 10


def _hinted(target: Target, prop: Property, outcome: Outcome, settings: Settings | None) -> Outcome:
    """The outcome, with the hint its property's other failing inputs agree on (``diagnosis.borrow``)."""
    if outcome.tag not in diagnosis.EXPLAINABLE or outcome.hint is not None:
        return outcome
    others: list[diagnosis.Hint | None] = []
    for case in examples(target.item, dict(prop.regime), settings)[:HINT_EXAMPLES]:
        try:
            run_check(target, prop, case, False)
        except Finding as finding:
            others.append(finding.hint)
            if diagnosis.settled(others):
                break
    message, found = diagnosis.borrow(outcome.message, others, outcome.candidates)
    return replace(outcome, message=message, hint=found)
