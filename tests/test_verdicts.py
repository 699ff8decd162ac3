"""A verdict is only given when it means something: a residual that is not finite, or a context
that changed nothing, is an ERROR row (no verdict), in the table, the atlas and the JSON."""

import dataclasses
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from cli.main import main
from render.atlas import grid, to_markdown
from render.table import format_table
from theory.registry import THEOREMS
from theory.theorems import relative_attention
from theory.tolerances import EFFECT_FLOOR, TOL_F64
from theory.verify import Result, judge, run_control, run_verify

SECTION3 = ["relative_attention", "convex_output"]


def transform_trials(monkeypatch, transform):
    """Every trial the verifier draws passed through ``transform(trial, shape)``."""
    import theory.verify

    real = theory.verify.draw_trial

    def drawn(arch, method, key, shape, *args, **kwargs):
        return transform(real(arch, method, key, shape, *args, **kwargs), shape)

    monkeypatch.setattr(theory.verify, "draw_trial", drawn)


@pytest.fixture
def prefix_masked_out(monkeypatch):
    """Every drawn trial with its virtual keys masked out: the content never sees the prefix."""

    def masked(trial, shape):
        n_p = trial.key_mask.shape[0] - shape.n
        return trial._replace(key_mask=trial.key_mask.at[:n_p].set(False))

    transform_trials(monkeypatch, masked)


