"""CONTRIBUTING.md's walk-through, run: a contributor who adds a layer by it turns on exactly that
layer's tests, and they pass.

The walk-through's blocks are applied, as the document shows them, to a copy of the repository
(where each goes is the HTML comment above the block). The copy's suite is collected before and
after: the tests it gains are the new item's, and none is lost or renamed. Then the new tests run,
with the tests that once named or counted the items, which must stay green.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- walkthrough: (new|append|into) (\S+)(?: (\w+))? -->\n```python\n(.*?)```", re.S)
#: the tests that once hard-coded the items (issue 22), run in the copy beside the new item's own
REGISTRY_DERIVED = [
    "tests/test_chapters.py::test_items_and_extensions_by_chapter",
    "tests/test_chapters.py::test_rubric_chapter_and_extensions",
    "tests/test_loader.py::test_book_items_match_the_registry",
    "tests/test_check.py::test_chapter_selects_the_items_of_earlier_chapters",
    "tests/test_gate.py",
    "tests/test_fixtures.py::test_every_hint_has_a_fixture",
    "tests/test_frozen.py",  # after step 5, the shipped examples include the new item's
]


def steps() -> list[tuple[str, str, str | None, str]]:
    """(how, path, tuple name, code) of each block of the walk-through."""
    found = BLOCK.findall((ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    assert len(found) >= 5, "CONTRIBUTING.md's walk-through lost its marked blocks"
    return [(how, path, name or None, code) for how, path, name, code in found]


def apply(root: Path, how: str, path: str, name: str | None, code: str) -> None:
    target = root / path
    if how == "new":
        assert not target.exists(), f"the walk-through's new file {path} exists already"
        target.write_text(code, encoding="utf-8")
    elif how == "append":
        target.write_text(target.read_text(encoding="utf-8") + "\n\n" + code, encoding="utf-8")
    else:  # into the tuple NAME: before the ")" that closes it at the start of a line
        text = target.read_text(encoding="utf-8")
        start = re.search(rf"^{name}\b[^\n]*= \($", text, re.M)
        assert start, f"{path} has no tuple {name} for the walk-through to add to"
        end = text.index("\n)\n", start.end())
        target.write_text(text[:end + 1] + code + text[end + 1:], encoding="utf-8")


def copy_repository(dest: Path) -> None:
    """The repository's files as they are (committed or not), and gradprop's three top-level parts
    under the package, as the editable install maps them."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for rel in listed:
        if rel.startswith(("docs/", "benchmarks/results/")) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes((ROOT / rel).read_bytes())
    for part in ("layers", "reference", "properties"):
        (dest / "gradprop" / part).symlink_to(dest / part, target_is_directory=True)


def pytest_in(root: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "GRADPROP_STORE": str(tmp / "store"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)


def collected(root: Path, tmp: Path) -> set[str]:
    done = pytest_in(root, tmp, "--collect-only", "-q")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {line for line in done.stdout.splitlines() if "::" in line}


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the repository's git checkout")
def test_the_walk_through_adds_its_layer_and_turns_on_its_own_tests_only(tmp_path):
    root = tmp_path / "repo"
    copy_repository(root)
    before = collected(root, tmp_path)
    for step in steps():
        apply(root, *step)
    after = collected(root, tmp_path)
    assert before - after == set(), f"tests lost or renamed: {sorted(before - after)[:10]}"
    gained = after - before
    assert gained and all(re.search("tanh", t, re.I) for t in gained), sorted(gained)
    assert {"tests/test_properties.py::test_backward[Tanh]", "tests/test_gate.py::test_every_entry_is_complete[Tanh]",
            "tests/test_fixtures.py::test_broken_fixture_is_caught[tanh_backward_uses_x]"} <= gained
    drawn = subprocess.run([sys.executable, "-m", "gradprop.properties.frozen"], cwd=root, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(root)})  # step 5
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    done = pytest_in(root, tmp_path, "-q", *sorted(gained), *REGISTRY_DERIVED)
    assert done.returncode == 0, done.stdout[-4000:]
    assert re.search(r"^\d+ passed", done.stdout.splitlines()[-1]), done.stdout[-2000:]  # none skipped
