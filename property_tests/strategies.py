"""Hypothesis strategies for the theorem property tests.

Shapes and inverse temperatures come from small fixed buckets (``SHAPES``, ``TEMPERATURES``) so
that JIT compiles a bounded number of functions; the temperature is the architecture's own
(``Architecture.replace(temperature=T)``), as a user's model would have it, so a bug in how the
model applies it (to some keys only, say) is seen. Everything else (seed of the random weights,
content and prefix, key mask) is runtime data and never recompiles. Architectures and methods
are drawn from the registries, so a newly registered architecture is property-tested with no
edit here.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import theory
from theory.architecture import ARCHITECTURES
from theory.compare import compare
from theory.methods import METHODS
from theory.trials import TrialShape, draw_trial
from theory.verify import FAST_COMPILE

SHAPES = (TrialShape(n=4, n_p=1), TrialShape(n=8, n_p=3))
TEMPERATURES = (0.25, 1.0, 4.0)
CONTEXT_METHODS = tuple(sorted(m for m in METHODS if not METHODS[m].changes_weights))
WEIGHT_METHODS = tuple(sorted(m for m in METHODS if METHODS[m].changes_weights))


def architectures(negative_control: bool = False):
    """Registered attention architectures (by name; the §3 comparison reads attention weights),
    normal ones or the negative controls."""
    names = sorted(
        n
        for n, a in ARCHITECTURES.items()
        if a.negative_control == negative_control and "attention" in a.features
    )
    return st.sampled_from(names)


@cache
def comparison_fn(arch_name: str, method_name: str, shape: TrialShape, T: float):
    """Compiled ``(key, content_mask [n]) -> Comparison`` for one bucket, on the architecture
    with inverse temperature ``T``."""
    arch = ARCHITECTURES[arch_name].replace(temperature=T)
    method = METHODS[method_name]

    def run(key, content_mask):
        trial = draw_trial(arch, method, key, shape)
        n_p = trial.key_mask.shape[0] - shape.n
        key_mask = jnp.concatenate([jnp.ones(n_p, bool), content_mask])
        return compare(arch, trial._replace(key_mask=key_mask))

    key0 = jax.random.PRNGKey(0)
    return jax.jit(run).lower(key0, jnp.ones(shape.n, bool)).compile(compiler_options=FAST_COMPILE)


@st.composite
def content_masks(draw, n: int):
    """A key-padding mask over n content keys; the
    first key stays visible so every query sees one."""
    rest = draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1))
    return np.array([True] + rest)


@st.composite
def trial_inputs(draw, arch_names=None, method_names=CONTEXT_METHODS):
    """(arch name, method name, shape, seed, content mask, T)."""
    arch = draw(arch_names if arch_names is not None else architectures())
    method = draw(
        st.sampled_from([m for m in method_names if METHODS[m].applies(ARCHITECTURES[arch])])
    )
    shape = draw(st.sampled_from(SHAPES))
    seed = draw(st.integers(0, 2**31 - 1))
    mask = draw(content_masks(shape.n))
    T = draw(st.sampled_from(TEMPERATURES))
    return arch, method, shape, seed, mask, T


def run_comparison(arch, method, shape, seed, mask, T):
    fn = comparison_fn(arch, method, shape, T)
    return jax.device_get(fn(jax.random.PRNGKey(seed), jnp.asarray(mask)))


__all__ = [
    "SHAPES",
    "TEMPERATURES",
    "CONTEXT_METHODS",
    "WEIGHT_METHODS",
    "architectures",
    "trial_inputs",
    "run_comparison",
    "theory",
]
