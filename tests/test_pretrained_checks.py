"""docs/theory.md §3 on the real all-MiniLM-L6-v2 weights: checks API, optimised prefix, figures.

The full sweep (4 sentences, 16 random prefixes, 300 training steps) is
``prefix-theory verify --model minilm``; here one short sentence, 2 random
prefixes and a prefix trained for a few steps keep the test quick.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from pretrained.checks import (
    PAPER_LLAMA_ATTENTION,
    PAPER_LLAMA_OUTPUT,
    SOURCE,
    format_report,
    run_checks,
)
from pretrained.figures import attention_maps, plot_attention
from pretrained.minilm import load_minilm
from theory.tolerances import TOL_F64


@pytest.fixture(scope="module")
def checked():
    report, extras = run_checks(
        sentences=(SOURCE,),
        trials=2,
        steps=8,
        seed=0,
        control_dtypes=("float64",),
        fast_compile=True,
    )
    print(format_report(report))
    return report, extras


def _rows(report, prefix, dtype):
    return next(r for r in report.rows if r.prefix.startswith(prefix) and r.dtype == dtype)


@pytest.mark.parametrize("prefix", ["random", "optimised"])
def test_conditional_statements_hold_on_every_layer(checked, prefix):
    report, _ = checked
    f32, f64 = _rows(report, prefix, "float32"), _rows(report, prefix, "float64")
    assert len(f32.attention) == len(f64.output) == 6
    assert max(f32.attention) <= PAPER_LLAMA_ATTENTION and max(f32.output) <= PAPER_LLAMA_OUTPUT
    assert max(f64.attention) <= TOL_F64 and max(f64.output) <= TOL_F64
    assert f32.verdict == f64.verdict == "holds"
    assert min(f64.mass) > 1e-2  # the prefix takes a real share: the check is not vacuous


def test_unconditional_attention_changes_in_deeper_layers(checked):
    report, _ = checked
    for dtype, tol in (("float32", PAPER_LLAMA_ATTENTION), ("float64", TOL_F64)):
        row = _rows(report, "optimised", dtype)
        assert row.unconditional[0] <= tol  # layer 0: the inputs coincide
        assert min(row.unconditional[1:]) > 1e-3  # deeper: the prefix moved the inputs
    w = report.witness
    assert w["changes"] and w["layer"] >= 1 and w["residual"] > 1e-2
    assert report.as_expected


def test_rank1_WQ_negative_control_fails(checked):
    report, _ = checked
    row = _rows(report, "rank1_WQ", "float64")  # float32 too in the CLI sweep
    assert row.verdict == row.expected == "fails"
    assert min(row.attention) > 1e-2 and min(row.output) > 1e-2
    assert not any(r.prefix.startswith("rank1") and r.dtype == "float32" for r in report.rows)


def test_training_improves_the_objective(checked):
    report, extras = checked
    t = report.training
    assert t["loss_last"] < t["loss_first"] and t["cos_trained"] > t["cos_init"] + 0.1
    assert extras["trained"].prefix.states.shape == (6, 1, 384)


def test_attention_maps_and_png(checked, tmp_path):
    _, extras = checked
    model = extras["model"]
    enc = model.tokenizer.encode(SOURCE)
    ids = jnp.asarray(enc.ids, jnp.int32)
    prefix = extras["trained"].prefix
    first = attention_maps(model.params, model.arch, ids, prefix, layer=0, head=3)
    np.testing.assert_allclose(first["rescaled"], first["no_prefix"], atol=1e-5)
    np.testing.assert_allclose(first["with_prefix"].sum(-1), 1.0, atol=1e-5)
    deep = attention_maps(model.params, model.arch, ids, prefix, layer=4, head=3)
    np.testing.assert_allclose(deep["rescaled"], deep["given_inputs"], atol=1e-5)
    assert np.abs(deep["rescaled"] - deep["no_prefix"]).max() > 1e-3
    path = plot_attention(
        model.params, model.arch, ids, enc.tokens, prefix, [(0, 3)], tmp_path / "a.png"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float64_weights_are_the_exact_widening():
    f32, f64 = load_minilm("float32"), load_minilm("float64")
    a, b = f32.params["blocks"][5]["mlp"]["W_out"], f64.params["blocks"][5]["mlp"]["W_out"]
    assert b.dtype == jnp.float64 and bool(jnp.all(a.astype(jnp.float64) == b))
