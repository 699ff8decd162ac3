"""Hypothesis profiles for the property tests.

* ``ci`` (default): few examples, derandomised (the same examples on every run,
  so CI is reproducible), no per-example deadline (JIT compilation of a new
  shape bucket takes ~1 s, which Hypothesis's default 200 ms deadline would
  report as a flaky failure).
* ``thorough``: many random examples, for long local runs:
  ``HYPOTHESIS_PROFILE=thorough pytest property_tests``.

A failing example prints the ``@reproduce_failure`` blob and the drawn seed, so
it can be replayed exactly.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