def test_a_prefix_masked_out_is_an_error_not_holds(prefix_masked_out, tmp_path, capsys):
    results = run_verify(SECTION3, ["paper", "llama"], ["prefix", "kv_prefix"], trials=3)
    assert len(results) == 8
    for r in results:
        # the identities are satisfied (vacuously: nothing to rescale, nothing to bias) ...
        assert r.max_residual <= TOL_F64
        # ... so without the effect check they would read "holds"
        assert r.verdict == "error" and not r.as_expected, r
        assert r.prefix_mass == 0.0 and r.displacement <= EFFECT_FLOOR
        assert "the context had no effect" in r.reason and "vacuous" in r.reason
    path = tmp_path / "v.json"
    argv = ["verify", "--architecture", "paper", "--method", "prefix", "--trials", "2"]
    argv += ["--theorem", "relative_attention", "--json", str(path)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "ERROR (the context had no effect" in out and "1 ERROR (no verdict)" in out
    [row] = json.loads(path.read_text())["results"]
    assert row["verdict"] == "error" and row["prefix_mass"] == 0.0 and not row["as_expected"]


def test_context_rows_report_their_effect_and_weight_rows_do_not(tmp_path, capsys):
    path = tmp_path / "v.json"
    argv = ["verify", "--architecture", "paper", "--method", "prefix", "--trials", "2"]
    argv += ["--method", "finetune_rank1_WQ", "--theorem", "convex_output", "--json", str(path)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "prefix mass" in table and "displacement" in table
    rows = {r["method"]: r for r in json.loads(path.read_text())["results"]}
    assert rows["prefix"]["prefix_mass"] > 0.01 and rows["prefix"]["displacement"] > 0.01
    assert rows["prefix"]["verdict"] == "holds"
    assert rows["finetune_rank1_WQ"]["prefix_mass"] is None  # no context: nothing to show


def _effect(mass, moved):
    return {"prefix_mass": np.array(mass), "displacement": np.array(moved)}


def test_judge_needs_every_trial_finite_and_effective():
    ok = np.array([1e-16, 2e-16])
    effect = _effect([0.3, 0.2], [0.5, 0.4])
    assert judge(ok, 1e-10, effect)[0] == "holds"
    assert judge(np.array([1e-16, 0.5]), 1e-10, effect)[:2] == ("fails", 1)
    verdict, trial, _, reason = judge(np.array([1e-16, np.nan]), 1e-10, effect)
    assert (verdict, trial) == ("error", 1) and "not finite" in reason
    assert judge(np.array([np.inf, 0.5]), 1e-10)[0] == "error"  # never "fails"
    assert judge(ok, 1e-10, _effect([0.3, 0.0], [0.5, 0.4]))[:2] == ("error", 1)
    assert judge(ok, 1e-10, _effect([0.3, 0.2], [0.5, 1e-9]))[0] == "error"
    assert judge(ok, 1e-10, _effect([np.nan, 0.2], [0.5, 0.4]))[0] == "error"
    # a mixer without attention: the displacement alone decides
    assert judge(ok, 1e-10, {"displacement": np.array([0.5, 0.4])})[0] == "holds"
    verdict, trial, _, reason = judge(ok, 1e-10, {"displacement": np.array([0.5, 0.0])})
    assert (verdict, trial) == ("error", 1) and "displacement 0.0e+00" in reason


@pytest.mark.parametrize("method", ["initial_state", "prefix"])
def test_recurrent_contexts_report_their_effect(method):
    """A recurrent mixer has no attention pattern: its rows report the displacement of the mixer
    output (no prefix mass), and a context that moves it gives a verdict, not an ERROR."""
    (row,) = run_verify(["recurrent_state"], ["s4d"], [method], trials=2)
    assert row.verdict == "holds" and math.isnan(row.prefix_mass) and row.displacement > 1e-3


def test_a_zero_initial_state_is_an_error_not_holds(monkeypatch):
    """Negative control of the recurrent effect: a zero initial state changes nothing."""
    import jax

    def zero_state(trial, shape):
        return trial._replace(context=jax.tree.map(jnp.zeros_like, trial.context))

    transform_trials(monkeypatch, zero_state)
    (row,) = run_verify(["recurrent_state"], ["s4d"], ["initial_state"], trials=2)
    assert row.verdict == "error" and "no effect" in row.reason and row.displacement == 0.0


def _row(verdict, residual, method="prefix", reason="docs/theory.md §3.1"):
    return Result(
        "relative_attention", "gpt", method, "holds", verdict, residual, 4, 1e-10, 0, 1, reason
    )


def test_nan_residual_in_table_atlas_and_json():
    nan_row = _row("error", math.nan, reason="residual is not finite (nan on trial 1)")
    rows = [nan_row, _row("fails", 0.9, method="lora_rank1_WK")]
    table = format_table(rows)
    assert "ERROR (residual is not finite" in table and "1 ERROR (no verdict)" in table
    _, _, cells = grid(rows)
    cell = cells["relative_attention", "gpt"]
    assert cell.status == "error" and "not finite" in cell.reason
    assert math.isnan(cell.context_residual)
    assert "ERROR nan / ctrl 9.0e-01" in to_markdown(rows, seed=0, trials=4)
    payload = json.loads(json.dumps(nan_row.to_json()))
    assert payload["max_residual"] == "nan" and payload["verdict"] == "error"
    assert not payload["as_expected"]


def test_control_with_a_nan_residual_is_not_ok(monkeypatch):
    theorem = dataclasses.replace(
        relative_attention.THEOREM,
        id="nan_control",
        check=lambda arch, trial: jnp.asarray(jnp.nan),
    )
    monkeypatch.setitem(THEOREMS, "nan_control", theorem)
    result = run_control(theorem, theorem.controls[0])
    assert not result.ok and "ERROR: residual is not finite" in result.describe()


def test_interop_row_with_a_nan_residual_is_an_error():
    from interop.checks import make_row

    res = {
        "attention": np.array([[1e-16, np.nan]]),
        "output": np.array([[1e-16, 1e-16]]),
        "mass": np.array([[0.3, 0.2]]),
    }
    row = make_row("random", "float64", res, "holds", SECTION3)
    assert row.verdict == "error" and "not finite" in row.reason
    res["attention"] = np.array([[1e-16, 1e-16]])
    assert make_row("random", "float64", res, "holds", SECTION3).verdict == "holds"
    res["mass"] = np.array([[0.0, 0.0]])
    row = make_row("random", "float64", res, "holds", SECTION3)
    assert row.verdict == "error" and "no effect" in row.reason
