"""Every registered theorem, property-tested on random weights, shapes, masks and temperatures.

Drawn from the registries, so a newly registered theorem or architecture is tested here with no
edit: for each theorem, Hypothesis draws an architecture the theorem applies to, a method the
theorem runs with that can run there (``Theorem.applies``, ``Method.applies``), a
shape bucket (with or without a random key-padding mask), an inverse temperature (set on the
architecture itself, as a user's model would have it) and a seed; four random trials
(``fold_in(seed, t)``) are checked at once (vmapped). The expected verdict comes from the
theorem: "holds" means every trial's residual is at most the tolerance; "fails" (negative
controls, witnesses of refuted claims) means some trial's residual stands far above the noise
floor, which is how ``verify`` decides a row. A failure prints a ``replay(...)`` call.
"""

from functools import cache

import jax
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from theory.registry import ARCHITECTURES, METHODS, THEOREMS
from theory.tolerances import VIOLATION
from theory.trials import TrialShape, draw_trial
from theory.verify import FAST_COMPILE, trial_keys

SHAPES = (TrialShape(n=4, n_p=1), TrialShape(n=6, n_p=3, masked=True))
TEMPERATURES = (1.0, 2.5)
TRIALS = 4
EXAMPLES = max(settings.default.max_examples // 2, 1)


@cache
def residual_fn(theorem_id: str, arch_name: str, method: str, shape: TrialShape, T: float):
    """Compiled ``keys [TRIALS, 2] -> residuals [TRIALS]`` for one bucket."""
    theorem, method_ = THEOREMS[theorem_id], METHODS[method]
    arch = ARCHITECTURES[arch_name].replace(temperature=T)

    def one(key):
        return theorem.check(arch, draw_trial(arch, method_, key, shape))

    keys = trial_keys(0, TRIALS)
    return jax.jit(jax.vmap(one)).lower(keys).compile(compiler_options=FAST_COMPILE)


def applicable(theorem_id: str) -> list:
    """The (architecture, method) pairs the theorem is about and the method can run on."""
    theorem = THEOREMS[theorem_id]
    return [
        (a, m)
        for a in sorted(ARCHITECTURES)
        if theorem.applies(ARCHITECTURES[a])
        for m in sorted(theorem.method_names())
        if METHODS[m].applies(ARCHITECTURES[a])
    ]


@st.composite
def cases(draw, theorem_id: str):
    arch, method = draw(st.sampled_from(applicable(theorem_id)))
    shape = draw(st.sampled_from(SHAPES))
    T = draw(st.sampled_from(TEMPERATURES))
    seed = draw(st.integers(0, 2**32 - 1))
    return arch, method, shape, T, seed


@pytest.mark.parametrize("theorem_id", list(THEOREMS))
def test_theorem_on_random_models(theorem_id):
    theorem = THEOREMS[theorem_id]

    @settings(max_examples=EXAMPLES)
    @given(cases(theorem_id))
    def check(case):
        arch, method, shape, T, seed = case
        expected, reason = theorem.expectation(ARCHITECTURES[arch], METHODS[method])
        residuals = np.asarray(
            jax.device_get(
                residual_fn(theorem_id, arch, method, shape, T)(trial_keys(seed, TRIALS))
            )
        )
        worst = int(np.nanargmax(np.where(np.isfinite(residuals), residuals, np.inf)))
        note(
            f"expected {expected} ({reason}); residuals {residuals.tolist()}; replay: "
            f"theory.verify.replay({theorem_id!r}, {arch!r}, {method!r}, {seed}, {worst}, "
            f"TrialShape{tuple(shape)}, temperature={T})"
        )
        assert np.all(np.isfinite(residuals)), "a residual is NaN or inf"
        if expected == "holds":
            assert residuals.max() <= theorem.tolerance
        else:
            assert residuals.max() > VIOLATION

    check()
