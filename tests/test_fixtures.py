"""Meta-tests: the suite catches every broken fixture with its tag and passes every correct one.

Fixtures are files in ``fixtures/broken``, ``fixtures/correct`` and ``fixtures/chapter_text``,
each a layer set defining one item, whose first line says what must happen, and which diagnosis
hint (if any) the findings carry::

    # gradprop-fixture: item=Affine expect=wrong-gradient hint=db-first-row
    # gradprop-fixture: item=Affine expect=wrong-shape in=rank>2 hint=not-reshaped
    # gradprop-fixture: item=Affine expect=pass fails=rank>2

A fixture that declares no hint must get none: a wrong hint is worse than none. A broken fixture
is caught by a core check, or, with ``in=EXTENSION``, by that extension only (a bug in what a
later chapter adds: reported always, costing marks when that chapter counts). A chapter-text
fixture is the item as its chapter's text writes it: every core check holds, and the extension
``fails=`` names (and no other) catches it.

Run under the derandomized ``ci`` profile, so a pass here is a pass on every machine, without the
shrink phase: whether a fixture is caught does not depend on how small the example gets, and
shrinking a network's failure costs more than finding it.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from gradprop.findings import CORE, TAGS
from gradprop.grading import Rubric, score_item
from gradprop.properties.diagnosis import HINTS, hints_in
from gradprop.properties.registry import REGISTRY
from gradprop.properties.runner import evaluate_item
from gradprop.session import InProcessSession

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
META = settings(settings.get_profile("ci"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
HEADER = re.compile(r"#\s*gradprop-fixture:\s*item=(\S+)\s+expect=(\S+)(?:\s+(?:in|fails)=(\S+))?")
HINT = re.compile(r"\bhint=(\S+)")


def _match(path: Path) -> re.Match:
    match = HEADER.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name}: first line must be '# gradprop-fixture: item=NAME expect=TAG'"
    return match


def header(path: Path) -> tuple[str, str]:
    return _match(path).group(1, 2)


def extension(path: Path) -> str | None:
    """The extension named by ``in=`` or ``fails=``, checked to be one of the item's."""
    name = _match(path).group(3)
    assert name is None or name in REGISTRY[header(path)[0]].extensions, f"{path.name}: unknown extension {name}"
    return name


def declared_hint(path: Path) -> str | None:
    match = HINT.search(path.read_text(encoding="utf-8").splitlines()[0])
    return match and match.group(1)


def hints(found) -> set[str]:
    return {h for o in found if not o.passed for h in hints_in(o.message)}


def check_hint(path: Path, results) -> None:
    hint = declared_hint(path)
    assert hint is None or hint in HINTS, f"{path.name}: unknown hint {hint!r}"
    assert hints(results) == ({hint} if hint else set()), (
        f"{path.name} should get the hint {hint or 'none'}; got {sorted(hints(results)) or 'none'}")


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
    ext = extension(path)
    results = outcomes(path, until=expect)
    # a core catch must come from a core check (it costs marks under every rubric), not an extension
    found = {o.tag for o in results if not o.passed and (o.prop == ext if ext else o.chapter is None)}
    where = f"by the {ext} extension" if ext else "by a core check"
    assert expect in found, (f"{path.name} ({item}) should be caught as {expect} {where}; "
                             f"found {sorted(found) or 'nothing'}")
    check_hint(path, results)


@pytest.mark.parametrize("path", fixtures("correct"))
def test_correct_variant_passes(path: Path):
    item, expect = header(path)
    assert expect == "pass", f"{path.name}: correct variants expect=pass"
    results = outcomes(path)
    wrong = [o for o in results if not o.passed and o.tier == CORE]  # extensions included
    assert not wrong, "\n\n".join(f"{o.prop}: [{o.tag}] {o.message}" for o in wrong)
    assert not hints(results), f"{path.name} passes, yet a finding carries a hint"


def test_every_hint_has_a_fixture():
    """Each hint of properties/diagnosis.py is shown to fire on some broken or chapter-text
    fixture, and there are at least 20 such fixtures."""
    declared = [declared_hint(p.values[0]) for p in fixtures("broken") + fixtures("chapter_text")]
    assert sorted(set(HINTS) - set(declared)) == [], "hints no fixture proves"
    assert sum(h is not None for h in declared) >= 20


@pytest.mark.parametrize("path", fixtures("chapter_text"))
def test_chapter_text_form_passes_its_core_and_fails_its_extension(path: Path):
    item, expect = header(path)
    ext = extension(path)
    assert expect == "pass" and ext, f"{path.name}: chapter-text forms expect=pass fails=EXTENSION"
    results = outcomes(path)
    wrong = [o for o in results if not o.passed and o.tier == CORE and o.prop != ext]
    assert not wrong, "\n\n".join(f"{o.prop}: [{o.tag}] {o.message}" for o in wrong)
    assert any(o.prop == ext and not o.passed for o in results), f"{path.name}: the {ext} extension missed it"
    check_hint(path, results)
    # full marks by default; as of chapter 7, exactly the extension's share of the item is lost
    counted = Rubric.default(chapter=7).counted(item)
    n = sum(1 for o in results if o.tier == CORE and (o.chapter is None or o.prop in counted))
    assert ext in counted and score_item(item, Fraction(1), results).score == 1
    assert score_item(item, Fraction(n), results, extensions=counted).score == n - 1


def test_there_are_enough_fixtures():
    """The issue asks for the notes' bugs plus 25 classic ones, and 5 correct variants at least."""
    assert len(fixtures("broken")) >= 29 and len(fixtures("correct")) >= 5
