"""A class that hands out the book's common/: the instructor's scaffold beside every submission,
read-only, the instructor's copy winning (fixtures/class/).

``course/rubric.toml`` gives ``support = ["common"]`` (the book's functions, and a layers.py with
Relu and Affine but no SoftmaxWithLoss, which the homework asks for). Five students: alice (a
.py importing the scaffold, writing SoftmaxWithLoss and her own Affine), bob (the same as a
notebook), carol (uploads her own broken common/functions.py: the course's copy is used), dave
(defines nothing himself: the scaffold's Relu and Affine are not his) and erin (a
SoftmaxWithLoss without / batch_size). ``expected.csv`` is the grade sheet they must get, locally,
through the Gradescope bundle, and the verdicts ``gradprop check --support`` must give.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gradprop import cli
from gradprop.check import Options, run_check
from gradprop.grading import Rubric
from gradprop.properties.registry import REGISTRY

CLASS = Path(__file__).resolve().parent.parent / "fixtures" / "class"
RUBRIC = CLASS / "course" / "rubric.toml"
EXPECTED = (CLASS / "expected.csv").read_text(encoding="utf-8")
STUDENTS = sorted(p.name for p in (CLASS / "submissions").iterdir())


def expected_rows() -> dict[str, list[str]]:
    header, *rows = [line.split(",") for line in EXPECTED.splitlines()]
    return {row[0]: dict(zip(header[1:], row[1:])) for row in rows}


def submission(student: str) -> Path:
    return next((CLASS / "submissions" / student).glob("hw5.*"))


def test_the_class_is_graded_with_the_scaffold_beside_each_submission(tmp_path):
    out = tmp_path / "out"
    paths = [str(submission(s)) for s in STUDENTS]
    assert cli.main(["grade", *paths, "--out", str(out), "--rubric", str(RUBRIC), "--max-examples", "5", "-j", "2"]) == 0
    assert (out / "grades.csv").read_text(encoding="utf-8") == EXPECTED
    carol = json.loads((out / "carol" / "results.json").read_text(encoding="utf-8"))
    assert "the course's copy was used instead of the submission's own: common/__init__.py, common/functions.py" \
        in carol["output"]
    dave = {t["name"]: t for t in json.loads((out / "dave" / "results.json").read_text(encoding="utf-8"))["tests"]}
    assert "it comes from the course's file common/layers.py" in dave["Affine"]["output"]
    assert "took Relu from common/layers.py, Affine from common/layers.py" in \
        json.loads((out / "dave" / "results.json").read_text(encoding="utf-8"))["output"]


def test_changing_the_scaffold_grades_again(tmp_path):
    """The course's files are part of what a result depends on (the resume fingerprint)."""
    from gradprop.grading import GradeOptions, fingerprint

    course = tmp_path / "course"
    shutil.copytree(CLASS / "course", course)
    options = GradeOptions(rubric=Rubric.load(course / "rubric.toml"))
    before = fingerprint(submission("alice"), options)
    with open(course / "common" / "functions.py", "a") as f:
        f.write("\n# a change of the course's\n")
    assert fingerprint(submission("alice"), options) != before


def test_support_counts_credits_the_scaffold_where_the_rubric_says(tmp_path):
    from gradprop.grading import GradeOptions, grade_submission

    doc = Rubric.load(RUBRIC)
    rubric = Rubric(doc.weights, doc.source, doc.extensions, doc.forbid, doc.support, ("Relu",))
    result = grade_submission(submission("dave"), GradeOptions(rubric=rubric, max_examples=3))
    assert {r.name: float(r.score) for r in result.items} == {"Relu": 1.0, "Affine": 0.0, "SoftmaxWithLoss": 0.0}


def test_the_gradescope_bundle_carries_the_scaffold_and_grades_alike(tmp_path):
    from gradprop.bundle import write_bundle

    wheel = tmp_path / "gradprop-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not installed here: the run uses this interpreter (GRADPROP_PYTHON)")
    bundle = write_bundle(tmp_path / "autograder.zip", rubric=str(RUBRIC), wheel=wheel,
                          rubric_support=Rubric.load(RUBRIC).support)
    rows = expected_rows()
    for student in STUDENTS:
        root = tmp_path / student
        with zipfile.ZipFile(bundle) as zf:
            zf.extractall(root / "source")
        assert (root / "source" / "common" / "functions.py").is_file()
        shutil.copytree(CLASS / "submissions" / student, root / "submission")
        env = {**os.environ, "GRADPROP_AUTOGRADER_ROOT": str(root), "GRADPROP_PYTHON": sys.executable}
        run = subprocess.run(["bash", str(root / "source" / "run_autograder"), "--max-examples", "5"],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        doc = json.loads((root / "results" / "results.json").read_text())
        assert {t["name"]: f"{t['score']:.2f}" for t in doc["tests"]} == \
            {k: v for k, v in rows[student].items() if k not in ("score", "max_score")}, student


@pytest.mark.parametrize("student", STUDENTS)
def test_check_with_the_scaffold_gives_the_same_verdicts(student):
    rows = expected_rows()[student]
    items = [REGISTRY[name] for name in ("Relu", "Affine", "SoftmaxWithLoss")]
    result = run_check(str(submission(student)), items, Options(support=tuple(Rubric.load(RUBRIC).support)))
    assert result.error is None and result.import_error is None
    for r in result.items:
        earned = rows[r.name] == "1.00"
        assert (r.status in ("passed", "warning")) == earned, (student, r)
    if student == "dave":  # the scaffold's items are named as the course's, not his
        assert [r.scaffold for r in result.items] == ["common/layers.py", "common/layers.py", None]
