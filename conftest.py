"""pytest set-up: Hypothesis profiles, x64 JAX, and ``--submission PATH``."""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from gradprop.properties import profiles  # noqa: F401 - registers dev / ci / grading
from gradprop import reference  # noqa: F401 - jax_enable_x64 before any test traces

# derandomized on CI, quick and random on a laptop; --hypothesis-profile NAME overrides either
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradprop")
    group.addoption("--submission", metavar="PATH", default=None,
                    help="check this layer set (a .py file or a folder in the book's layout) instead of layers/")
    group.addoption("--gradprop-strict", action="store_true",
                    help="strict findings (mutates-dout, aliases-output, ignores-dout) fail instead of warn")
    group.addoption("--time-limit", type=float, default=10.0, metavar="SECONDS",
                    help="per-call time limit for a --submission")


@pytest.fixture(scope="session")
def suite(request: pytest.FixtureRequest):
    from gradprop.properties.suite import Suite, origin_of

    path = request.config.getoption("--submission")
    if path is None:
        yield Suite.own_layers()
        return
    from gradprop.sandbox import SandboxSession

    with SandboxSession(path, time_limit=request.config.getoption("--time-limit")) as session:
        yield Suite(session, origin_of(path), strict=request.config.getoption("--gradprop-strict"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --submission, run only the properties: the meta-tests are about gradprop, not you."""
    if config.getoption("--submission") is None:
        return
    keep = [item for item in items if "suite" in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep
