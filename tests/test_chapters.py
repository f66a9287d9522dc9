"""Grading the book as people learn it: items by chapter, extensions, the rubric keys and
``--chapter``, and the book's own code in its repository's layout."""
from __future__ import annotations

import csv
import io
import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import settings

from gradprop import cli
from gradprop.grading import (DEFAULT_CHAPTER, GradeOptions, GradingError, Rubric, grade_submission, grades_csv,
                              results_json)
from gradprop.properties.registry import ITEMS, REGISTRY, extensions_up_to, items_up_to

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BOOK = FIXTURES / "book_layout" / "deep-learning-from-scratch"


#: items whose chapter the README states (a new item may join any chapter: these stay where they are)
BOOK_CHAPTERS = {"softmax": 4, "cross_entropy_error": 4, "MulLayer": 5, "AddLayer": 5, "Relu": 5, "Sigmoid": 5,
                 "Affine": 5, "SoftmaxWithLoss": 5, "TwoLayerNet": 5, "Dropout": 6, "BatchNormalization": 6,
                 "Convolution": 7, "Pooling": 7, "SGD": 6, "Momentum": 6, "Nesterov": 6, "AdaGrad": 6, "RMSprop": 6,
                 "Adam": 6, "MultiLayerNet": 6, "MultiLayerNetExtend": 6, "im2col": 7, "col2im": 7, "SimpleConvNet": 7}


def test_items_and_extensions_by_chapter():
    assert {name: REGISTRY[name].chapter for name in BOOK_CHAPTERS} == BOOK_CHAPTERS
    for chapter in range(1, 9):  # the items of chapters <= N, in registry order
        assert items_up_to(chapter) == tuple(i for i in ITEMS if i.chapter <= chapter)
    assert items_up_to(8) == ITEMS and items_up_to(3) == ()
    assert extensions_up_to(REGISTRY["SoftmaxWithLoss"], 5) == ()
    assert extensions_up_to(REGISTRY["SoftmaxWithLoss"], 6) == ("labels-index",)
    assert extensions_up_to(REGISTRY["Affine"], 7) == ("rank>2",)


def test_rubric_chapter_and_extensions():
    assert Rubric.default().extensions == ()  # by default every item counts, no extension does
    ch6 = Rubric.from_dict({"chapter": 6})
    assert ch6.items == tuple(i.name for i in items_up_to(6))
    assert ch6.counted("TwoLayerNet") == ("labels-index",) and ch6.counted("Affine") == ()
    mixed = Rubric.from_dict({"chapter": 7, "items": {"Pooling": {"extensions": []},
                                                      "Convolution": {"count": False}}})
    assert mixed.counted("Pooling") == () and mixed.counted("Affine") == ("rank>2",)
    assert "Convolution" not in mixed.items and "Pooling" in mixed.items
    only = Rubric.from_dict({"items": {"Affine": {"extensions": ["rank>2"]}, "Dropout": {"count": True}}})
    assert only.counted("Affine") == ("rank>2",) and only.counted("SoftmaxWithLoss") == ()
    assert len(only.items) == len(ITEMS)
    # --chapter replaces the file's chapter, and says so
    flag = Rubric.from_dict({"chapter": 5}, "r.toml", chapter=7)
    assert flag.items == tuple(i.name for i in ITEMS) and flag.source == "r.toml, chapter 7"


@pytest.mark.parametrize("doc, message", [
    ({"chapter": "7"}, "chapter: a chapter of the book is a whole number from 1 to 8, not '7'"),
    ({"chapter": 9}, "not 9"),
    ({"chapter": True}, "not True"),
    ({"items": {"Affine": {"extensions": "rank>2"}}}, "[items.Affine] extensions must be a list of names"),
    ({"items": {"Affine": {"extensions": ["rank-4"]}}},
     "Affine has no extension 'rank-4'; its extensions are 'rank>2' (ch. 7)"),
    ({"items": {"Relu": {"extensions": ["rank>2"]}}}, "its extensions are none"),
    ({"items": {"Affine": {"extension": ["rank>2"]}}}, "an item takes `weight`, `count` and `extensions`"),
    ({"chapter": 3}, "no item counts"),
])
def test_rubric_errors_say_what_is_wrong(doc, message):
    with pytest.raises(GradingError) as err:
        Rubric.from_dict(doc, "rubric.toml")
    assert message in str(err.value)


@pytest.mark.parametrize("chapter", [5, 6, 7])
def test_the_books_code_in_its_layout_gets_full_marks(chapter):
    """Our own book-faithful copy, laid out as the official repository (common/, ch05/, ch07/),
    graded as an instructor grades it, the items of one chapter at a time (chapters 4-5 together):
    three tests that run side by side, not one three times as long. By default (no rubric) every
    item it defines counts, as the union of these. 20 examples per check, not grading's 25: the
    same examples as the property tests' (the ci profile), whose reference answers they share
    through the store, instead of as many again to draw and answer on a fresh run."""
    ours = [i.name for i in ITEMS if (i.chapter <= 5 if chapter == 5 else i.chapter == chapter)]
    rubric = Rubric.from_dict({"items": {i.name: {"count": i.name in ours} for i in ITEMS}})
    result = grade_submission(BOOK, GradeOptions(rubric=rubric, max_examples=settings.get_profile("ci").max_examples))
    assert result.errors == () and [r.name for r in result.items] == ours
    # every item it defines gets full marks; it defines at least the book's items
    defined = [r for r in result.items if "not-found" not in r.tags]
    assert {r.name for r in defined} >= {name for name in BOOK_CHAPTERS if name in ours}
    assert [(r.name, r.score, r.status) for r in defined] == [(r.name, r.max_score, "passed") for r in defined]
    assert result.score == sum(r.max_score for r in defined) == len(defined)
    if chapter == 7:
        (pooling,) = [r for r in result.items if r.name == "Pooling"]
        assert pooling.uncounted == ("padding",) and pooling.uncounted_tags == ("exception",) and pooling.tags == ()
        assert pooling.gradescope()["extra_data"] == {"file": "common/layers.py", "not_counted": {
            "extensions": ["padding"], "tags": ["exception"]}}
        assert "⚠ padding (ch. 7, not counted)" in pooling.output
        assert "Pooling will not survive ch. 7" in pooling.output


