"""Constructions (docs/theory.md §2): demos, certificates
vs exhaustive evaluation, exact mode, ceiling, errors.

Compilation dominates: each (architecture, temperature) compiles once, so the tests
share models through module-scoped fixtures and batch inputs with vmap.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli.main import main
from constructions import (
    ASCII,
    all_pairs,
    conditional_model,
    derivation,
    exact_two_token_table,
    greedy_generate,
    greedy_generate_batch,
    hard_token_ceiling,
    map_tokens,
    pair_token,
    scalar_certificate,
    two_token_model,
    unconditional_model,
    virtual_token,
    virtual_tokens,
    worst_sequence,
)
from constructions.checks import construction_trial, section3_residuals
from constructions.exact import ExactModel
from constructions.examples import animals_map, load_map, map_table, swapcase_map
from constructions.two_token import pair_token_exact
from theory.compare import compare
from theory.context import Prefix, SoftPrompt
from theory.errors import ToolkitError
from theory.model import forward
from theory.params import init_params
from theory.symbolic import Step
from theory.tolerances import TOL_F64

TEXT = "I love transformers!"


def _broadcast(ctx, n):
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), ctx)


@pytest.fixture(scope="module")
def demo():
    return unconditional_model(ASCII.size, len(TEXT))


# --------------------------------------------------------------------------- Theorem 1


def test_unconditional_demo_sentence(demo):
    ctx = virtual_token(demo, ASCII.encode(TEXT))
    jac = greedy_generate(demo, ctx)
    seq = greedy_generate(demo, ctx, method="sequential")
    assert ASCII.decode(np.asarray(jac.tokens)) == TEXT
    np.testing.assert_array_equal(jac.tokens, seq.tokens)
    assert int(jac.passes) == 2 and int(seq.passes) == len(TEXT)
    assert demo.certificate.certified and demo.certificate.exact
    assert float(jac.virtual_mass.min()) > 0.999


def test_jacobi_equals_sequential_on_random_weights(demo):
    """Negative control for the decoder itself: with
    random weights outputs depend on earlier outputs."""
    params = init_params(demo.arch, jax.random.PRNGKey(3))
    ctx = SoftPrompt(jax.random.normal(jax.random.PRNGKey(4), (1, demo.arch.d_model)))
    jac = greedy_generate(demo, ctx, params=params)
    seq = greedy_generate(demo, ctx, method="sequential", params=params)
    np.testing.assert_array_equal(jac.tokens, seq.tokens)


@pytest.mark.parametrize("above", [True, False])
def test_unconditional_certificate_is_exhaustively_exact(above):
    """V=3, N=4: every one of the 81 sequences; certificate
    'correct' <=> no error, either side of T_exact."""
    V, N = 3, 4
    T_exact = scalar_certificate("unconditional", V, N, 1.0, with_limits=False).T_exact
    assert math.isclose(T_exact, math.log((2 * V - 3) * N), rel_tol=1e-9)
    T = T_exact + 1e-3 if above else T_exact - 1e-3
    c = unconditional_model(V, N, T)
    seqs = np.array(np.meshgrid(*[np.arange(V)] * N, indexing="ij")).reshape(N, -1).T
    gen = greedy_generate_batch(c, virtual_tokens(c, seqs), np.full((len(seqs), 1), c.bos))
    errors = int((np.asarray(gen.tokens) != seqs).any(axis=1).sum())
    assert c.certificate.certified == above == (errors == 0)
    if not above:
        assert c.certificate.verdict == "not certified" and not c.certificate.exact


def test_unconditional_worst_case_and_samples_at_demo_scale(demo):
    """V=95, N=20: the worst sequence + 255 random ones;
    'correct' <=> no error, either side of T_exact."""
    T_exact = demo.certificate.T_exact
    seqs = np.random.default_rng(0).integers(0, ASCII.size, (256, len(TEXT)))
    seqs[0] = worst_sequence(ASCII.size, len(TEXT))
    for factor, ok in ((1 - 1e-4, False), (1 + 1e-4, True)):
        c = unconditional_model(ASCII.size, len(TEXT), T_exact * factor)
        gen = greedy_generate_batch(c, virtual_tokens(c, seqs), np.full((len(seqs), 1), c.bos))
        wrong = (np.asarray(gen.tokens) != seqs).any(axis=1)
        assert c.certificate.certified == ok == (not wrong.any())
        if not ok:
            assert wrong[0]  # the worst sequence is the one that fails


def test_section3_identities_hold_on_the_construction(demo):
    """The §3 theorems apply to the construction:
    compare() with its virtual token as a SoftPrompt."""
    c = unconditional_model(ASCII.size, len(TEXT), T=2.0)  # low T: content keeps visible attention
    ctx = virtual_token(c, ASCII.encode(TEXT))
    tokens = jnp.asarray([c.bos] + ASCII.encode(TEXT)[:-1])
    trial = construction_trial(c, ctx, tokens)
    res = jax.jit(compare, static_argnums=0)(c.arch, trial)
    assert (
        max(section3_residuals(c, ctx, tokens).values()) <= TOL_F64
    )  # the registered theorem checks
    assert (
        float(res.attention_residual.max()) <= TOL_F64
        and float(res.output_residual.max()) <= TOL_F64
    )
    assert 0.05 < float(res.prefix_mass.mean()) < 0.95  # not vacuous
    states = (ctx.embeddings + c.params["embed"]["W_pos"][:1])[None]  # the same token as a Prefix
    res_p = jax.jit(compare, static_argnums=0)(c.arch, trial._replace(context=Prefix(states)))
    np.testing.assert_allclose(res_p.prefix_mass, res.prefix_mass, rtol=1e-12)
    assert float(res_p.output_residual.max()) <= TOL_F64
    broken = c.arch.replace(attention="broken_prefix_denominator")  # negative control
    bad = jax.jit(compare, static_argnums=0)(broken, trial)
    assert float(bad.attention_residual.max()) > 1e-3


# ------------------------------------------------------------------- Theorem 2 and longer responses


@pytest.fixture(scope="module")
def cond1():
    return conditional_model(ASCII.size, 1)


def test_swapcase_and_random_maps_all_inputs(cond1):
    c = cond1
    table = map_table(swapcase_map())
    inputs = np.arange(c.V)[:, None]
    gen = greedy_generate_batch(c, _broadcast(map_tokens(c, table), c.V), inputs)
    np.testing.assert_array_equal(np.asarray(gen.tokens), table)
    rng = np.random.default_rng(0)
    maps = rng.integers(0, c.V, (8, c.V))  # 8 random maps x 95 inputs, one batch
    ctx = SoftPrompt(jnp.stack([map_tokens(c, m).embeddings for m in maps]).repeat(c.V, axis=0))
    gen = greedy_generate_batch(c, ctx, np.tile(np.arange(c.V), 8)[:, None])
    np.testing.assert_array_equal(np.asarray(gen.tokens)[:, 0], maps.reshape(-1))


def test_animals_and_foods():
    table = map_table(animals_map())
    c = conditional_model(ASCII.size, table.shape[1])
    inputs = np.array(ASCII.encode("AZaz?"))[:, None]
    gen = greedy_generate_batch(c, _broadcast(map_tokens(c, table), len(inputs)), inputs)
    got = [ASCII.decode(row).rstrip() for row in np.asarray(gen.tokens)]
    assert got == ["ant", "zebra", "apple", "zucchini", ""]
    assert c.certificate.certified


@pytest.mark.parametrize("above", [True, False])
def test_conditional_certificate_exhaustive_over_all_maps(above):
    """V=3: all 27 maps (N0=1) and all 729 two-token-response
    maps (N0=2) x 3 inputs; 'correct' <=> no error."""
    V = 3
    T_exact = scalar_certificate("conditional", V, 1, 1.0, with_limits=False).T_exact
    assert math.isclose(T_exact, math.log(4 * V - 3), rel_tol=1e-9)
    c = conditional_model(V, 1, T_exact + (1e-3 if above else -1e-3))
    maps = np.array(np.meshgrid(*[np.arange(V)] * V, indexing="ij")).reshape(V, -1).T  # [27, 3]
    ctx = SoftPrompt(jnp.stack([map_tokens(c, m).embeddings for m in maps]).repeat(V, axis=0))
    gen = greedy_generate_batch(c, ctx, np.tile(np.arange(V), len(maps))[:, None])
    errors = int((np.asarray(gen.tokens)[:, 0] != maps.reshape(-1)).sum())
    assert c.certificate.certified == above == (errors == 0)
    T2 = scalar_certificate(
        "conditional", V, 2, 1.0, with_limits=False
    ).T_exact  # N0 = 2: all 729 tables
    c2 = conditional_model(V, 2, T2 + (1e-3 if above else -1e-3))
    tables = (
        np.array(np.meshgrid(*[np.arange(V)] * (2 * V), indexing="ij"))
        .reshape(2 * V, -1)
        .T.reshape(-1, V, 2)
    )
    ctx = SoftPrompt(jnp.stack([map_tokens(c2, t).embeddings for t in tables]).repeat(V, axis=0))
    gen = greedy_generate_batch(c2, ctx, np.tile(np.arange(V), len(tables))[:, None])
    errors = int((np.asarray(gen.tokens) != tables.reshape(-1, 2)).any(axis=1).sum())
    assert c2.certificate.certified == above == (errors == 0)


# --------------------------------------------------------------------------- two user tokens


def test_two_token_float64_v16_all_inputs_and_low_temperature_fails():
    c = two_token_model(16)  # float64: 11 digits per coordinate
    assert c.extra["k"] == 11 and c.certificate.certified
    table = np.random.default_rng(5).integers(0, 16, (16, 16))
    pairs = all_pairs(16)
    out = np.asarray(
        greedy_generate_batch(c, _broadcast(pair_token(c, table), len(pairs)), pairs).tokens
    )[:, 0]
    np.testing.assert_array_equal(out, table[pairs[:, 0], pairs[:, 1]])
    cold = two_token_model(16, T=4.0)  # negative control: leakage too large
    assert not cold.certificate.certified and not cold.certificate.exact
    out = np.asarray(
        greedy_generate_batch(cold, _broadcast(pair_token(cold, table), len(pairs)), pairs).tokens
    )
    assert (out[:, 0] != table[pairs[:, 0], pairs[:, 1]]).any()


def test_two_token_float32_batched_is_exact():
    """float32 allows 4 base-16 digits per coordinate;
    the batched (vmapped) matmuls must stay exact."""
    c = two_token_model(16, dtype=jnp.float32)
    assert c.extra["k"] == 4 and c.certificate.certified and c.dtype == jnp.float32
    table = np.random.default_rng(6).integers(0, 16, (16, 16))
    pairs = all_pairs(16)
    out = np.asarray(
        greedy_generate_batch(c, _broadcast(pair_token(c, table), len(pairs)), pairs).tokens
    )[:, 0]
    np.testing.assert_array_equal(out, table[pairs[:, 0], pairs[:, 1]])
    with pytest.raises(ToolkitError, match="float32"):
        two_token_model(16, 5, dtype=jnp.float32)


def test_two_token_exact_mode_beyond_float64():
    with pytest.raises(ToolkitError, match="exact mode"):
        two_token_model(12, 12)  # full packing at V=12 does not fit float64
    c = two_token_model(12, 12, exact=True)
    assert c.certificate.certified and c.certificate.dtype == "exact"
    table = np.random.default_rng(7).integers(0, 12, (12, 12))
    pairs = all_pairs(12)[np.random.default_rng(8).choice(144, 16, replace=False)]
    out = exact_two_token_table(c, table, pairs)
    np.testing.assert_array_equal(out, table[pairs[:, 0], pairs[:, 1]])


def test_two_token_bound_is_nearly_tight_in_exact_mode():
    """V=4, k=4 in exact arithmetic: correct just above
    e^T = 16 B^k - 2, a wrong digit 0.2 below it."""
    V = 4
    T_b = math.log(16 * 4**4 - 2)
    table = np.array([[3, 0, 0, 0]] * V)  # s = 0.3000 (base 4): the ramp at y = 0 is hit
    random = np.random.default_rng(2).integers(0, V, (V, V))
    pairs = all_pairs(V)
    above = two_token_model(V, 4, T=T_b + 1e-3, exact=True)
    assert above.certificate.certified
    for t in (table, random):
        np.testing.assert_array_equal(exact_two_token_table(above, t), t[pairs[:, 0], pairs[:, 1]])
    below = two_token_model(V, 4, T=T_b - 0.2, exact=True)
    assert not below.certificate.certified
    assert (exact_two_token_table(below, table) != table[pairs[:, 0], pairs[:, 1]]).any()


def test_exact_evaluator_agrees_with_the_float_model():
    c = two_token_model(10)
    table = np.random.default_rng(1).integers(0, 10, (10, 10))
    lo, hi = ExactModel(c.extra["numpy_params"], c.arch).logits(
        [3, 7], pair_token_exact(c, table), only=[1]
    )
    logits, _ = forward(c.params, c.arch, jnp.array([3, 7]), pair_token(c, table))
    np.testing.assert_array_equal(np.array([float(x) for x in lo[0]]), np.asarray(logits[1]))
    assert all(h - l < 1e-30 for l, h in zip(lo[0], hi[0], strict=True))
    small = unconditional_model(5, 3, T=3.0)  # softmax with real leakage
    ctx = virtual_token(small, [4, 0, 2])
    from fractions import Fraction

    virtual = [[Fraction(float(v)) for v in np.asarray(ctx.embeddings[0])]]
    lo, hi = ExactModel(jax.tree_util.tree_map(np.asarray, small.params), small.arch).logits(
        [5, 4, 0], virtual
    )
    logits, _ = forward(small.params, small.arch, jnp.array([5, 4, 0]), ctx)
    mid = np.array(
        [
            [float((a + b) / 2) for a, b in zip(r_lo, r_hi, strict=True)]
            for r_lo, r_hi in zip(lo, hi, strict=True)
        ]
    )
    np.testing.assert_allclose(mid, np.asarray(logits), atol=1e-13)


# --------------------------------------------------------------------- ceiling, derivations, errors


def test_hard_token_ceiling(demo, cond1):
    ceiling = hard_token_ceiling(demo)
    assert ceiling.hard_tokens == ASCII.size + 1 and ceiling.hard_distinct == ASCII.size
    assert ceiling.virtual_reachable == ASCII.size ** len(TEXT)
    cc = hard_token_ceiling(cond1)
    assert cc.hard_distinct <= ASCII.size and cc.virtual_reachable == ASCII.size**ASCII.size


def test_derivations_are_machine_checked():
    for kind in ("unconditional", "conditional", "two_token"):
        assert derivation(kind).verified(), kind
    d = derivation("unconditional")  # negative control: a wrong threshold fails
    wrong = Step(d.steps[-3].lhs, d.steps[-3].rhs + 1, "wrong")
    assert not wrong.check(d.definition_map).ok


def test_bad_input_errors(demo, tmp_path):
    with pytest.raises(ToolkitError, match="outside the vocabulary"):
        ASCII.encode("caf\u00e9")
    with pytest.raises(ToolkitError, match="longer than this model's N"):
        virtual_token(demo, [1] * (len(TEXT) + 1))
    with pytest.raises(ToolkitError, match="float64"):
        unconditional_model(5000, 20, dtype=jnp.float32)
    with pytest.raises(ToolkitError, match="reads 1 content token"):
        greedy_generate(demo, virtual_token(demo, [1, 2]), [demo.bos, 3])
    bad_key = tmp_path / "key.json"
    bad_key.write_text(json.dumps({"\u00e9": "a"}))
    with pytest.raises(ToolkitError, match="outside the vocabulary"):
        load_map(str(bad_key))
    bad_value = tmp_path / "value.json"
    bad_value.write_text(json.dumps({"a": "\u00e9"}))
    with pytest.raises(ToolkitError, match="outside the vocabulary"):
        load_map(str(bad_value))
    with pytest.raises(ToolkitError, match=r"shape \(3, N0=1\)"):
        map_tokens(conditional_model(3, 1), [0, 1])
    assert main(["construct", "unconditional", "caf\u00e9"]) == 2
    assert main(["construct", "unconditional", "abc", "--N", "2"]) == 2
    assert main(["construct", "map", "--json", str(bad_value)]) == 2
    assert main(["construct", "pairs", "--V", "16", "--digits", "16"]) == 2


def test_cli_map_from_json(tmp_path, capsys):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"a": "b", "b": "a"}))
    assert main(["construct", "map", "--json", str(path), "--input", "a"]) == 0
    out = capsys.readouterr().out
    assert "'a' -> 'b'" in out and "CORRECT" in out and "respond with themselves" in out


def test_capacity_counts_on_the_constructions(capsys):
    """The constructions attain the counts of the capacity theorem, and pass them to its
    numeric instance (``derive capacity --substitute``)."""
    from constructions.capacity import counts

    found = counts(3, 2)
    assert found["unconditional_distinct"] == found["V^N"] == 9 and found["unconditional_exact"]
    assert found["conditional_distinct"] == found["V^V"] == 27 and found["conditional_exact"]
    assert found["hard_token_completions"] <= 3 and found["hard_token_maps"] <= 3
    assert main(["derive", "capacity", "--substitute"]) == 0
    out = capsys.readouterr().out
    assert "maps of one virtual token, construction V=3 (V^V): symbolic result at the JAX " in out
