"""
Hypothesis settings for the fuzz tests (tests/test_fuzz_*.py).

Two profiles: C{ci}, the default, runs a short deterministic search
(C{derandomize}: the same examples on every run, so a CI failure is a real
regression, never a lucky draw) within the suite's time; C{long}, chosen with
C{HYPOTHESIS_PROFILE=long} (as C{scripts/fuzz} does), searches many more
random examples, for an operator or developer hunting new crashes.  Whatever
a long run finds becomes an explicit C{@example} or a plain test, so the
short run keeps checking it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.function_scoped_fixture]

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
                          deadline=None, suppress_health_check=_QUIET, print_blob=True)


def profile() -> settings:
    """The profile named by C{HYPOTHESIS_PROFILE} (C{ci} unless told), for C{@settings}."""
    return settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
