"""The architecture atlas: coverage of the registry,
the non-softmax kinds, the default plan, the report."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli.main import main
from render.atlas import grid, to_markdown, write_atlas
from theory.architecture import ARCHITECTURES
from theory.attention import ATTENTION_KINDS, AttentionKind
from theory.blocks import BLOCK_KINDS
from theory.errors import ToolkitError
from theory.methods import METHODS
from theory.params import param_shapes
from theory.symbolic import Step
from theory.verify import Result, plan
from theory.zoo.modern import ATLAS_METHODS, MODIFIED

CORE = ("paper", "gpt", "bert", "broken-denominator")


def _archs():
    return [a for a in ARCHITECTURES.values() if not a.negative_control]


def test_registry_covers_the_atlas():
    archs = _archs()
    assert len(ARCHITECTURES) >= 12 and len(archs) >= 12
    assert {a.positional for a in archs} >= {"learned", "sinusoidal", "rope", "alibi", "none"}
    assert {a.attention for a in archs} >= {"softmax", "softmax_one", "linear", "sigmoid", "ssmax"}
    assert any(a.qk_norm for a in archs) and any(a.window for a in archs)
    assert {a.kv_heads for a in archs if a.n_kv_heads} >= {1, 2}  # MQA and GQA
    assert {a.norm for a in archs} >= {"pre", "post", "none"} and {a.norm_kind for a in archs} == {
        "layernorm",
        "rmsnorm",
    }
    assert any(a.parallel for a in archs) and any(a.block == "sandwich" for a in archs)
    assert {a.mlp_act for a in archs} >= {"gated_silu", "gated_gelu"}
    assert {a.causal for a in archs} == {True, False}  # decoders and encoders


@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if n not in CORE])
def test_atlas_architecture_has_context_methods_and_a_negative_control(name):
    arch = ARCHITECTURES[name]
    methods = [METHODS[m] for m in arch.default_methods]
    assert any(not m.changes_weights for m in methods), "a default run must check a context method"
    assert any(m.changes_weights for m in methods), "every check needs a negative control"
    assert arch.description


def test_default_plan_runs_representative_methods_and_explicit_methods_override():
    groups = plan()
    by_arch = {}
    for a, m, _ in groups:
        by_arch.setdefault(a, []).append(m)
    for name in ("paper", "gpt", "bert"):
        runnable = [m for m in METHODS if METHODS[m].applies(ARCHITECTURES[name])]
        assert sorted(by_arch[name]) == sorted(runnable)
    for name, arch in ARCHITECTURES.items():
        if not arch.default_run:
            assert name not in by_arch  # checked only when named (make atlas names them all)
        elif arch.default_methods:
            assert sorted(by_arch[name]) == sorted(arch.default_methods)
    named = [n for n, a in ARCHITECTURES.items() if not a.default_run]
    assert named and {a for a, _, _ in plan(architectures=named)} == set(named)
    explicit = {m for a, m, _ in plan(architectures=["sigmoid"], methods=["hard_prompt"])}
    assert explicit == {"hard_prompt"}
    assert set(ATLAS_METHODS) <= set(METHODS)


def test_sandwich_block_adds_its_norms_and_requires_pre_norm():
    shapes = param_shapes(ARCHITECTURES["gemma2"])["blocks"][0]
    assert shapes["ln1_post"] == {"w": (16,)} and shapes["ln2_post"] == {"w": (16,)}
    assert "sandwich" in BLOCK_KINDS
    with pytest.raises(ToolkitError, match="block 'sandwich' needs"):
        ARCHITECTURES["gemma2"].replace(name="x", norm="post")
    with pytest.raises(ToolkitError, match="unknown block kind 'nope'"):
        ARCHITECTURES["gpt"].replace(name="x", block="nope")


@pytest.mark.parametrize(
    "kind", [k for k in ATTENTION_KINDS.values() if k.derivation is not None], ids=lambda k: k.name
)
def test_attention_kind_derivation_is_machine_checked(kind):
    derivation = kind.derivation()
    assert derivation.verified(), derivation.render()
    assert derivation.render("markdown")


def test_wrong_derivation_step_is_rejected():
    """Negative control for the derivations: claim
    sigmoid rescales by 1 - m_i (the softmax form)."""
    sig = ATTENTION_KINDS["sigmoid"].derivation()
    defs = {str(s): s for s, _, _ in sig.definitions}
    wrong = dataclasses.replace(
        sig, steps=(Step(defs["A^{pt}_{ij}"], defs["A_{ij}"] * (1 - defs["m_i"]), "wrong"),)
    )
    assert not wrong.verified()
    ssmax = ATTENTION_KINDS["ssmax"].derivation()
    ratio, ratio_pt = (s for s, _, _ in ssmax.definitions)
    assert not dataclasses.replace(
        ssmax, steps=(Step(ratio_pt, ratio, "claims §3 holds"),)
    ).verified()


def _weights(kind, logits_mask_virtual):
    q = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 4))
    k = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 4))
    mask, virtual = logits_mask_virtual
    arch = ARCHITECTURES["nope"]
    return ATTENTION_KINDS[kind].weights(q, k, arch, 0.0, mask, virtual)


def test_atlas_kinds_weights_against_their_formulas():
    mask = jnp.tril(jnp.ones((5, 5), bool))
    virtual = jnp.zeros(5, bool)
    scores, one = _weights("softmax_one", (mask, virtual))
    e = np.where(mask, np.exp(np.asarray(scores)), 0.0)
    np.testing.assert_allclose(one, e / (1.0 + e.sum(-1, keepdims=True)), rtol=1e-12)
    assert np.all(np.asarray(one).sum(-1) < 1.0)  # the sink keeps a share
    _, lin = _weights("linear", (mask, virtual))
    np.testing.assert_allclose(np.asarray(lin).sum(-1), 1.0, rtol=1e-12)
    assert np.all(np.asarray(lin)[:, ~np.asarray(mask)] == 0)
    scores, sig = _weights("sigmoid", (mask, virtual))
    np.testing.assert_allclose(
        sig, np.where(mask, 1 / (1 + np.exp(-np.asarray(scores))), 0.0), rtol=1e-12
    )
    full = jnp.ones((5, 5), bool)
    _, sig_full = _weights("sigmoid", (full, virtual))
    np.testing.assert_allclose(
        np.asarray(sig_full)[:, mask], np.asarray(sig)[:, mask], rtol=0
    )  # elementwise
    scores, ss = _weights("ssmax", (mask, virtual))
    logits = ATTENTION_KINDS["softmax"].weights
    n_visible = np.asarray(mask).sum(-1)
    raw, _ = logits(
        jax.random.normal(jax.random.PRNGKey(0), (5, 2, 4)),
        jax.random.normal(jax.random.PRNGKey(1), (5, 2, 4)),
        ARCHITECTURES["nope"],
        0.0,
        mask,
        virtual,
    )
    np.testing.assert_allclose(
        scores, np.asarray(raw) * np.log(n_visible)[None, :, None], rtol=1e-12
    )


def _result(theorem, arch, method, expected, verdict, residual, reason=""):
    return Result(theorem, arch, method, expected, verdict, residual, 4, 1e-10, 0, 2, reason)


def test_grid_statuses_and_report(tmp_path):
    results = [
        _result("relative_attention", "gpt", "prefix", "holds", "holds", 1e-16),
        _result("relative_attention", "gpt", "lora_rank1_WK", "fails", "fails", 0.8),
        _result(
            "relative_attention", "sigmoid", "prefix", "holds", "holds", 0.0, MODIFIED + ": c_i = 1"
        ),
        _result("relative_attention", "sigmoid", "lora_rank1_WK", "fails", "fails", 0.7),
        _result("relative_attention", "ssmax", "prefix", "fails", "fails", 0.1, "log N scale"),
        _result("relative_attention", "llama", "prefix", "holds", "fails", 0.3),
        _result(
            "relative_attention",
            "nope",
            "prefix",
            "holds",
            "error",
            math.nan,
            "the check raised KeyError",
        ),
    ]
    _, archs, cells = grid(results)
    status = {a: cells["relative_attention", a].status for a in archs}
    assert status == {
        "gpt": "holds",
        "sigmoid": "modified",
        "ssmax": "fails",
        "llama": "UNEXPECTED",
        "nope": "error",
    }
    assert cells["relative_attention", "gpt"].control_residual == 0.8
    assert (
        "witness: seed 0, trial 2, residual 3.0e-01" in cells["relative_attention", "llama"].reason
    )
    text, md, png = write_atlas(results, str(tmp_path), seed=0, trials=4)
    assert "| `sigmoid` |" in text and "holds* 0.0e+00 / ctrl 7.0e-01" in text
    assert "Derivations for the attention kinds" in text and "sympy" in text
    assert open(md).read() == text
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert to_markdown(results[:2], seed=0, trials=4).count("\n| `") == 1


def test_verify_atlas_cli_on_the_non_softmax_kinds(tmp_path, capsys):
    """The expectations of the atlas kinds are met in verify (holds / modified form / fails)."""
    out = tmp_path / "v.json"
    code = main(
        [
            "verify",
            "--architecture",
            "sigmoid",
            "--architecture",
            "ssmax",
            "--architecture",
            "softmax-one",
            "--method",
            "kv_prefix",
            "--theorem",
            "relative_attention",
            "--theorem",
            "convex_output",
            "--trials",
            "3",
            "--json",
            str(out),
            "--atlas",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = {(r["architecture"], r["theorem"]): r for r in json.loads(out.read_text())["results"]}
    assert rows["sigmoid", "relative_attention"]["max_residual"] <= 1e-10  # modified form
    assert rows["softmax-one", "convex_output"]["max_residual"] <= 1e-10
    assert rows["ssmax", "relative_attention"]["max_residual"] > 1e-3  # expected to fail
    assert "holds*" in printed and "| `ssmax` |" in printed
    assert (tmp_path / "atlas.md").exists() and (tmp_path / "atlas.png").exists()


def test_sigmoid_declared_normalised_is_reported(monkeypatch):
    """Negative control: the same sigmoid weights
    checked with the softmax factor 1 - m_i must fail."""
    from theory.verify import run_verify

    lying = AttentionKind(
        "sigmoid_as_softmax",
        normalised=True,
        weights=ATTENTION_KINDS["sigmoid"].weights,
        description="sigmoid weights declared normalised",
    )
    monkeypatch.setitem(ATTENTION_KINDS, lying.name, lying)
    arch = ARCHITECTURES["sigmoid"].replace(
        name="sigmoid-lying", attention=lying.name, expectations=()
    )
    monkeypatch.setitem(ARCHITECTURES, arch.name, arch)
    [result] = run_verify(["relative_attention"], [arch.name], ["kv_prefix"], trials=3)
    assert result.verdict == "fails" and not result.as_expected and result.max_residual > 1e-3


def test_declared_expectations_name_registered_theorems_and_give_reasons():
    from theory.registry import THEOREMS

    for arch in ARCHITECTURES.values():
        for theorem_id, expected, reason in arch.expectations:
            assert theorem_id in THEOREMS, (arch.name, theorem_id)
            assert expected in ("holds", "fails") and len(reason) > 20, (
                arch.name,
                theorem_id,
                reason,
            )
