"""Test-suite entry point: what an entry point of the toolkit sets up, set up once.

* ``theory.configure_jax()``: float64 and the XLA CPU workaround, as the command line does
  (importing ``theory`` changes nothing by itself);
* plug-ins named in ``$PREFIX_THEORY_PLUGINS`` (so ``pytest property_tests`` checks a user's own
  variants, docs/extending.md).

jaxtyping's import hook (``--jaxtyping-packages`` in pyproject.toml) instruments ``theory``
before this file runs, so every annotated shape of the core is checked at test time.

* one JAX compilation cache on disk (``.jax_cache``, at most 1 GB) for every process of the run:
  the two xdist workers, notebook kernels and command-line subprocesses compile many of the same
  functions (the same checks on the same architectures), and each compiles them once. Entries
  are keyed by the whole program, JAX version and compiler flags, so a cached executable is the
  one a compilation would give. Tests that must compile for themselves (the scheduler deadlock
  check) remove it from their subprocess's environment.
"""

import os
from pathlib import Path

import jax

import theory

CACHE_ENV = {  # (variable, its value, its type as a JAX option)
    "JAX_COMPILATION_CACHE_DIR": (str(Path(__file__).resolve().parent / ".jax_cache"), str),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": ("0.2", float),  # below, reading costs as much
    "JAX_COMPILATION_CACHE_MAX_SIZE": (str(10**9), int),
}
for name, (value, kind) in CACHE_ENV.items():
    os.environ.setdefault(name, value)  # child processes read the environment
    jax.config.update(name.lower(), kind(os.environ[name]))  # jax is imported already

theory.configure_jax()
theory.load_env_plugins()
