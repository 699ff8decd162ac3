"""Property test of the catalogue's closed form (THEORY.md §3, one prefix position) over random weights,
content, prefixes, key-padding masks, temperatures and the shape buckets of the §3 property tests.

Kept to one architecture and one method so that compilation stays bounded (<= 3 compiled buckets);
the verify rows and tests/test_catalogue.py cover the other architectures and methods.
"""

from functools import lru_cache

import jax
import jax.numpy as jnp
from hypothesis import given, note, strategies as st

from property_tests.strategies import SHAPES, content_masks, with_temperature
from theory.architecture import ARCHITECTURES
from theory.methods import METHODS
from theory.theorems import single_prefix
from theory.tolerances import TOL_F64
from theory.trials import Trial, draw_trial
from theory.verify import FAST_COMPILE

ARCHS = ("paper",)


@lru_cache(maxsize=None)
def closed_form_fn(arch_name, shape, broken=False):
    arch = ARCHITECTURES["broken-denominator" if broken else arch_name]

    def run(key, content_mask, T):
        trial = draw_trial(arch, METHODS["prefix"], key, shape)
        key_mask = jnp.concatenate([jnp.ones(shape.n_p, bool), content_mask])
        trial = Trial(
            with_temperature(trial.params, T),
            with_temperature(trial.adapted, T),
            trial.tokens,
            trial.context,
            key_mask,
        )
        return single_prefix.residuals(arch, trial)

    return (
        jax.jit(run)
        .lower(jax.random.PRNGKey(0), jnp.ones(shape.n, bool), 1.0)
        .compile(compiler_options=FAST_COMPILE)
    )


@st.composite
def inputs(draw):
    arch = draw(st.sampled_from(ARCHS))
    shape = draw(st.sampled_from(SHAPES))
    return (
        arch,
        shape,
        draw(st.integers(0, 2**31 - 1)),
        draw(content_masks(shape.n)),
        draw(st.sampled_from((0.25, 1.0, 4.0))),
    )


@given(inputs())
def test_single_prefix_closed_form_on_random_models(args):
    arch, shape, seed, mask, T = args
    note(f"replay: arch={arch} shape={shape} seed={seed} T={T} mask={mask.tolist()}")
    residual = jax.device_get(
        closed_form_fn(arch, shape)(jax.random.PRNGKey(seed), jnp.asarray(mask), T)
    )
    assert residual.max() <= TOL_F64, residual


@given(st.integers(0, 2**31 - 1), st.sampled_from((1.0, 4.0)))
def test_negative_control_broken_softmax_violates_the_closed_form(seed, T):
    shape = SHAPES[1]
    residual = jax.device_get(
        closed_form_fn("paper", shape, broken=True)(
            jax.random.PRNGKey(seed), jnp.ones(shape.n, bool), T
        )
    )
    assert residual.max() > 1e-6
