"""Hypothesis profiles. ``ci``: derandomized, what ``pytest`` runs everywhere (``plugin.use_profiles``);
``dev``: random, new examples on every run, to explore (``--hypothesis-profile dev``); ``grading``:
derandomized, no example database, a fixed budget (the same grade on every machine).

Deadlines and the too-slow health check are off everywhere: a check's time depends on the
machine and, for submissions, on a child process; a grade must not.
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               report_multiple_bugs=False)

settings.register_profile("dev", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=20, derandomize=True, database=None, print_blob=False, **_COMMON)
settings.register_profile("grading", max_examples=25, derandomize=True, database=None, print_blob=False, **_COMMON)

PROFILES = ("dev", "ci", "grading")
