"""The Gradescope autograder bundle, and what runs inside it.

Gradescope unpacks the uploaded zip into ``/autograder/source``, runs ``setup.sh`` once to build
the image, and for each submission copies the student's files into ``/autograder/submission``,
runs ``/autograder/run_autograder`` and reads ``/autograder/results/results.json``.

The zip holds a wheel of this gradprop (built from this checkout, or made again from the files of
a plain install: no index needs to have gradprop), ``constraints.txt`` pinning the versions that decide grades (Hypothesis generates
the examples, numpy and JAX compute them) to the ones of the machine that built the bundle, the
rubric if any, ``setup.sh`` and ``run_autograder``. ``GRADPROP_AUTOGRADER_ROOT`` replaces
``/autograder`` and ``GRADPROP_PYTHON`` the interpreter (for testing the bundle off Gradescope).
"""
from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from . import __version__, processes
from .grading import GradeOptions, grade_submission, grader_failure, results_json

#: distributions whose versions change generated examples or computed values
PINNED = ("hypothesis", "numpy", "jax", "jaxlib")
#: the folder of the bundle that holds the course's files passed with --support
SUPPORT = "support"
#: what a wheel of gradprop is built from (pyproject.toml's package-dir)
SOURCES = ("pyproject.toml", "gradprop", "layers", "reference", "properties")

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, in /autograder/source, to build the autograder image.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
    apt-get update
    apt-get install -y python3 python3-pip
fi
export PIP_BREAK_SYSTEM_PACKAGES=1  # a system Python that pip would otherwise refuse to touch
WHEEL=$(ls gradprop-*.whl)
# The pinned versions give the same examples and values as on the instructor's machine; where
# this Python cannot have them, install what it can (grades may then differ in rare cases).
if ! python3 -m pip install --no-cache-dir -c constraints.txt "$WHEEL"; then
    echo "gradprop: the pinned versions do not install here; installing unpinned" >&2
    python3 -m pip install --no-cache-dir "$WHEEL"
