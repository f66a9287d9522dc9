"""The pytest plugin (entry point ``pytest11: gradprop``): ``pytest --submission PATH`` anywhere.

Installed with gradprop, so its options exist before pytest reads the command line: PATH, given
as ``--submission PATH`` or ``--submission=PATH``, absolute, relative or with ``~``, is always
the option's value, never a test path that moves pytest's rootdir away from the tests.

With ``--submission``, the properties (``gradprop.properties.tests``, installed) are collected in
place of the folder's own tests, unless test paths are named on the command line; anything that
does not check the submission (the repository's meta-tests) is deselected, and items the layer
set does not define are skipped with the reason. Without it the plugin only adds its options:
a project that merely has gradprop installed sees no other change.

Every xdist worker reaches the same decisions from the same command line, so all of them collect
the same tests in the same order.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import pytest

TESTS_MODULE = "gradprop.properties.tests"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradprop")
    group.addoption("--submission", metavar="PATH", default=None,
                    help="check this layer set (a .py file, a folder in the book's layout, or a notebook) "
                         "instead of gradprop's own layers")
    group.addoption("--gradprop-strict", action="store_true",
                    help="strict findings (mutates-dout, aliases-output, ignores-dout) fail instead of warn")
    group.addoption("--gradprop-time-limit", type=float, default=10.0, metavar="SECONDS",
                    help="per-call time limit for a --submission (default 10)")


def use_profiles() -> None:
    """gradprop's Hypothesis profiles (and float64 JAX, if something imported JAX already): ``ci``,
    derandomized, on every machine, so that a run here gives CI's verdict and the on-disk store
    serves its examples and the reference's answers. ``--hypothesis-profile dev`` (Hypothesis'
    plugin loads it later) draws new random examples on every run instead, to explore; each new
    shape then costs a JAX trace, and the suite takes half as long again."""
    from hypothesis import settings

    from gradprop import reference  # noqa: F401 - a JAX imported already gets float64 before it traces
    from gradprop.properties import profiles  # noqa: F401 - registers dev / ci / grading

    settings.load_profile("ci")


def quiet_torn_cache_entries(config: pytest.Config) -> None:
    """No warning for the compile-cache race of workers compiling one program at once
    (``reference._jax.TORN_ENTRY``): pytest sets each test's warning filters from its config."""
    from gradprop.reference._jax import TORN_ENTRY

    config.addinivalue_line("filterwarnings", f"ignore:{TORN_ENTRY}:UserWarning")


def _tests_file() -> Path:
    spec = importlib.util.find_spec(TESTS_MODULE)
    assert spec is not None and spec.origin is not None, f"{TESTS_MODULE} is not installed"
    return Path(spec.origin).resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("submission")
    if path is None:
        return
    # absolute once, here: workers and the sandbox's child may start in other folders
    config.option.submission = os.path.abspath(os.path.expanduser(path))
    from gradprop.grading import path_problem

    problem = path_problem(config.option.submission)
    if problem:  # one usage error, not one error per test
        raise pytest.UsageError(f"--submission: {problem}")
    use_profiles()
    quiet_torn_cache_entries(config)
    if config.args_source != pytest.Config.ArgsSource.ARGS:  # no test path named: the properties
        config.args[:] = [str(_tests_file())]


class _InstalledTests(pytest.Module):
    """The installed properties module, imported by its package name (not by its file path, which
    would put site-packages or the repository in front of sys.path)."""

    def _getobj(self):
        return importlib.import_module(TESTS_MODULE)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if parent.config.getoption("submission") is not None and module_path.resolve() == _tests_file():
        # one id wherever gradprop is installed, and whatever folder pytest took for its rootdir
        return _InstalledTests.from_parent(parent, path=module_path, nodeid=TESTS_MODULE.replace(".", "/") + ".py")
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --submission, run only the properties: the meta-tests are about gradprop, not you."""
    if config.getoption("submission") is None:
        return
    keep = [item for item in items if "suite" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.fixture(scope="session")
def suite(request: pytest.FixtureRequest):
    """The layer set under test: ``--submission PATH`` in the sandbox, else gradprop's own layers."""
    from gradprop.properties.assertions import origin_of
    from gradprop.properties.suite import Suite

    path = request.config.getoption("submission")
    if path is None:
        yield Suite.own_layers()
        return
    from gradprop.sandbox import SandboxSession

    with SandboxSession(path, time_limit=request.config.getoption("gradprop_time_limit")) as session:
        yield Suite(session, origin_of(path), strict=request.config.getoption("gradprop_strict"),
                    skip_missing=True)
