"""The theorem catalogue's numeric checks (issue 3): each holds where the theory says it does, and each
has a negative control that makes it report a violation (residual far above the tolerance).

Witness theorems (hierarchy_strict, deeper_attention_changes, position_shift on absolute positions,
kv_converse without full row rank, capacity) measure a REFUTED claim: there the witness is a large
residual, and the negative control is an input on which the witness disappears.
"""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import theory
from theory.architecture import ARCHITECTURES
from theory.context import HardPrompt, Prefix, SoftPrompt
from theory.methods import METHODS
from theory.model import forward
from theory.positional import POSITIONAL_SCHEMES
from theory.registry import THEOREMS
from theory.tolerances import TOL_F64
from theory.trials import draw_trial
from theory.theorems import (
    bias_span,
    capacity,
    deeper_attention,
    deeper_layers,
    finetune_contrast,
    hierarchy,
    hierarchy_strict,
    kv_converse,
    position_shift,
    pre_ln,
    single_prefix,
)
from theory.verify import FAST_COMPILE, run_verify, trial_keys

VIOLATION = 1e-6  # a violation stands far above the float64 noise floor, not merely above 1e-10
TRIALS = 2
CATALOGUE = (
    "single_prefix",
    "bias_span",
    "pre_ln",
    "kv_converse",
    "hierarchy",
    "hierarchy_strict",
    "deeper_first_order",
    "deeper_attention_changes",
    "position_shift",
    "finetune_contrast",
    "capacity",
)

PAPER, GPT, BERT, BROKEN = (
    ARCHITECTURES[n] for n in ("paper", "gpt", "bert", "broken-denominator")
)
ROPE = GPT.replace(name="test-rope", positional="rope")
ALIBI = PAPER.replace(name="test-alibi", positional="alibi", n_kv_heads=1)
FULL_RANK = PAPER.replace(name="test-full-rank", d_head=4)  # 2 G d_head = 16 <= d_model = 16


def residuals(fn, arch, method, trials=TRIALS, seed=0, transform=None):
    """``fn(arch, trial)`` on ``trials`` random trials (jitted, vmapped); ``transform`` edits each trial."""

    def one(key):
        trial = draw_trial(arch, METHODS[method], key)
        return fn(arch, transform(trial) if transform else trial)

    keys = trial_keys(seed, trials)
    return jax.device_get(
        jax.jit(jax.vmap(one)).lower(keys).compile(compiler_options=FAST_COMPILE)(keys)
    )


def test_catalogue_is_registered_with_sections_and_derivations():
    for tid in CATALOGUE:
        thm = THEOREMS[tid]
        assert thm.section in ("§1", "§2", "§3") and thm.assumptions and thm.statement
        assert thm.derivation().steps


# ----------------------------------------------------------------- identities that hold, and their controls


def test_single_prefix_closed_form_holds_and_broken_softmax_violates_it():
    assert residuals(single_prefix.check, GPT, "kv_prefix").max() <= TOL_F64
    assert residuals(single_prefix.check, BROKEN, "prefix").min() > VIOLATION


def test_single_prefix_handles_a_window_that_hides_the_prefix():
    windowed = ROPE.replace(name="test-window", window=3)
    assert residuals(single_prefix.check, windowed, "prefix").max() <= TOL_F64


def test_bias_span_rank_and_cone_with_its_controls():
    assert residuals(bias_span.check, PAPER, "prefix").max() <= TOL_F64
    assert (
        residuals(bias_span.check, PAPER, "finetune_rank1_WQ").min() > VIOLATION
    )  # no prefix: no bound
    # a bidirectional encoder's soft prompt has content-dependent deeper states: the span grows
    assert residuals(bias_span.check, BERT, "soft_prompt").max() > VIOLATION
    assert THEOREMS["bias_span"].expectation(BERT, METHODS["soft_prompt"])[0] == "fails"


def test_pre_ln_uses_the_normalised_state_and_the_raw_state_is_wrong():
    assert residuals(pre_ln.check, GPT, "prefix").max() <= TOL_F64
    assert (
        residuals(lambda a, t: pre_ln.residuals(a, t, normalise=False).max(), GPT, "prefix").min()
        > VIOLATION
    )


def test_kv_converse_full_rank_realises_every_kv_prefix_and_rank_deficiency_does_not():
    assert residuals(kv_converse.check, FULL_RANK, "kv_prefix").max() <= TOL_F64
    assert THEOREMS["kv_converse"].expectation(FULL_RANK, METHODS["kv_prefix"])[0] == "holds"

    def tie_values_to_keys(trial):  # negative control: W_V = W_K, so [W_K; W_V] loses rank
        blocks = [
            dict(b, attn=dict(b["attn"], W_V=b["attn"]["W_K"])) for b in trial.params["blocks"]
        ]
        return trial._replace(params=dict(trial.params, blocks=blocks))

    assert (
        residuals(kv_converse.check, FULL_RANK, "kv_prefix", transform=tie_values_to_keys).min()
        > VIOLATION
    )
    assert residuals(kv_converse.check, PAPER, "kv_prefix").min() > VIOLATION  # witness: 2 G k > d
    assert THEOREMS["kv_converse"].expectation(PAPER, METHODS["kv_prefix"])[0] == "fails"


@pytest.mark.parametrize("method", ["hard_prompt", "soft_prompt", "prefix"])
def test_hierarchy_builds_the_wider_method_exactly(method):
    arch = BERT if method == "soft_prompt" else PAPER  # bidirectional: per input, still exact
    assert residuals(hierarchy.check, arch, method).max() <= TOL_F64


