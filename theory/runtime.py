"""The JAX settings verification needs, applied by one explicit call: :func:`configure_jax`.

Importing ``theory`` changes nothing in the process. Entry points (the command line, the test
suite, a notebook, a user's script) call ``theory.configure_jax()`` once, before computing with
JAX, to get what the checks were calibrated for:

* **float64** (``jax_enable_x64``): the §3 identities are exact in real arithmetic and are
  checked in float64 against ``TOL_F64`` (:mod:`theory.tolerances`). Code that wants float32
  (training, float32 runs of real weights) passes ``dtype=jnp.float32`` explicitly and stays
  float32 with or without this setting.
* **an XLA CPU workaround**: ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` in
  ``XLA_FLAGS``. With the default scheduler, XLA CPU's runtime (jaxlib 0.10.2) deadlocks on
  some of the vmapped check graphs: every thread idles and ``block_until_ready`` never returns.
  One compiled function holding the hard-prompt, soft-prompt and prefix checks of the ``paper``
  architecture hung in 4 of 7 runs without the flag and in none with it; whether a graph
  deadlocks depends on its schedule, so the flag is set for every computation. The other
  scheduler only changes the order of independent operations, not what they compute. XLA reads
  the flag when JAX creates its CPU backend: if JAX has already computed, the flag cannot take
  effect and a warning says so. A user's own setting of the flag wins. GPU and TPU backends
  ignore it.
* **room in XLA's CPU thread pool** (``$PJRT_NPROC``): jaxlib's batched LAPACK kernels (SVD, QR,
  ...; jaxlib 0.10.2) split their batch over XLA's intra-op pool and block their own pool thread
  until the parts finish. The pool has one thread per core, so on a 2-core host two such calls
  at once leave no thread to run the parts and the process hangs with every thread idle
  (``verify --theorem bias_span --trials 16`` did). With :data:`POOL_THREADS_PER_DEVICE`
  threads per device the pool never runs out; the extra threads idle and results are the same.
  A user's own ``$PJRT_NPROC`` (or ``$NPROC``) wins. Training needs no LAPACK and pays for the
  extra threads (XLA splits every operation over the pool: on 2 cores a 4-layer d 128 training
  step took 158 ms with 32 threads and 113 ms with the default pool), so ``prefix-theory
  experiment`` calls ``configure_jax(lapack_pool=False)`` and keeps XLA's default pool.
"""

from __future__ import annotations

import os
import warnings

import jax

XLA_CPU_FLAGS = {"xla_cpu_enable_concurrency_optimized_scheduler": "false"}
POOL_ENV = ("PJRT_NPROC", "NPROC")  # what XLA reads for its CPU thread pool size
POOL_THREADS_PER_DEVICE = 32
_pool_size_set = {"threads": None}  # the size this module chose (a user's own setting wins)


def _backends_initialized() -> bool:
    """Whether JAX has created its backends already (then XLA_FLAGS edits have no effect)."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # a JAX without this module: assume not yet initialised
        return False
    return bool(xla_bridge.backends_are_initialized())


def apply_xla_cpu_flags() -> None:
    """Add :data:`XLA_CPU_FLAGS` to ``XLA_FLAGS`` unless the user set them (before JAX computes)."""
    current = os.environ.get("XLA_FLAGS", "")
    missing = [
        f"--{name}={value}" for name, value in XLA_CPU_FLAGS.items() if f"--{name}" not in current
    ]
    if not missing:
        return
    if _backends_initialized():
        warnings.warn(
            f"JAX computed before theory.configure_jax(), so XLA flags {missing} could not be "
            "set; some checks may hang on CPU. Call theory.configure_jax() first or set "
            "XLA_FLAGS yourself.",
            stacklevel=3,
        )
        return
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def size_cpu_pool(devices: int = 1) -> bool:
    """Give XLA's CPU thread pool :data:`POOL_THREADS_PER_DEVICE` threads per CPU device (at least
    one per core) unless the user sized it or JAX has started; returns whether it did."""
    chosen = _pool_size_set["threads"]
    user_set = any(name in os.environ for name in POOL_ENV) and (
        chosen is None or os.environ.get("PJRT_NPROC") != str(chosen)
    )
    if user_set or _backends_initialized():
        return False
    threads = max(os.cpu_count() or 1, POOL_THREADS_PER_DEVICE * max(devices, 1))
    if chosen is not None and chosen >= threads:
        return False
    os.environ["PJRT_NPROC"] = str(threads)
    _pool_size_set["threads"] = threads
    return True


def configure_jax(float64: bool = True, lapack_pool: bool = True) -> None:
    """Set up JAX for verification: float64 (unless ``float64=False``), the XLA CPU flags and,
    unless ``lapack_pool=False``, room in the CPU thread pool for batched LAPACK (see the
    module doc)."""
    apply_xla_cpu_flags()
    if lapack_pool:
        size_cpu_pool()
    jax.config.update("jax_enable_x64", bool(float64))
