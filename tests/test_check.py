"""``gradprop check`` and the installed pytest plugin, as a student meets them.

The command runs in this process (its submission in the sandbox, as always); the plugin runs in
a subprocess pytest started in a folder outside the repository.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import Phase, settings

from gradprop import check, cli
from gradprop.findings import STRICT, TAGS
from gradprop.properties.registry import ITEMS, REGISTRY, items_up_to
from gradprop.session import InProcessSession

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BOOK = ROOT / "examples" / "book_correct.py"
ONE_BUG = FIXTURES / "broken" / "affine_db_first_row.py"  # defines Affine only; db = dout[0]
GOOD_MUL = Path(__file__).resolve().parent / "submissions" / "good_mul.py"  # a wrong Sigmoid
HEADER = re.compile(r"#\s*gradprop-fixture:\s*item=(\S+)\s+expect=(\S+)")
ANSI = re.compile(r"\x1b\[")


def run(*argv: str, jobs: str = "1") -> tuple[int, str, str]:
    """``gradprop check ARGV -j JOBS`` in this process: exit status, stdout, stderr (both piped)."""
    out, err = io.StringIO(), io.StringIO()
    args = cli.build_parser().parse_args(["check", *argv, "-j", jobs])
    code = check.cmd_check(args, out, err)
    return code, out.getvalue(), err.getvalue()


# --- the command -----------------------------------------------------------------------------------


def test_one_bug_exits_1_with_that_finding_first_and_once():
    code, out, _ = run(str(ONE_BUG))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["✗", "Affine", "[wrong-gradient]"]
    assert out.count("db is wrong") == 1, out
    assert out.count("Reproduce") == 1, out
    first = out.index("✗ Affine: backward")
    assert first < out.index("db is wrong") < out.index("also failing: numerical [wrong-gradient]")
    assert "from affine_db_first_row import Affine" in out
    assert "more checks of Affine not run" in out  # it stopped at its first finding


def test_not_defined_items_are_listed_once_and_do_not_fail():
    code, out, _ = run(str(BOOK), "--items", "MulLayer,Sigmoid")
    assert code == 0 and "not defined" not in out
    code, out, _ = run(str(ONE_BUG))
    missing = [item.name for item in ITEMS if item.name != "Affine"]
    (line,) = [line for line in out.splitlines() if "not defined" in line]
    assert line.split(": ", 1)[1].split(", ") == missing
    for name in missing:
        assert len(re.findall(rf"\b{name}\b", out)) == 1, name


def test_items_checks_only_those_and_a_missing_one_fails():
    code, out, _ = run(str(BOOK), "--items", "mullayer,AddLayer")  # case does not matter
    assert code == 0
    assert [line.split()[1] for line in out.splitlines() if line[:1] and line[0] in "✓✗⚠"] == ["MulLayer", "AddLayer"]
    code, out, _ = run(str(BOOK), "--items", "MulLayer,Pooling")
    assert code == 1
    assert re.search(r"^✗ Pooling +not defined$", out, re.M), out
    assert "1 of 2 checked items fail: Pooling" in out


def test_two_processes_report_what_one_does():
    argv = (str(BOOK), "--items", "MulLayer,Relu,Affine,TwoLayerNet")
    (code1, out1, _), (code2, out2, _) = run(*argv), run(*argv, jobs="2")
    assert code1 == code2 == 0
    assert out1.splitlines()[:-1] == out2.splitlines()[:-1]  # all but the timing line
    code1, out1, _ = run(str(ONE_BUG), "--items", "Affine,Sigmoid,Pooling")
    code2, out2, _ = run(str(ONE_BUG), "--items", "Affine,Sigmoid,Pooling", jobs="2")
    assert code1 == code2 == 1 and out1.splitlines()[:-1] == out2.splitlines()[:-1]


@pytest.mark.parametrize("argv, forks", [
    (["check", "x.py"], True), (["check", "x.py", "--items", "Affine,Relu"], True),
    (["check", "x.py", "--items", "Affine"], False), (["check", "x.py", "-j", "1"], False),
    (["grade", "x.py", "--out", "o"], True), (["gradescope-run"], False)])
def test_the_fork_server_is_started_early_only_for_a_command_that_forks(argv, forks, monkeypatch):
    """It imports the suite while the command reads the registry (a warm check took 0.71 s instead
    of 0.86); a command that grades in its own process must not pay for one."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert cli._uses_workers(cli.build_parser().parse_args(argv)) is forks


