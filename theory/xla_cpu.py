"""XLA CPU settings the toolkit needs, applied when ``theory`` is imported.

``--xla_cpu_enable_concurrency_optimized_scheduler=false``: with the default
scheduler, XLA CPU's runtime (jaxlib 0.10.2) deadlocks on some of the vmapped
check graphs: every thread idles and ``block_until_ready`` never returns.
Seen here on 2026-11-28: one compiled function holding the hard-prompt,
soft-prompt and prefix checks of the ``paper`` architecture (backend optimisation
off) hung in 4 of 7 runs without the flag (the deadlock is intermittent) and
finished in 0.15 s in every run with it; ``verify --architecture bert`` hung
3 of 3 times without it.  Whether a graph deadlocks
depends on its exact schedule, so the flag is set for every computation.  The
other schedule only changes the order in which independent operations run, not
what they compute.

The flag goes into ``XLA_FLAGS``, which XLA reads when JAX first creates its CPU
backend; a user's own setting of the same flag wins.  If something already used
JAX before ``theory`` was imported, the backend exists and the flag cannot take
effect: :func:`apply` warns instead of failing.  GPU and TPU backends ignore it.
"""

from __future__ import annotations

import os
import warnings

FLAGS = {"xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def apply() -> None:
    """Add :data:`FLAGS` to ``XLA_FLAGS`` unless the user set them (call before JAX computes)."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [f"--{name}={value}" for name, value in FLAGS.items() if f"--{name}" not in current]
    if not missing:
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        warnings.warn(
            f"JAX was used before 'theory' was imported, so XLA flags {missing} could not be set; "
            "some checks may hang on CPU. Import theory first or set XLA_FLAGS yourself.",
            stacklevel=3,
        )
        return
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
