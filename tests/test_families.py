"""The families of docs/theory.md §5: applicability in the planner and the atlas, the new contexts'
validation, and the recurrence against a plain loop (the theorems themselves are tested from
the registry: tests/test_theorems.py, property_tests/test_theorems.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from render.atlas import grid
from theory import ToolkitError, act_name, forward, init_params
from theory.architecture import meets
from theory.context import InitialState, KVPrefix, LatentPrefix
from theory.registry import ARCHITECTURES, THEOREMS
from theory.theorem import register_theorem
from theory.verify import Result, plan

FAMILIES = ("s4d", "mamba", "hawk", "retnet", "diff", "deepseek", "attn-sink")


def test_planner_runs_only_what_applies_and_keeps_the_families_out_of_the_default_run():
    default = {a for a, _, _ in plan()}
    assert default and not default & set(FAMILIES)
    named = plan(architectures=list(FAMILIES))
    for a, m, ids in named:
        arch = ARCHITECTURES[a]
        assert all(THEOREMS[t].applies(arch) for t in ids), (a, m, ids)
    by_arch = {a: {t for b, _, ids in named if b == a for t in ids} for a in FAMILIES}
    assert "relative_attention" not in by_arch["s4d"] and "recurrent_state" in by_arch["s4d"]
    assert "kv_converse" not in by_arch["deepseek"] and "latent_strict" in by_arch["deepseek"]
    assert "finetune_contrast" not in by_arch["diff"]  # signed weights: no log-ratio
    with pytest.raises(ToolkitError, match="recurrent_state needs recurrence"):
        plan(theorems=["recurrent_state"], architectures=["gpt"])


def test_requires_names_features_present_and_absent():
    diff, gpt = ARCHITECTURES["diff"], ARCHITECTURES["gpt"]
    assert meets(gpt, ("attention", "!differential")) and not meets(diff, ("!differential",))
    assert "recurrence" in ARCHITECTURES["s4d"].features
    assert "time_invariant" not in ARCHITECTURES["mamba"].features


@pytest.mark.usefixtures("without_runtime_typecheck")
def test_requires_must_be_a_tuple_of_names():
    bad = dataclasses.replace(THEOREMS["relative_attention"], id="x", requires="attention")
    with pytest.raises(ToolkitError, match="requires must be a tuple of feature names"):
        register_theorem(bad)


def test_atlas_shows_cells_that_do_not_apply_as_na():
    results = [
        Result("relative_attention", "gpt", "prefix", "holds", "holds", 0.0, 2, 1e-10, 0, 0, ""),
        Result("recurrent_state", "s4d", "prefix", "holds", "holds", 0.0, 2, 1e-10, 0, 0, ""),
    ]
    theorems, _, cells = grid(results)
    assert theorems == ["relative_attention", "recurrent_state"]  # registry order
    assert cells["relative_attention", "s4d"].status == "n/a"
    assert "requires attention" in cells["relative_attention", "s4d"].reason
    assert cells["recurrent_state", "gpt"].status == "n/a"


@pytest.mark.usefixtures("without_runtime_typecheck")
@pytest.mark.parametrize(
    "arch, context, message",
    [
        ("gpt", InitialState(jnp.zeros((2, 4))), "needs blocks with the feature 'recurrence'"),
        ("s4d", KVPrefix(jnp.zeros((2, 4, 1, 4)), jnp.zeros((2, 4, 1, 4))), "'attention'"),
        ("gpt", LatentPrefix(jnp.zeros((2, 1, 8)), jnp.zeros((2, 1, 2))), "'latent'"),
        ("s4d", InitialState(jnp.zeros((2, 16, 3))), r"expected shape \(2, 16, 4\)"),
        ("deepseek", LatentPrefix(jnp.zeros((2, 1, 7)), jnp.zeros((2, 1, 2))), "latents"),
    ],
)
def test_contexts_are_validated_against_the_architecture(arch, context, message):
    architecture = ARCHITECTURES[arch]
    params = init_params(architecture, jax.random.PRNGKey(0))
    with pytest.raises(ToolkitError, match=message):
        forward(params, architecture, jnp.arange(3), context)


def test_recurrence_equals_a_plain_loop_with_padding():
    """Oracle: the S4D layer's states from a Python loop over s_t = a s_{t-1} + B u_t, a padded
    position passing the state on, started from the initial state."""
    arch = ARCHITECTURES["s4d"]
    params = init_params(arch, jax.random.PRNGKey(1))
    state0 = jax.random.normal(jax.random.PRNGKey(2), (arch.n_layers, 16, arch.d_state))
    key_mask = jnp.array([True, False, True, True, False])
    _, cache = forward(params, arch, jnp.arange(5), InitialState(state0), attention_mask=key_mask)
    mixer = params["blocks"][0]["mixer"]
    x = np.asarray(cache[act_name("mixer_in", 0)])
    spread = np.linspace(-2.0, 2.0, arch.d_state)
    decay = 1 / (1 + np.exp(-(np.asarray(mixer["theta"]) + spread)))
    s = np.asarray(state0[0])
    for t in range(5):
        if key_mask[t]:
            s = decay * s + np.asarray(mixer["W_B"]) * (x[t] @ np.asarray(mixer["W_in"]))[:, None]
        np.testing.assert_allclose(cache[act_name("state", 0)][t], s, rtol=1e-12, atol=1e-12)


def test_sink_rows_leave_the_sink_its_share():
    arch = ARCHITECTURES["attn-sink"]
    params = init_params(arch, jax.random.PRNGKey(0))
    _, cache = forward(params, arch, jnp.arange(6))
    rows = np.asarray(cache[act_name("pattern", 0)]).sum(-1)
    assert np.all(rows < 1.0) and np.all(rows > 0.0)