def test_chapter_selects_the_items_of_earlier_chapters():
    assert check.select_items(chapter=5)[0] == list(items_up_to(5))
    assert {"MulLayer", "TwoLayerNet"} <= {i.name for i in items_up_to(5)} and REGISTRY["Pooling"] not in items_up_to(6)
    assert {i.name for i in check.select_items(chapter=8)[0]} == set(REGISTRY)
    assert check.select_items(chapter=6)[1] is True and check.select_items()[1] is False


def test_usage_errors_exit_2(tmp_path):
    assert run(str(tmp_path / "nope.py"))[0] == 2
    code, _, err = run(str(BOOK), "--items", "Affine,Softmaxx")
    assert code == 2 and "unknown item(s) Softmaxx" in err
    assert cli.main(["check", str(BOOK), "--chapter", "9"]) == 2  # the rule grade's --chapter follows
    assert cli.main(["check", str(BOOK), "-j", "0"]) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", str(BOOK), "--items", "Affine", "--chapter", "5"])
    assert exc.value.code == 2
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    (tmp_path / "no_python").mkdir()
    for path, says in ((blob, "is not a .py file, a .ipynb notebook or a folder"),
                       (tmp_path / "no_python", "holds no .py file or .ipynb notebook")):
        code, _, err = run(str(path))
        assert code == 2 and says in err and "gradprop-" not in err  # no path of the sandbox's