def test_chapter_flag_counts_the_extensions(tmp_path):
    """`--chapter 7`: the 2-D Affine of ch. 5 loses the rank>2 share, 1 of 8 checks."""
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("".join(f"[items.{i.name}]\ncount = false\n" for i in ITEMS if i.name != "Affine"))
    status = cli.main(["grade", str(FIXTURES / "chapter_text" / "affine_2d_only.py"), "--out", str(tmp_path / "out"),
                       "--rubric", str(rubric), "--chapter", "7", "-j", "1"])
    rows = list(csv.reader((tmp_path / "out" / "grades.csv").open()))
    assert status == 0 and rows == [["submission", "score", "max_score", "Affine"],
                                    ["affine_2d_only", "0.88", "1.00", "0.88"]]
    feedback = (tmp_path / "out" / "affine_2d_only" / "results.json").read_text()
    assert "✗ rank>2 (ch. 7, counted)" in feedback and "rubric: rubric.toml, chapter 7" in feedback


def test_a_fault_inside_an_extension_costs_the_extension_only():
    """The book's Pooling raises for pad > 0: as of ch. 7 that is 1 of 9 checks, not the item."""
    options = GradeOptions(rubric=Rubric.from_dict({"chapter": 7, "items": {
        i.name: {"count": False} for i in ITEMS if i.name != "Pooling"}}))
    (pooling,) = grade_submission(BOOK, options).items
    assert (pooling.score, pooling.status, pooling.uncounted) == (Fraction(89, 100), "failed", ())  # 8/9
    assert "✗ padding (ch. 7, counted)" in pooling.output


def test_the_gradescope_bundle_grades_as_of_the_chapter_asked(tmp_path):
    import zipfile

    wheel = tmp_path / "gradprop-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel: the bundle only carries it")
    out = tmp_path / "autograder.zip"
    assert cli.main(["gradescope-bundle", "--out", str(out), "--wheel", str(wheel), "--chapter", "6"]) == 0
    assert "--chapter 6" in zipfile.ZipFile(out).read("run_autograder").decode()
    assert cli.main(["gradescope-bundle", "--out", str(out), "--wheel", str(wheel), "--chapter", "9"]) == 2


def test_by_default_a_chapter_5_file_reads_as_correct_and_a_later_item_counts_where_defined():
    """No rubric, no --chapter: every item of chapters <= 5 counts; an item of a later chapter
    counts for a submission that defines it, and is left blank (not counted) for one that does not."""
    options = GradeOptions(max_examples=3)
    book = grade_submission(ROOT / "examples" / "book_correct.py", options)
    adam = grade_submission(FIXTURES / "broken" / "adam_no_bias_correction.py", options)
    rows = {row["submission"]: row for row in csv.DictReader(io.StringIO(grades_csv([book, adam], options.rubric)))}
    assert list(rows["book_correct"])[3:] == [i.name for i in ITEMS]  # a column per item
    ch5 = [i.name for i in items_up_to(DEFAULT_CHAPTER)]
    assert rows["book_correct"]["score"] == rows["book_correct"]["max_score"] == f"{len(ch5):.2f}"
    assert all(rows["book_correct"][name] == ("1.00" if name in ch5 else "") for name in rows["book_correct"]
               if name in REGISTRY)
    assert rows["adam_no_bias_correction"]["max_score"] == f"{len(ch5) + 1:.2f}"  # the ch. 5 items and Adam
    assert rows["adam_no_bias_correction"]["Adam"] not in ("", "1.00")
    feedback = json.loads(results_json(book))
    assert [t["name"] for t in feedback["tests"]] == ch5
    assert "not defined, and not counted" in feedback["output"] and "SimpleConvNet" in feedback["output"]


def test_the_sandbox_sees_an_optimizer_rebind_its_params(tmp_path):
    """The child reports a params entry the update replaced: caught as not-in-place through the
    sandbox, as in the fixtures' in-process runs."""
    book = tmp_path / "book"
    shutil.copytree(BOOK, book)
    optimizer = book / "common" / "optimizer.py"
    optimizer.write_text(optimizer.read_text().replace(
        "params[key] -= self.lr * grads[key]\n", "params[key] = params[key] - self.lr * grads[key]\n", 1))  # SGD's
    optimizers = [i.name for i in ITEMS if i.kind == "optimizer"]
    rubric = Rubric.from_dict({"items": {i.name: {"count": i.name in optimizers} for i in ITEMS}})
    result = grade_submission(book, GradeOptions(rubric=rubric, max_examples=3))
    scores = {r.name: (r.score, r.tags) for r in result.items}
    assert scores.pop("SGD")[1] == ("not-in-place",)
    assert all(score == 1 for score, _ in scores.values()), scores
