"""Real code, graded right: each folder of fixtures/real_code/ is a layout or a habit of real study
code (a notebook that imports the book's common/ beside it, a plotting import, a Dropout without
train_flg, self.dw, def foward, a file that does not parse...), written for gradprop, with the
grade each item must get in its case.toml:

    about = "what the case is"
    submit = "hw5.ipynb"            # what is graded, relative to the case's folder
    [expect]                        # the items that count, and the score each must get
    Affine = 1.0
    [tags]                          # the finding tags of an item (none when left out)
    Dropout = ["wrong-forward"]
    [says]                          # text the item's feedback (or "submission": the whole) must hold
    Dropout = ["takes no train_flg"]
    [says_not]                      # text it must not hold
    TwoLayerNet = ["no longer exists"]

The same failure gets the same tag from ``gradprop check`` as from ``gradprop grade``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gradprop.check import Options, run_check
from gradprop.findings import CORE, tier
from gradprop.grading import GradeOptions, Rubric, grade_submission
from gradprop.properties.registry import ITEMS, REGISTRY

CASES = sorted(p for p in (Path(__file__).resolve().parent.parent / "fixtures" / "real_code").iterdir() if p.is_dir())


def spec(case: Path) -> dict:
    return tomllib.loads((case / "case.toml").read_text(encoding="utf-8"))


def rubric(doc: dict) -> Rubric:
    return Rubric.from_dict({"items": {item.name: {"count": item.name in doc["expect"]} for item in ITEMS}})


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.name)
def graded(request):
    doc = spec(request.param)
    result = grade_submission(request.param / doc["submit"], GradeOptions(rubric=rubric(doc), max_examples=5))
    return request.param, doc, result


def test_each_item_gets_the_grade_its_code_earns(graded):
    case, doc, result = graded
    assert not result.errors, result.errors
    got = {r.name: float(r.score) for r in result.items}
    assert got == doc["expect"], "\n\n".join(r.output for r in result.items if float(r.score) != doc["expect"][r.name])


def test_each_item_is_tagged_and_explained(graded):
    case, doc, result = graded
    for r in result.items:  # the core tags (a strict warning, the book's own convention, costs nothing)
        assert sorted(t for t in r.tags if tier(t) == CORE) == sorted(doc.get("tags", {}).get(r.name, [])), r.output
    texts = {r.name: r.output for r in result.items} | {"submission": result.output}
    for name, needles in doc.get("says", {}).items():
        for needle in needles:
            assert needle in texts[name], f"{needle!r} not in the feedback of {name}:\n{texts[name]}"
    for name, needles in doc.get("says_not", {}).items():
        for needle in needles:
            assert needle not in texts[name], f"{needle!r} in the feedback of {name}:\n{texts[name]}"


def test_check_gives_the_same_verdicts_and_tags(graded):
    """``gradprop check`` stops an item at its first finding: its tags are among grade's, and an
    item fails in one exactly when it fails in the other."""
    case, doc, result = graded
    items = [REGISTRY[name] for name in doc["expect"]]
    checked = run_check(str(case / doc["submit"]), items, Options(asked=True))
    graded_items = {r.name: r for r in result.items}
    assert checked.error is None
    if checked.import_error is not None:  # the file cannot be imported: import-error for every item
        assert all(r.tags == ("import-error",) for r in graded_items.values())
        return
    for c in checked.items:
        g = graded_items[c.name]
        assert (c.status == "failed") == (g.status == "failed"), (c, g.output)
        assert {t for t in c.tags if tier(t) == CORE} <= {*g.tags, *g.uncounted_tags}, (c.tags, g.tags)