fi
# -P: nothing of the working folder is imported in place of gradprop or its dependencies
python3 -P -c "import gradprop.grading, jax; print('gradprop', gradprop.__version__, 'jax', jax.__version__)"
python3 -P -m gradprop.properties.warm {warm_flags} # examples, reference answers, compiled programs: no grading run computes them
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission: grade /autograder/submission, write
# /autograder/results/results.json (gradprop writes one even when it fails itself).
ROOT="${{GRADPROP_AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{GRADPROP_PYTHON:-python3}}"
mkdir -p "$ROOT/results"
exec "$PYTHON" -P -m gradprop.cli gradescope-run --root "$ROOT" {flags} "$@"
"""


class BundleError(RuntimeError):
    """The bundle cannot be built (no source checkout, no wheel)."""


def source_root() -> Path:
    """The checkout this gradprop runs from (an editable install), or BundleError."""
    root = Path(__file__).resolve().parent.parent
    if not all((root / name).exists() for name in SOURCES):
        raise BundleError(f"gradprop is not running from a source checkout ({root} lacks one of "
                          f"{', '.join(SOURCES)}): install it with `pip install -e .`, or pass --wheel FILE")
    return root


def _has_bdist_wheel() -> bool:
    try:
        import setuptools.command.bdist_wheel  # noqa: F401 - setuptools >= 70.1
        return True
    except ImportError:
        try:
            import wheel  # noqa: F401
            return True
        except ImportError:
            return False


def wheel_of_install(dest: str | os.PathLike) -> Path:
    """A wheel of the gradprop installed here (``pip install .`` or from a wheel): its installed
    files and metadata, zipped again with a RECORD of their hashes, as pip would have built it.
    An editable install has no files of its own to take (see ``source_root``)."""
    dist = metadata.distribution("gradprop")
    site = Path(str(dist.locate_file("")))
    info = f"gradprop-{dist.version}.dist-info"
    skip = {f"{info}/{n}" for n in ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")}
    files = sorted(str(f) for f in (dist.files or []) if str(f).startswith(("gradprop/", f"{info}/"))
                   and str(f) not in skip and "__pycache__" not in str(f) and not str(f).endswith(".pyc"))
    if not any(f.startswith("gradprop/") for f in files):
        raise BundleError("this gradprop is not installed with files of its own (an editable install outside its "
                          "checkout?): pass --wheel FILE")
    out = Path(dest) / f"gradprop-{dist.version}-py3-none-any.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as whl:
        for name in files:
            data = (site / name).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
            whl.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
        record.append(f"{info}/RECORD,,")
        whl.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return out


def build_wheel(dest: str | os.PathLike) -> Path:
    """A wheel of this gradprop: ``pip wheel --no-deps`` of the checkout it runs from (an editable
    install), from a clean copy (no build/ left in the checkout); else the installed files
    (``wheel_of_install``)."""
    try:
        root = source_root()
    except BundleError:
        return wheel_of_install(dest)
    with tempfile.TemporaryDirectory(prefix="gradprop-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in SOURCES:
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=ignore)
            else:
                shutil.copy2(root / name, src / name)
        readme = root / "README.md"
        (src / "README.md").write_text(readme.read_text(encoding="utf-8") if readme.exists() else "gradprop\n",
                                       encoding="utf-8")
        out = Path(tmp) / "out"
        base = processes.python("-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src), flags=("-P",))
        # Offline when the installed setuptools can build wheels; else pip fetches a build backend.
        at = base.index("wheel") + 1
        commands = ([base[:at] + ["--no-build-isolation"] + base[at:]] if _has_bdist_wheel() else []) + [base]
        errors = []
        for command in commands:
            run = processes.run(command, capture_output=True, text=True, cwd=tmp)
            wheels = sorted(out.glob("gradprop-*.whl"))
            if run.returncode == 0 and wheels:
                Path(dest).mkdir(parents=True, exist_ok=True)
                return Path(shutil.copy2(wheels[0], Path(dest) / wheels[0].name))
            errors.append(f"$ {shlex.join(command)}\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    raise BundleError("could not build a wheel of gradprop:\n" + "\n".join(errors))


def constraints() -> str:
    lines = []
    for dist in PINNED:
        try:
            lines.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return "\n".join(lines) + "\n"


def _flags(rubric: str | None, strict: bool, time_limit: float, memory_mb: int, max_examples: int | None,
           lang: str | None = None, chapter: int | None = None, isolation: str = "auto",
           support: tuple[str, ...] = ()) -> str:
    flags = ["--time-limit", f"{time_limit:g}", "--memory-mb", str(memory_mb), "--isolation", isolation]
    if chapter is not None:
        flags += ["--chapter", str(chapter)]
    if lang:
        flags += ["--lang", lang]  # the course's language, not whatever locale Gradescope's machine has
    if strict:
        flags.append("--strict")
    if max_examples is not None:
        flags += ["--max-examples", str(max_examples)]
    text = shlex.join(flags)
    if rubric:
        text += ' --rubric "$ROOT/source/rubric.toml"'
    for name in support:
        text += f' --support "$ROOT/source/{SUPPORT}/{name}"'
    return text


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes for the same inputs
    info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def write_bundle(out: str | os.PathLike, *, rubric: str | None = None, strict: bool = False,
                 time_limit: float = 10.0, memory_mb: int = 2048, max_examples: int | None = None,
                 wheel: str | os.PathLike | None = None, lang: str | None = None,
                 chapter: int | None = None, isolation: str = "auto", support: tuple[str, ...] = (),
                 rubric_support: tuple[str, ...] = ()) -> Path:
    """Write the autograder zip at ``out``; return its path. The course's files go with it:
    ``support`` (``--support``) under ``support/NAME``, passed to the run as ``--support``, and the
    rubric's own where the rubric names them, relative to it (inside its folder)."""
    out = Path(out)
    if out.suffix != ".zip":
        raise BundleError(f"{out}: the bundle is a .zip file")
    with tempfile.TemporaryDirectory(prefix="gradprop-bundle-") as tmp:
        if wheel is None:
            wheel_path = build_wheel(tmp)
        else:
            wheel_path = Path(wheel)
            if not wheel_path.is_file() or not wheel_path.name.startswith("gradprop-") or wheel_path.suffix != ".whl":
                raise BundleError(f"{wheel}: not a gradprop wheel (gradprop-*.whl)")
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w") as zf:
            warm_flags = f"--max-examples {max_examples} " if max_examples is not None else ""
            _add(zf, "setup.sh", SETUP_SH.format(warm_flags=warm_flags).encode(), executable=True)
            names = tuple(os.path.basename(p) for p in support)
            run = RUN_AUTOGRADER.format(flags=_flags(rubric, strict, time_limit, memory_mb, max_examples, lang, chapter,
                                                     isolation, names))
            _add(zf, "run_autograder", run.encode(), executable=True)
            _add(zf, wheel_path.name, wheel_path.read_bytes())
            _add(zf, "constraints.txt", constraints().encode())
            if rubric:
                _add(zf, "rubric.toml", Path(rubric).read_bytes())
            for p in support:
                _add_files(zf, Path(p), f"{SUPPORT}/{os.path.basename(p)}")
            base = Path(rubric).resolve().parent if rubric else Path.cwd()
            for p in rubric_support:
                rel = os.path.relpath(p, base)
                if rel.startswith(".."):
                    raise BundleError(f"the rubric's support {p} lies outside the rubric's folder, where the bundle "
                                      f"cannot put it: move it inside, or pass it with --support")
                _add_files(zf, Path(p), Path(rel).as_posix())
    return out


