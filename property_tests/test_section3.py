"""Property tests of docs/theory.md §3.1-3.2 on random
weights, shapes, prefixes, masks and temperatures (the architecture's own inverse temperature).

Positive properties: for every registered (non-control) architecture and every
context method, relative attention over the content is unchanged and the head
output is the convex combination (residual <= TOL_F64), in every layer given its
inputs.  Negative controls: a rank-1 update of W_Q / W_K, and an architecture
whose softmax leaves the prefix out of the denominator, must be reported as
violations (residual far above the tolerance).
"""

from hypothesis import assume, given, note

from property_tests.strategies import WEIGHT_METHODS, architectures, run_comparison, trial_inputs
from theory.architecture import ARCHITECTURES
from theory.methods import METHODS
from theory.registry import THEOREMS
from theory.tolerances import EFFECT_FLOOR, TOL_F64

# a violation must stand far above the float64 noise floor, not merely above the tolerance
VIOLATION = 1e-6


def _expected(theorem_id, arch, method):
    return THEOREMS[theorem_id].expectation(ARCHITECTURES[arch], METHODS[method])[0]


@given(trial_inputs())
def test_context_leaves_relative_attention_and_biases_output(inputs):
    """Both §3 identities come from one comparison, so one example checks both."""
    arch, method, shape, seed, mask, T = inputs
    expect_attention = _expected("relative_attention", arch, method)
    expect_output = _expected("convex_output", arch, method)
    assume("holds" in (expect_attention, expect_output))
    result = run_comparison(*inputs)
    note(
        f"replay: arch={arch} method={method} shape={shape} seed={seed} T={T} mask={mask.tolist()}"
    )
    # the context did something, so holding is not vacuous
    assert result.prefix_mass.max() > EFFECT_FLOOR and result.displacement.max() > EFFECT_FLOOR
    if expect_attention == "holds":
        assert result.attention_residual.max() <= TOL_F64, result.attention_residual
    if expect_output == "holds":
        assert result.output_residual.max() <= TOL_F64, result.output_residual


@given(trial_inputs(method_names=WEIGHT_METHODS))
def test_negative_control_rank1_update_changes_relative_attention(inputs):
    arch, method, shape, seed, mask, T = inputs
    assume(mask.sum() >= 2)  # with one visible key attention is trivially 1
    result = run_comparison(*inputs)
    note(
        f"replay: arch={arch} method={method} shape={shape} seed={seed} T={T} mask={mask.tolist()}"
    )
    assert result.attention_residual.max() > VIOLATION
    assert result.output_residual.max() > VIOLATION


@given(trial_inputs(arch_names=architectures(negative_control=True)))
def test_negative_control_broken_softmax_is_reported(inputs):
    arch, method, shape, seed, mask, T = inputs
    result = run_comparison(*inputs)
    note(
        f"replay: arch={arch} method={method} shape={shape} seed={seed} T={T} mask={mask.tolist()}"
    )
    assert result.attention_residual.max() > VIOLATION
    assert result.output_residual.max() > VIOLATION
