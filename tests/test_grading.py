"""``gradprop grade`` end to end: real faulty files in tests/submissions/ are graded in the sandbox.

Most tests grade a few items with a few examples per check (``FAST``): the faults do not depend on
the budget. The determinism test uses the real grading profile.
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import pytest

from gradprop import cli
from gradprop.grading import (DEFAULT_CHAPTER, GradeOptions, GradingError, Rubric, SubmissionResult, grade_submission,
                              grades_csv, results_json, score_item, write_csv)
from gradprop.properties.registry import ITEMS, items_up_to
from gradprop.properties.runner import Outcome

HERE = Path(__file__).parent
SUBMISSIONS = HERE / "submissions"
NOTES = HERE.parent / "examples" / "notes.py"
FAST = dict(max_examples=3, time_limit=5.0, memory_mb=512)


def only(*names: str, **weights: float) -> Rubric:
    """A rubric that counts just ``names`` (weights by keyword)."""
    table = {i.name: ({"weight": weights[i.name]} if i.name in weights else {}) if i.name in names
             else {"count": False} for i in ITEMS}
    return Rubric.from_dict({"items": table}, "test")


def rubric_file(tmp_path: Path, *names: str) -> str:
    text = "".join(f"[items.{i.name}]\ncount = false\n" for i in ITEMS if i.name not in names)
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    return str(path)


def grade(file: str | Path, *items: str, **options) -> SubmissionResult:
    path = file if isinstance(file, Path) else SUBMISSIONS / file
    return grade_submission(path, GradeOptions(**{**FAST, "rubric": only(*items), **options}))


def by_name(result: SubmissionResult) -> dict:
    return {r.name: r for r in result.items}


def check_gradescope_shape(doc: dict) -> None:
    """results.json as Gradescope reads it."""
    assert isinstance(doc["score"], float) and isinstance(doc["max_score"], float)
    assert isinstance(doc["execution_time"], (int, float)) and isinstance(doc["output"], str)
    assert doc["output_format"] == "text"
    assert doc["tests"], "one test per item"
    for test in doc["tests"]:
        assert {"name", "score", "max_score", "status", "output", "tags"} <= set(test) <= {
            "name", "score", "max_score", "status", "output", "tags", "extra_data"}
        extra = test.get("extra_data", {})  # Gradescope's own field: the file graded, what does not count
        assert set(extra) <= {"file", "not_counted"} and isinstance(extra.get("file", ""), str)
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert isinstance(test["score"], float) and isinstance(test["max_score"], float)
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in ("passed", "failed")
        assert isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])
        assert test["tags"] == sorted(set(test["tags"]))
    assert doc["score"] == pytest.approx(sum(t["score"] for t in doc["tests"]))
    assert doc["max_score"] == pytest.approx(sum(t["max_score"] for t in doc["tests"]))


# --- faults: each costs the item it happens in, never the row -------------------------------------


def test_a_hang_costs_its_item_only():
    result = grade("hangs.py", "MulLayer", "Relu", time_limit=1.0)
    items = by_name(result)
    assert items["MulLayer"].score == 1 and items["MulLayer"].status == "passed"
    relu = items["Relu"]
    assert relu.score == 0 and relu.status == "failed" and relu.tags == ("timeout",)
    assert "Relu.forward did not return within 1 s" in relu.output  # and, time allowing, where it was


def test_a_crash_or_an_exception_costs_its_item_only():
    items = by_name(grade("crashes.py", "MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine"))
    assert items["MulLayer"].score == items["AddLayer"].score == 1
    assert items["Relu"].tags == ("exception",) and "exited with status 0" in items["Relu"].output
    assert items["Sigmoid"].tags == ("exception",) and "SIGSEGV" in items["Sigmoid"].output
    affine = items["Affine"]
    assert affine.score == 0 and affine.tags == ("exception",)
    assert "ValueError: TODO: backward" in affine.output and "✓ forward" in affine.output


def test_a_memory_blowup_costs_its_item_only():
    items = by_name(grade("memory_blowup.py", "MulLayer", "Relu"))
    assert items["MulLayer"].score == 1
    assert items["Relu"].score == 0 and items["Relu"].tags == ("exception",)
    assert "MemoryError" in items["Relu"].output


def test_a_flood_of_prints_is_cut_short_and_graded_as_usual():
    result = grade("prints_flood.py", "MulLayer")
    assert by_name(result)["MulLayer"].score == 1
    assert "debug line 0:" in result.output and "debug line 100000" not in result.output
    assert len(results_json(result)) < 20_000


def test_missing_names_are_not_found():
    items = by_name(grade("good_mul.py", "MulLayer", "softmax", "TwoLayerNet"))
    assert items["MulLayer"].score == 1
    for name in ("softmax", "TwoLayerNet"):
        assert items[name].score == 0 and items[name].tags == ("not-found",)
        assert f"{name} is not defined" in items[name].output


def test_patching_numpy_in_the_submission_changes_nothing():
    items = by_name(grade("patches_numpy.py", "MulLayer", "Sigmoid"))
    assert items["MulLayer"].score == 1
    sigmoid = items["Sigmoid"]
    assert sigmoid.status == "failed" and sigmoid.tags == ("wrong-gradient",) and sigmoid.score < 1
    assert "worst entry dx[" in sigmoid.output and "Reproduce" in sigmoid.output


def test_import_faults_still_get_a_row(tmp_path, capsys):
    out = tmp_path / "grades"
    paths = [str(SUBMISSIONS / f) for f in ("syntax_error.py", "exits_at_import.py")]
    assert cli.main(["grade", *paths, "--out", str(out), "-j", "1", "--max-examples", "2",
                     "--rubric", rubric_file(tmp_path, "MulLayer", "Relu")]) == 0
    rows = list(csv.reader(io.StringIO((out / "grades.csv").read_text())))
    assert rows == [["submission", "score", "max_score", "MulLayer", "Relu"],
                    ["exits_at_import", "0.00", "2.00", "0.00", "0.00"],
                    ["syntax_error", "0.00", "2.00", "0.00", "0.00"]]
    syntax = json.loads((out / "syntax_error" / "results.json").read_text())
    check_gradescope_shape(syntax)
    assert all(t["tags"] == ["import-error"] for t in syntax["tests"])
    assert "SyntaxError" in syntax["output"] and "line 18" in syntax["output"]
    exits = json.loads((out / "exits_at_import" / "results.json").read_text())
    assert "SystemExit" in exits["tests"][0]["output"] and "demo: [1. 1.]" in exits["output"]
    assert "[2/2]" in capsys.readouterr().err  # one line per submission when not on a terminal


# --- the notes of seed-notes.md ----------------------------------------------------------------------


@pytest.mark.skipif(not NOTES.exists(), reason="examples/notes.py not written yet")
def test_the_notes_are_graded_as_the_issue_says():
    result = grade_submission(NOTES, GradeOptions(**FAST))
    items = by_name(result)
    for name in ("MulLayer", "AddLayer", "Relu", "Sigmoid"):
        assert items[name].score == items[name].max_score == 1, items[name].output
        assert items[name].status == "passed"
    assert "mutates-dout" in items["Relu"].tags and "⚠ mutates-dout" in items["Relu"].output
    affine = items["Affine"]
    assert affine.score == 0 and affine.tags == ("exception",) and "original_x_shape" in affine.output
    for name in ("softmax", "cross_entropy_error", "TwoLayerNet"):
        assert items[name].score == 0 and items[name].tags == ("not-found",)
    # by default every item of chapters <= 5 counts; the notes define no later one
    assert [t.name for t in result.items] == [i.name for i in items_up_to(DEFAULT_CHAPTER)]
    check_gradescope_shape(json.loads(results_json(result)))


# --- determinism and parallelism ---------------------------------------------------------------------


def test_two_runs_give_byte_identical_grades_with_the_grading_profile(tmp_path):
    options = GradeOptions(rubric=only("MulLayer", "AddLayer", "Sigmoid"))  # the real grading profile
    paths = [SUBMISSIONS / "good_mul.py", SUBMISSIONS / "syntax_error.py"]
    runs = []
    for run in ("first", "second"):
        results = [grade_submission(p, options) for p in paths]
        runs.append((write_csv(results, options.rubric, tmp_path / run).read_bytes(),
                     [json.loads(results_json(r)) for r in results]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        a.pop("execution_time"), b.pop("execution_time")
        assert a == b  # the same feedback too
    assert b"good_mul,2.50,3.00,1.00,1.00,0.50" in runs[0][0]


def test_parallel_grading_matches_serial_and_survives_a_killed_worker(tmp_path):
    paths = [str(SUBMISSIONS / f) for f in ("patches_numpy.py", "kills_grader.py", "good_mul.py")]
    rubric = rubric_file(tmp_path, "MulLayer", "Sigmoid")
    sheets = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}"
        status = cli.main(["grade", *paths, "--out", str(out), "-j", jobs, "--max-examples", "3", "--rubric", rubric])
        sheets.append((status, (out / "grades.csv").read_bytes()))
    assert sheets[0] == sheets[1]
    status, sheet = sheets[0]
    rows = {row[0]: row for row in csv.reader(io.StringIO(sheet.decode()))}
    assert set(rows) == {"submission", "good_mul", "kills_grader", "patches_numpy"}
    assert rows["good_mul"][3] == "1.00" and rows["patches_numpy"][3] == "1.00"
    # the sandbox keeps the killer away from its grading process: it is graded like anyone else
    # (its MulLayer has no backward), and the run is whole
    assert (status, rows["kills_grader"][1]) == (0, "0.00")


# --- scoring and the rubric -----------------------------------------------------------------------


def outcome(prop: str, tag: str | None = None, tier: str = "core", message: str = "") -> Outcome:
    return Outcome("Affine", prop, tier, f"about {prop}", tag, message or (tag and f"{tag} message") or "")


def test_partial_credit_is_the_share_of_core_checks_that_hold():
    outcomes = [outcome(p) for p in ("forward", "shapes", "mutates-input", "stale-state", "batch-1")]
    outcomes += [outcome(p, "wrong-gradient") for p in ("backward", "numerical", "rank>2", "rank-4")]
    outcomes += [outcome("mutates-dout", "mutates-dout", "strict"), outcome("aliases-output", tier="strict")]
    lenient = score_item("Affine", Fraction(1), outcomes)
    assert (lenient.score, lenient.status) == (Fraction(56, 100), "failed")  # 5/9, half up
    assert lenient.tags == ("mutates-dout", "wrong-gradient")
    assert "✗ backward — about backward [wrong-gradient]" in lenient.output
    assert "the same finding: ✗ numerical, ✗ rank>2, ✗ rank-4" in lenient.output
    assert "⚠ mutates-dout" in lenient.output
    strict = score_item("Affine", Fraction(2), outcomes, strict=True)
    assert strict.score == Fraction(109, 100)  # 2 * 6/11 = 1.0909...
    warning_only = score_item("Affine", Fraction(1), [outcome("forward"), outcome("mutates-dout", "mutates-dout", "strict")])
    assert (warning_only.score, warning_only.status, warning_only.tags) == (1, "passed", ("mutates-dout",))


def test_a_fault_costs_the_whole_item():
    outcomes = [outcome("forward"), outcome("backward", "exception"), outcome("numerical", "wrong-gradient")]
    result = score_item("Affine", Fraction(3), outcomes)
    assert (result.score, result.max_score, result.tags) == (0, 3, ("exception", "wrong-gradient"))
    assert "A fault (a raise, a hang or a crash) costs the whole item." in result.output


def test_a_rubric_sets_weights_and_which_items_count(tmp_path):
    path = tmp_path / "rubric.toml"
    path.write_text("default_weight = 0.5\n[items.Affine]\nweight = 2\n[items.TwoLayerNet]\ncount = false\n")
    rubric = Rubric.load(path)
    weights = dict(rubric.weights)
    assert weights["Affine"] == 2 and weights["Relu"] == Fraction(1, 2) and "TwoLayerNet" not in weights
    assert rubric.items == tuple(i.name for i in ITEMS if i.name != "TwoLayerNet")
    result = grade("good_mul.py", "MulLayer", rubric=only("MulLayer", MulLayer=2.5))
    assert (result.max_score, result.items[0].max_score, result.score) == (Fraction(5, 2), Fraction(5, 2), Fraction(5, 2))
    assert grades_csv([result], only("MulLayer")).splitlines()[1] == "good_mul,2.50,2.50,2.50"


@pytest.mark.parametrize("text, error", [
    ("[items.ReLU]\nweight = 2\n", "unknown item 'ReLU' (write it as Relu)"),
    ("[items.Softmax]\ncount = false\n", "unknown item 'Softmax'"),
    ("[items.Affine]\nweight = -1\n", "weight must be >= 0"),
    ("[items.Affine]\nwieght = 2\n", "unknown key(s) wieght"),
    ("[items.Affine]\ncount = 0\n", "count must be true or false"),
    ("weights = 1\n", "unknown key(s) weights"),
    ("[items.Affine\n", "not valid TOML"),
])
def test_a_bad_rubric_is_refused_with_a_clear_message(tmp_path, text, error):
    path = tmp_path / "rubric.toml"
    path.write_text(text)
    with pytest.raises(GradingError, match=None) as info:
        Rubric.load(path)
    assert error in str(info.value)


def test_usage_errors_grade_nothing(tmp_path, capsys):
    for sub in ("x/a", "y/a"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "layers.py").write_text("")
    same = [str(tmp_path / "x" / "a" / "layers.py"), str(tmp_path / "y" / "a" / "layers.py")]
    assert cli.main(["grade", *same, "--out", str(tmp_path / "out")]) == 2  # one name, one folder name too
    assert "'layers'" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert cli.main(["grade", str(tmp_path / "missing.py"), "--out", str(tmp_path / "out")]) == 2
    (tmp_path / "bad.toml").write_text("[items.Nope]\n")
    assert cli.main(["grade", same[0], "--out", str(tmp_path / "out"), "--rubric", str(tmp_path / "bad.toml")]) == 2
    assert "unknown item 'Nope'" in capsys.readouterr().err


def test_files_of_one_name_in_students_folders_are_named_after_the_folders(tmp_path):
    """submissions/*/hw5.ipynb: each student's folder names the submission."""
    from gradprop.grading import submission_names

    paths = []
    for student in ("alice", "bob"):
        (tmp_path / student).mkdir()
        paths.append(tmp_path / student / "hw5.py")
        paths[-1].write_text("")
    (tmp_path / "carol.py").write_text("")
    named = submission_names([*paths, tmp_path / "carol.py"])
    assert sorted(name for name, _ in named) == ["alice", "bob", "carol"]


def test_a_bug_in_the_grader_leaves_a_blank_row_not_a_grade(monkeypatch):
    import gradprop.grading as grading

    real = grading.evaluate

    def buggy(session, item, origin, settings):
        if item.name == "AddLayer":
            raise KeyError("oops")
        return real(session, item, origin, settings)

    monkeypatch.setattr(grading, "evaluate", buggy)
    result = grade("good_mul.py", "MulLayer", "AddLayer")
    assert result.errors and "KeyError" in result.errors[0]
    assert result.csv_row() == ["good_mul", "", "2.00", "1.00", ""]
    assert "gradprop itself failed" in result.output


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    result = SubmissionResult("alice", "alice.py", (), "")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, terminal = io.StringIO(), Terminal()
    for stream in (plain, terminal):
        bar = cli.Progress(2, stream)
        bar.update(result)
        bar.update(result)
        bar.close()
    assert plain.getvalue().splitlines()[1].startswith("[2/2] alice: 0.00/0.00")
    assert "\r[" in terminal.getvalue() and "#" * 30 in terminal.getvalue()


# --- the Gradescope bundle --------------------------------------------------------------------------


def test_the_bundle_installs_nothing_from_an_index_and_grades_a_submission(tmp_path):
    from gradprop.bundle import write_bundle

    rubric = rubric_file(tmp_path, "MulLayer", "Sigmoid")
    bundle = write_bundle(tmp_path / "autograder.zip", rubric=rubric, time_limit=5)
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        assert {"setup.sh", "run_autograder", "constraints.txt", "rubric.toml"} <= set(names)
        wheel = next(n for n in names if n.startswith("gradprop-") and n.endswith(".whl"))
        for script in ("setup.sh", "run_autograder"):
            assert (zf.getinfo(script).external_attr >> 16) & stat.S_IXUSR
        setup = zf.read("setup.sh").decode()
        assert "pip install" in setup and "gradprop-*.whl" in setup and "-c constraints.txt" in setup
        with zf.open(wheel) as f, zipfile.ZipFile(f) as wf:
            packaged = set(wf.namelist())
        assert {"gradprop/grading.py", "gradprop/properties/checks.py", "gradprop/reference/__init__.py"} <= packaged
        root = tmp_path / "autograder"
        zf.extractall(root / "source")
    doc = run_bundle(root, (SUBMISSIONS / "good_mul.py").read_text())
    check_gradescope_shape(doc)
    mul, sigmoid = doc["tests"]
    assert (mul["name"], mul["score"], sigmoid["name"], sigmoid["status"]) == ("MulLayer", 1.0, "Sigmoid", "failed")
    assert "from layers import Sigmoid" in sigmoid["output"]  # the one file uploaded is what snippets import


def run_bundle(root: Path, source: str) -> dict:
    """Upload ``source`` as Gradescope would, run the bundle's run_autograder, read results.json."""
    (root / "submission").mkdir(exist_ok=True)
    (root / "submission" / "layers.py").write_text(source)
    env = {**os.environ, "GRADPROP_AUTOGRADER_ROOT": str(root), "GRADPROP_PYTHON": sys.executable}
    run = subprocess.run(["bash", str(root / "source" / "run_autograder"), "--max-examples", "2"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads((root / "results" / "results.json").read_text())


def processes_named(name: str) -> list[int]:
    """Pids of the processes whose name (``/proc/PID/comm``) is ``name``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == name:
                found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="Gradescope runs the autograder as root: the uid drop is what is tested")
def test_in_the_bundle_run_as_root_a_submission_cannot_write_results_or_the_installed_gradprop(tmp_path):
    import gradprop
    from gradprop.bundle import write_bundle

    rubric = rubric_file(tmp_path, "MulLayer", "Sigmoid")
    root = tmp_path / "autograder"
    with zipfile.ZipFile(write_bundle(tmp_path / "autograder.zip", rubric=rubric, time_limit=5)) as zf:
        zf.extractall(root / "source")
    package = Path(gradprop.__file__).parent
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in package.glob("*.py")}
    results = root / "results" / "results.json"
    forger = f"gpforge{os.getpid() % 10**7}"  # the daemon's process name (15 bytes at most): found by it
    attack = f"""
import ctypes, os, time
def forge():
    open({str(results)!r}, "w").write('{{"score": 99}}')
def daemon():
    ctypes.CDLL(None).prctl(15, {forger.encode()!r}, 0, 0, 0)  # PR_SET_NAME
    while True:  # until something kills it
        try:
            forge()
        except OSError:
            pass
        time.sleep(0.05)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        daemon()
    os._exit(0)
for what in (lambda: open({str(package / "zz_bundle_attack.py")!r}, "w").write("x"),
             lambda: os.utime({str(package / "grading.py")!r}, (0, 0)), forge):
    try:
        what()
    except OSError:
        pass
"""
    seen, done = [], threading.Event()

    def watch() -> None:  # the daemon must be seen alive during the run, or the test proves nothing
        while not done.wait(0.02):
            seen.extend(processes_named(forger))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        doc = run_bundle(root, attack + (SUBMISSIONS / "good_mul.py").read_text())
        done.set()
        watcher.join()
        time.sleep(0.5)  # ten of the daemon's tries, were it still alive
        assert seen, "the forging daemon was never seen running"
        assert processes_named(forger) == [], "the forging daemon outlived the grading run"
        assert json.loads(results.read_text()) == doc
        assert [t["score"] for t in doc["tests"]] == [1.0, 0.5]  # what good_mul.py's layers earn
        assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in package.glob("*.py")} == before
    finally:
        done.set()
        for pid in processes_named(forger):
            os.kill(pid, 9)
        (package / "zz_bundle_attack.py").unlink(missing_ok=True)


def test_a_wheel_is_made_from_a_plain_install_too(tmp_path, monkeypatch):
    """gradescope-bundle and gradprop wheel from a non-editable install: the installed files and
    metadata, zipped again with a RECORD of their hashes (an installer's own files left out)."""
    import base64
    import hashlib
    from importlib import metadata

    from gradprop import bundle

    site = tmp_path / "site-packages"
    files = {"gradprop/__init__.py": "__version__ = '0.1.0'\n", "gradprop/layers/__init__.py": "X = 1\n",
             "gradprop-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: gradprop\nVersion: 0.1.0\n",
             "gradprop-0.1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             "gradprop-0.1.0.dist-info/INSTALLER": "pip\n"}
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    (site / "gradprop-0.1.0.dist-info" / "RECORD").write_text("".join(f"{n},,\n" for n in files)
                                                              + "gradprop-0.1.0.dist-info/RECORD,,\n")
    monkeypatch.setattr(bundle.metadata, "distribution",
                        lambda name: metadata.PathDistribution(site / "gradprop-0.1.0.dist-info"))
    monkeypatch.setattr(bundle, "source_root", lambda: (_ for _ in ()).throw(bundle.BundleError("no checkout")))
    wheel = bundle.build_wheel(tmp_path / "out")
    assert wheel.name == "gradprop-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read("gradprop-0.1.0.dist-info/RECORD").decode().splitlines()
        assert names == set(files) - {"gradprop-0.1.0.dist-info/INSTALLER"} | {"gradprop-0.1.0.dist-info/RECORD"}
        for line in record[:-1]:
            name, digest, size = line.split(",")
            data = zf.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
