"""pytest set-up of gradprop's own suite. The options (``--submission``), the ``suite`` fixture,
profiles and x64 JAX live in the installed plugin, ``gradprop/plugin.py``, so that they work from
any folder; here, the repository's runs use its profiles too."""
import os

import pytest

from gradprop.plugin import quiet_torn_cache_entries, use_profiles

# derandomized everywhere (CI's verdict, examples from the store); --hypothesis-profile dev explores
use_profiles()


def pytest_configure(config):
    quiet_torn_cache_entries(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the cores this process may use, each taking queued tests
    from the others when it runs out (``--dist worksteal``, unless a ``--dist`` is given). A share
    of the suite waits rather than computes (time limits running out, grace periods, subprocesses
    starting), and the extra worker fills it; stealing keeps a worker from finishing seconds
    after the rest. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still sets the count."""
    if config.option.dist == "no":
        config.option.dist = "worksteal"
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1
