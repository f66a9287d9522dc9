"""Meta-tests: the suite catches every broken fixture with its tag and passes every correct one.

Fixtures are files in ``fixtures/broken`` and ``fixtures/correct``, each a layer set defining one
item, whose first line says what must happen, and which diagnosis hint (if any) the findings carry::

    # gradprop-fixture: item=Affine expect=wrong-gradient hint=db-first-row

A fixture that declares no hint must get none: a wrong hint is worse than none.

Run under the derandomized ``ci`` profile, so a pass here is a pass on every machine, without the
shrink phase: whether a fixture is caught does not depend on how small the example gets, and
shrinking a network's failure costs more than finding it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from gradprop.findings import CORE, TAGS
from gradprop.properties.diagnosis import HINTS, hints_in
from gradprop.properties.registry import REGISTRY
from gradprop.properties.runner import evaluate_item
from gradprop.session import InProcessSession

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
META = settings(settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
HEADER = re.compile(r"#\s*gradprop-fixture:\s*item=(\S+)\s+expect=(\S+)")
HINT = re.compile(r"\bhint=(\S+)")


def header(path: Path) -> tuple[str, str]:
    match = HEADER.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name}: first line must be '# gradprop-fixture: item=NAME expect=TAG'"
    return match.group(1), match.group(2)


def declared_hint(path: Path) -> str | None:
    match = HINT.search(path.read_text(encoding="utf-8").splitlines()[0])
    return match and match.group(1)


def hints(found) -> set[str]:
    return {h for o in found if not o.passed for h in hints_in(o.message)}


def fixtures(kind: str) -> list:
    return [pytest.param(p, id=p.stem) for p in sorted((FIXTURES / kind).glob("*.py"))]


def outcomes(path: Path, until: str | None = None):
    item, _ = header(path)
    session = InProcessSession(path=str(path))
    return evaluate_item(session, REGISTRY[item], path.stem, META, until=until)


@pytest.mark.parametrize("path", fixtures("broken"))
def test_broken_fixture_is_caught(path: Path):
    item, expect = header(path)
    assert item in REGISTRY and expect in TAGS, f"{path.name}: unknown item or tag in the header"
    results = outcomes(path, until=expect)
    found = {o.tag for o in results if not o.passed}
    assert expect in found, f"{path.name} ({item}) should be caught as {expect}; found {sorted(found) or 'nothing'}"
    hint = declared_hint(path)
    assert hint is None or hint in HINTS, f"{path.name}: unknown hint {hint!r}"
    assert hints(results) == ({hint} if hint else set()), (
        f"{path.name} should get the hint {hint or 'none'}; got {sorted(hints(results)) or 'none'}")


@pytest.mark.parametrize("path", fixtures("correct"))
def test_correct_variant_passes(path: Path):
    item, expect = header(path)
    assert expect == "pass", f"{path.name}: correct variants expect=pass"
    results = outcomes(path)
    wrong = [o for o in results if not o.passed and o.tier == CORE]
    assert not wrong, "\n\n".join(f"{o.prop}: [{o.tag}] {o.message}" for o in wrong)
    assert not hints(results), f"{path.name} passes, yet a finding carries a hint"


def test_every_hint_has_a_fixture():
    """Each hint of properties/diagnosis.py is shown to fire on some broken fixture, and there are
    at least 20 such fixtures."""
    declared = [declared_hint(p.values[0]) for p in fixtures("broken")]
    assert sorted(set(HINTS) - set(declared)) == [], "hints no fixture proves"
    assert sum(h is not None for h in declared) >= 20


def test_there_are_enough_fixtures():
    """The issue asks for the notes' bugs plus 25 classic ones, and 5 correct variants at least."""
    assert len(fixtures("broken")) >= 29 and len(fixtures("correct")) >= 5
