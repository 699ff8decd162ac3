"""Theorem checks beyond their declared controls: edge cases of the inputs and expectations that
depend on the architecture (the controls themselves are generated in tests/test_theorems.py)."""

import dataclasses

import jax

from theory.registry import ARCHITECTURES, METHODS, POSITIONAL_SCHEMES, THEOREMS
from theory.theorems import capacity, single_prefix
from theory.tolerances import TOL_F64
from theory.trials import draw_trial
from theory.verify import FAST_COMPILE, run_verify, trial_keys

PAPER, GPT, BERT = (ARCHITECTURES[n] for n in ("paper", "gpt", "bert"))


def residuals(fn, arch, method, trials=2, seed=0):
    """``fn(arch, trial)`` on ``trials`` random trials (jitted, vmapped)."""

    def one(key):
        return fn(arch, draw_trial(arch, METHODS[method], key))

    keys = trial_keys(seed, trials)
    compiled = jax.jit(jax.vmap(one)).lower(keys).compile(compiler_options=FAST_COMPILE)
    return jax.device_get(compiled(keys))


def test_single_prefix_handles_a_window_that_hides_the_prefix():
    windowed = GPT.replace(name="test-window", positional="rope", window=3)
    assert residuals(single_prefix.check, windowed, "prefix").max() <= TOL_F64


def test_expectations_follow_the_architecture():
    expectation = {
        tid: (lambda arch, method, tid=tid: THEOREMS[tid].expectation(arch, METHODS[method])[0])
        for tid in THEOREMS
    }
    assert expectation["bias_span"](BERT, "soft_prompt") == "fails"  # bidirectional prompt
    assert expectation["bias_span"](GPT, "soft_prompt") == "holds"
    full_rank = PAPER.replace(name="test-full-rank", d_head=4)  # 2 G d_head = 16 <= d_model
    assert expectation["kv_converse"](full_rank, "kv_prefix") == "holds"
    assert expectation["kv_converse"](PAPER, "kv_prefix") == "fails"  # witness: 2 G k > d
    assert expectation["position_shift"](GPT, "prefix") == "fails"  # learned positions
    assert expectation["hierarchy_strict"](PAPER, "prefix") == "holds"  # one layer
    qk = GPT.replace(name="test-qk-norm", positional="rope", qk_norm=True)
    assert expectation["deeper_first_order"](qk, "prefix") == "fails"


def test_verify_flags_a_scheme_that_wrongly_claims_to_be_relative(monkeypatch):
    """Expectations come from the registry, so a false declaration shows up as UNEXPECTED."""
    liar = dataclasses.replace(
        POSITIONAL_SCHEMES["learned"], name="learned-claims-relative", relative=True
    )
    monkeypatch.setitem(POSITIONAL_SCHEMES, liar.name, liar)
    arch = PAPER.replace(name="test-liar", positional=liar.name)
    monkeypatch.setitem(ARCHITECTURES, arch.name, arch)
    [result] = run_verify(["position_shift"], [arch.name], ["prefix"], trials=2)
    assert result.expected == "holds" and result.verdict == "fails" and not result.as_expected


def test_capacity_counts_hard_tokens_and_soft_prompts():
    trial = draw_trial(GPT, METHODS["soft_prompt"], jax.random.PRNGKey(0))
    hard, soft = capacity.counts(GPT, trial)
    assert hard <= GPT.d_vocab < soft  # pigeonhole bound, and soft prompts beat it
    hard_again, rows = capacity.counts(GPT, trial, soft_from_rows=True)
    assert rows <= GPT.d_vocab and hard_again == hard


def test_kv_converse_sees_qk_norm_even_with_full_row_rank():
    """QK-norm keys are normalised: a random free key is unreachable although [W_K; W_V] has full
    row rank (the linear system alone would say "holds")."""
    from theory.theorems import kv_converse

    arch = GPT.replace(
        name="test-qk-full-rank", positional="rope", qk_norm=True, n_heads=2, d_head=4
    )
    assert kv_converse.full_row_rank(arch)
    assert THEOREMS["kv_converse"].expectation(arch, METHODS["kv_prefix"])[0] == "fails"
    assert residuals(kv_converse.check, arch, "kv_prefix", trials=4).max() > 1e-6