def _add_files(zf: zipfile.ZipFile, src: Path, name: str) -> None:
    """The regular files of ``src`` (a file or a folder) under ``name`` in the zip."""
    from .staging import _Plan

    files = _Plan()
    if src.is_dir():
        files.tree(src, name, name, frozenset())
    else:
        files.file(src, name, name)
    for path, dest in files.copies:
        _add(zf, dest, path.read_bytes())


# --- inside the bundle -----------------------------------------------------------------------------


def submission_path(folder: Path) -> Path:
    """What to grade in Gradescope's submission folder: the folder in the book's layout, or the
    one .py file a student uploaded (so that the reproduction snippets import from it)."""
    from .loader import BOOK_FILES

    if any((folder / rel).is_file() for rel in BOOK_FILES):
        return folder
    files = sorted(f for f in folder.glob("*.py") if not f.name.startswith("test_"))
    return files[0] if len(files) == 1 else folder


def run_autograder(root: str | os.PathLike, options: GradeOptions) -> int:
    """Grade ROOT/submission into ROOT/results/results.json. Always writes the file: when
    gradprop itself fails, a result that says so (and the exit status is 1)."""
    root = Path(root)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    folder = root / "submission"
    try:  # an empty or missing folder is the student's import-error, not ours
        result = grade_submission(submission_path(folder), options, name="submission")
        status = 1 if result.errors else 0
    except Exception as exc:  # noqa: BLE001 - Gradescope must get a results.json whatever happens
        result = grader_failure("submission", str(folder), options.rubric, f"{type(exc).__name__}: {exc}",
                                options.lang)
        status = 1
    (results / "results.json").write_text(results_json(result), encoding="utf-8")
    for error in result.errors:
        print(f"gradprop: {error}", file=sys.stderr)
    print(f"gradprop {__version__}: {float(result.score):.2f} / {float(result.max_score):.2f}")
    return status


__all__ = ["BundleError", "build_wheel", "run_autograder", "write_bundle", "submission_path"]
