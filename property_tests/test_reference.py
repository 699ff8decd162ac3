"""The toolkit's first layer against an independent numpy reference (property_tests/reference.py).

The §3 checks compare the model with itself: a bug that acts on the prefixed and the unprefixed
run alike (a mask, an offset) cancels, and a bug that only changes the prefix looks like "a
different prefix". This test is the independent oracle: random architectures from the registry
(softmax attention), each with its own inverse temperature, every context method (and none, and
the weight updates), random key-padding masks and content offsets; the attention weights, head
outputs and attention output of layer 0 must equal the reference's in float64.
"""

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import example, given, note
from hypothesis import strategies as st

from property_tests import reference
from theory.hooks import act_name
from theory.model import forward
from theory.registry import ARCHITECTURES, METHODS
from theory.tolerances import TOL_F64, VIOLATION
from theory.trials import TrialShape, draw_trial

TEMPERATURES = (0.5, 1.0, 2.0)
SHAPES = (TrialShape(n=3, n_p=1), TrialShape(n=5, n_p=2))
CONTEXT_KINDS = ("hard_prompt", "soft_prompt", "prefix", "kv_prefix")


def reference_architectures():
    return sorted(
        name
        for name, arch in ARCHITECTURES.items()
        if arch.attention == "softmax" and arch.block in ("standard", "sandwich")
    )


@cache
def layer0_fn(arch, n: int, n_p: int, offset: int):
    """Jitted ``(params, tokens, context, key_mask) -> (pattern, z, attn_out)`` of layer 0."""

    def run(params, tokens, context, key_mask):
        _, cache = forward(
            params,
            arch,
            tokens,
            context,
            position_offset=offset,
            attention_mask=key_mask,
            validate=False,
        )
        return tuple(cache[act_name(name, 0)] for name in ("pattern", "z", "attn_out"))

    return jax.jit(run)


def reference_pairs(architectures):
    """(architecture, method) pairs the reference covers: the method runs on the architecture
    and is either a context it implements or a weight update (the reference reads the weights)."""
    return [
        (name, method)
        for name in architectures
        for method, m in sorted(METHODS.items())
        if m.applies(ARCHITECTURES[name]) and (method in CONTEXT_KINDS or m.changes_weights)
    ]


@st.composite
def cases(draw, architectures=None):
    arch, method = draw(
        st.sampled_from(reference_pairs(architectures or reference_architectures()))
    )
    shape = draw(st.sampled_from(SHAPES))
    T = draw(st.sampled_from(TEMPERATURES))
    seed = draw(st.integers(0, 2**32 - 1))
    shifted = draw(st.booleans())
    mask = draw(st.lists(st.booleans(), min_size=shape.n - 1, max_size=shape.n - 1))
    return arch, method, shape, T, seed, shifted, [True, *mask]


def compare_with_reference(arch_name, method, shape, T, seed, shifted, content_mask):
    """Largest |toolkit - reference| over the pattern, z and attn_out of layer 0."""
    arch = ARCHITECTURES[arch_name].replace(temperature=T)
    trial = draw_trial(arch, METHODS[method], jax.random.PRNGKey(seed), shape)
    context = trial.context
    n_p = 0 if context is None else trial.key_mask.shape[0] - shape.n
    key_mask = np.array([True] * n_p + content_mask)
    offset = 0 if shifted else n_p
    got = layer0_fn(arch, shape.n, n_p, offset)(
        trial.adapted, trial.tokens, context, jnp.asarray(key_mask)
    )
    want = reference.layer0_attention(
        arch,
        jax.device_get(trial.adapted),
        np.asarray(trial.tokens),
        None if context is None else method,
        None if context is None else jax.device_get(context),
        key_mask,
        offset,
    )
    return max(float(np.max(np.abs(np.asarray(g) - w))) for g, w in zip(got, want, strict=True))


def every_architecture(test):
    """``test`` with one explicit example per reference architecture (a prefix, the longer
    shape, a non-unit temperature, all keys visible), so that features only one architecture
    has (a sliding window, ALiBi slopes) are checked on every run, whatever Hypothesis draws."""
    long = SHAPES[-1]
    for arch in reference_architectures():
        test = example((arch, "prefix", long, 2.0, 0, False, [True] * long.n))(test)
    return test


@every_architecture
@given(cases())
def test_layer0_matches_the_independent_reference(case):
    note(f"case: {case}")
    assert compare_with_reference(*case) <= TOL_F64


@given(cases(architectures=["broken-denominator"]))
def test_negative_control_a_wrong_softmax_differs_from_the_reference(case):
    """The broken architecture's kind leaves the prefix out of the denominator; the reference
    always computes the softmax: with a context the two differ."""
    arch, method, shape, T, seed, shifted, mask = case
    if METHODS[method].changes_weights:
        method = "prefix"
    note(f"case: {(arch, method, shape, T, seed, shifted, mask)}")
    assert compare_with_reference(arch, method, shape, T, seed, shifted, mask) > VIOLATION