def test_hierarchy_check_catches_a_wrong_construction(monkeypatch):
    original = hierarchy.wider

    def off_by_a_little(
        arch, params, context, cache
    ):  # negative control: a slightly wrong construction
        wide = original(arch, params, context, cache)
        return jax.tree_util.tree_map(lambda x: x + 1e-3, wide)

    monkeypatch.setattr(hierarchy, "wider", off_by_a_little)
    for method in ("hard_prompt", "prefix"):
        assert residuals(hierarchy.check, PAPER, method, seed=1).min() > VIOLATION


def test_deeper_first_order_formula_matches_central_differences_and_fails_with_qk_norm():
    assert residuals(deeper_layers.check, GPT, "prefix").max() <= TOL_F64
    qk = ROPE.replace(name="test-qk-norm", qk_norm=True)
    assert residuals(deeper_layers.check, qk, "prefix").min() > VIOLATION
    assert THEOREMS["deeper_first_order"].expectation(qk, METHODS["prefix"])[0] == "fails"


def test_finetune_contrast_exact_change_and_its_controls():
    assert residuals(finetune_contrast.check, ALIBI, "prefix").max() <= TOL_F64
    assert (
        residuals(finetune_contrast.check, BROKEN, "prefix").min() > VIOLATION
    )  # the prefix half fails
    qk = ROPE.replace(name="test-qk-norm", qk_norm=True)
    assert (
        residuals(finetune_contrast.check, qk, "prefix").min() > VIOLATION
    )  # the exact factor fails


# ----------------------------------------------------------------- witnesses, and inputs that remove them


def test_position_shift_follows_the_declared_scheme():
    for arch in (ROPE, ALIBI):
        assert POSITIONAL_SCHEMES[arch.positional].relative
        assert residuals(position_shift.check, arch, "prefix").max() <= TOL_F64
    assert residuals(position_shift.check, GPT, "prefix").min() > VIOLATION  # learned: witness
    assert THEOREMS["position_shift"].expectation(GPT, METHODS["prefix"])[0] == "fails"


def test_verify_flags_a_scheme_that_wrongly_claims_to_be_relative(monkeypatch):
    """Negative control through verify: expectations come from the registry, so a false declaration shows."""
    liar = dataclasses.replace(
        POSITIONAL_SCHEMES["learned"], name="learned-claims-relative", relative=True
    )
    monkeypatch.setitem(POSITIONAL_SCHEMES, liar.name, liar)
    arch = PAPER.replace(name="test-liar", positional=liar.name)
    monkeypatch.setitem(ARCHITECTURES, arch.name, arch)
    [result] = run_verify(["position_shift"], [arch.name], ["prefix"], trials=2)
    assert result.expected == "holds" and result.verdict == "fails" and not result.as_expected


def test_hierarchy_strict_witnesses_and_their_removal():
    assert residuals(hierarchy_strict.check, PAPER, "soft_prompt").min() > VIOLATION
    assert residuals(hierarchy_strict.check, GPT, "prefix").min() > VIOLATION

    def soft_is_a_row_of_W_E(trial):  # the "soft" prompt is the hard prompt of token 3
        return trial._replace(
            context=SoftPrompt(trial.params["embed"]["W_E"][jnp.array([3, 1, 2])])
        )

    assert (
        residuals(
            hierarchy_strict.check, PAPER, "soft_prompt", transform=soft_is_a_row_of_W_E
        ).max()
        <= TOL_F64
    )

    def prefix_of_a_soft_prompt(trial):  # a prefix whose states a soft prompt does produce
        _, cache = forward(
            trial.params, GPT, trial.tokens, SoftPrompt(trial.context.states[0]), validate=False
        )
        states = jnp.stack([cache[f"blocks.{l}.hook_resid_pre"][:3] for l in range(GPT.n_layers)])
        return trial._replace(context=Prefix(states))

    assert (
        residuals(hierarchy_strict.check, GPT, "prefix", transform=prefix_of_a_soft_prompt).max()
        <= TOL_F64
    )
    assert (
        THEOREMS["hierarchy_strict"].expectation(PAPER, METHODS["prefix"])[0] == "holds"
    )  # one layer


def test_deeper_attention_changes_unless_layer_0_writes_nothing():
    assert residuals(deeper_attention.check, GPT, "prefix").min() > VIOLATION

    def silence_layer_0(trial):  # W_O = 0 in layer 0: the prefix cannot move later inputs
        def zero(params):
            blocks = list(params["blocks"])
            blocks[0] = dict(
                blocks[0],
                attn=dict(blocks[0]["attn"], W_O=jnp.zeros_like(blocks[0]["attn"]["W_O"])),
            )
            return dict(params, blocks=blocks)

        return trial._replace(params=zero(trial.params), adapted=zero(trial.adapted))

    assert (
        residuals(deeper_attention.check, GPT, "prefix", transform=silence_layer_0).max() <= TOL_F64
    )


def test_capacity_witness_and_hard_rows_control():
    trial = draw_trial(GPT, METHODS["soft_prompt"], jax.random.PRNGKey(0))
    hard, soft = capacity.counts(GPT, trial)
    assert hard <= GPT.d_vocab < soft  # pigeonhole bound, and soft prompts beat it
    hard_again, rows = capacity.counts(GPT, trial, soft_from_rows=True)
    assert (
        rows <= GPT.d_vocab and hard_again == hard
    )  # "soft" prompts that are rows of W_E: no witness


def test_capacity_counts_on_the_constructions():
    pytest.importorskip("constructions")
    found = capacity.construction_counts(3, 2)
    assert found["unconditional_distinct"] == found["V^N"] == 9 and found["unconditional_exact"]
    assert found["conditional_distinct"] == found["V^V"] == 27 and found["conditional_exact"]
    assert found["hard_token_completions"] <= 3 and found["hard_token_maps"] <= 3