def test_a_file_that_defines_no_item_fails_and_says_so(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("")
    code, out, _ = run(str(empty))
    assert code == 1 and "defines none of the items" in out


def test_strict_warnings_fail_only_with_strict():
    # the book's Relu writes into dout and returns it: a warning by default
    code, out, _ = run(str(BOOK), "--items", "Relu")
    assert code == 0 and re.search(r"^⚠ Relu +\[mutates-dout\]", out, re.M), out
    code, out, _ = run(str(BOOK), "--items", "Relu", "--strict")
    assert code == 1 and out.startswith("✗ Relu")


def test_import_error_exits_1(tmp_path):
    bad = tmp_path / "broken_syntax.py"
    bad.write_text("class Affine(:\n    pass\n")
    code, out, _ = run(str(bad))
    assert code == 1 and "could not be imported" in out and "SyntaxError" in out


def test_a_sandbox_that_cannot_start_is_reported_once(monkeypatch):
    from gradprop import sandbox

    def refuse(*args, **kwargs):
        raise RuntimeError("no box today")

    monkeypatch.setattr(sandbox, "SandboxSession", refuse)
    code, out, _ = run(str(BOOK))
    assert code == 1 and out.count("no box today") == 1 and "not a fault of your code" in out
    assert json.loads(run(str(BOOK), "--json")[1])["error"] == "no box today"


def test_a_notebook_is_checked_and_how_it_was_read_is_said():
    code, out, _ = run(str(ROOT / "examples" / "notes.ipynb"), "--items", "MulLayer,Affine")
    assert code == 1 and out.startswith("✓ MulLayer\n✗ Affine")
    assert "How your file was read:" in out and "notes.ipynb cell" in out
    assert "run this in a new cell at the end of notes.ipynb" in out  # the reproduction, notebook-style


def test_lang_reaches_the_findings():
    code, out, _ = run(str(ONE_BUG), "--lang", "ko")
    assert code == 1 and "db 값이 틀렸습니다" in out and out.startswith("✗ Affine")


def test_json_shape():
    code, out, err = run(str(ONE_BUG), "--json", "--items", "Affine,MulLayer")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 1 and doc["ok"] is False
    assert set(doc) == {"schema", "path", "ok", "exit_code", "strict", "chapter", "examples", "import_error", "error",
                        "read", "items"}
    assert doc["schema"] == check.SCHEMA and doc["path"] == str(ONE_BUG) and doc["import_error"] is None
    mul, affine = doc["items"]
    assert set(affine) == {"name", "status", "asked", "tags", "findings", "not_run", "scaffold"}
    assert (affine["name"], affine["status"], affine["asked"], affine["tags"]) == \
        ("Affine", "failed", True, ["wrong-gradient"])
    assert [f["property"] for f in affine["findings"]] == ["backward", "numerical"]
    assert set(affine["findings"][0]) == {"property", "about", "tag", "tier", "chapter", "counted", "message"}
    assert [(f["chapter"], f["counted"]) for f in affine["findings"]] == [(None, True), (None, True)]
    assert "Reproduce" in affine["findings"][0]["message"] and affine["not_run"] > 0
    assert (mul["status"], mul["findings"], mul["not_run"]) == ("not-defined", [], 0)
    assert "\x1b" not in out + err  # piped: no progress line, no colour


def test_piped_output_has_no_ansi_escapes_and_a_terminal_gets_colour(monkeypatch):
    code, out, err = run(str(ONE_BUG))
    assert not ANSI.search(out + err)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert check.use_color(Terminal()) and not check.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not check.use_color(Terminal())
    result = check.CheckResult("x.py", False, (check.ItemCheck("Affine", "passed", False),))
    assert ANSI.search(check.render(result, color=True)) and not ANSI.search(check.render(result))


def test_a_subprocess_run_pipes_plain_text(tmp_path):
    """The real command, from a folder outside the repository, its output piped."""
    shutil.copy(ONE_BUG, tmp_path / "my_layers.py")
    done = subprocess.run([sys.executable, "-m", "gradprop.cli", "check", "my_layers.py", "--items", "Affine"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("✗ Affine") and not ANSI.search(done.stdout + done.stderr)
    assert "from my_layers import Affine" in done.stdout


# --- the lean budget catches what grade catches ----------------------------------------------------


def fixtures(kind: str) -> list:
    return [pytest.param(p, id=p.stem) for p in sorted((FIXTURES / kind).glob("*.py"))]


def unshrunk(examples: int = check.EXAMPLES, of=check.settings) -> settings:
    """check's own settings without the shrink phase. Whether a fixture is caught does not depend
    on how small its failing example then gets (as in test_fixtures.py), and shrinking was three
    quarters of these tests' time; other tests here see check's shrunk reproductions."""
    return settings(of(examples), phases=[Phase.explicit, Phase.reuse, Phase.generate])


def verdict(path: Path, strict: bool = False, chapter: int | None = None) -> check.ItemCheck:
    """check's logic on a fixture (in this process: the fixtures are ours, not untrusted)."""
    item, _ = HEADER.match(path.read_text(encoding="utf-8").splitlines()[0]).groups()
    with mock.patch.object(check, "settings", unshrunk):
        return check.check_item(InProcessSession(path=str(path)), REGISTRY[item], path.stem,
                                check.Options(asked=True, strict=strict, chapter=chapter))


@pytest.mark.parametrize("path", fixtures("broken"))
def test_check_catches_every_broken_fixture(path: Path):
    """Caught as grade catches it: a failure, or (a bug only an extension shows, such as rank > 2
    input for Affine) a warning naming the extension that fails once --chapter reaches it."""
    _, expect = HEADER.match(path.read_text(encoding="utf-8").splitlines()[0]).groups()
    strict = TAGS[expect][0] == STRICT
    result = verdict(path, strict)
    if result.status == "warning":
        assert any(o.chapter for o in result.findings), [(o.prop, o.tag) for o in result.findings]
        result = verdict(path, strict, chapter=7)
    assert result.status == "failed", f"{path.name}: not caught ({result.status})"


@pytest.mark.parametrize("path", fixtures("correct"))
def test_check_passes_every_correct_fixture(path: Path):
    result = verdict(path)
    assert result.status in ("passed", "warning"), "\n\n".join(o.message for o in result.findings)


# --- the pytest plugin, outside the repository -----------------------------------------------------


def pytest_outside(folder: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS"))}
    env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *argv],
                          cwd=folder, capture_output=True, text=True, timeout=600, env=env)


def test_submission_option_from_a_folder_outside_the_repository(tmp_path):
    hw = tmp_path / "hw"
    hw.mkdir()
    shutil.copy(GOOD_MUL, hw / "my_layers.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for folder, argv in ((elsewhere, ["--submission", str(hw / "my_layers.py")]),
                         (hw, ["--submission=my_layers.py"])):
        done = pytest_outside(folder, *argv, "-k", "MulLayer or Sigmoid or Pooling", "-rfs")
        text = done.stdout + done.stderr
        assert done.returncode == 1, text  # Sigmoid's backward is wrong
        assert "unrecognized arguments" not in text
        assert re.search(r"FAILED (\.\./)?gradprop/properties/tests.py::test_backward\[Sigmoid\]", text), text
        assert re.search(r"\b1[0-9] passed\b", text) and "test_forward[MulLayer]" not in text.split("short test")[0]
        assert "[not-found] Pooling is not defined by the layer set" in text  # skipped with the reason
        assert "meta" not in text and "test_fixtures" not in text
