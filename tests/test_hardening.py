"""Bad input, as a new user gives it: one clear line and exit 2, before any work; a crash is
never a verdict; every verdict that is not as expected exits 1.

Each test here is one case found by trying the command line and the Python API as a new user
would; each failed before the behaviour it checks was built.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli.main import main
from theory.errors import ToolkitError
from theory.registry import ARCHITECTURES, THEOREMS

ROOT = Path(__file__).resolve().parents[1]
SMALL_VERIFY = ["--architecture", "paper", "--theorem", "relative_attention", "--trials", "1"]


def run_cli(argv, capsys):
    """``main(argv)`` in this process: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def subprocess_cli(args, **env):
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def lying_architecture(monkeypatch):
    """A plug-in architecture whose softmax leaves the prefix out of the denominator but which
    declares nothing: the §3 theorems are expected to hold on it and do not."""
    lying = ARCHITECTURES["broken-denominator"].replace(
        name="lying", expectations=(), negative_control=False
    )
    monkeypatch.setitem(ARCHITECTURES, "lying", lying)
    return "lying"


# ---------------------------------------------------------------- derive --substitute verdicts


def test_derive_substitute_prints_a_verdict_and_exits_1_on_a_violation(lying_architecture, capsys):
    code, out, _ = run_cli(
        ["derive", "relative_attention", "--substitute", "--architecture", lying_architecture],
        capsys,
    )
    assert code == 1
    assert "verdict: fails; UNEXPECTED (expected holds)" in out


# ------------------------------------------------------------- output paths checked up front


MISSING = "{tmp}/no/such/folder"  # a folder that does not exist (never created by a test)


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["verify", "--json", f"{MISSING}/out.json", *SMALL_VERIFY], "--json"),
        (["verify", "--atlas", "/proc/x", *SMALL_VERIFY], "--atlas"),
        (["derive", "relative_attention", "--output", f"{MISSING}/x.md"], "--output"),
        (["prove", "relative_attention", "--json", f"{MISSING}/x.json"], "--json"),
    ],
)
def test_output_paths_are_checked_before_any_work(argv, flag, monkeypatch, capsys, tmp_path):
    import proofs.runner
    import theory.verify

    def no_work(*args, **kwargs):
        raise AssertionError("the command started its work before checking its output path")

    monkeypatch.setattr(theory.verify, "run_verify", no_work)
    monkeypatch.setattr(proofs.runner, "prove", no_work)
    code, out, err = run_cli([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2, err
    assert flag in one_error_line(err) and out == ""
    assert not (tmp_path / "no").exists()


def test_experiment_out_is_checked_before_training(monkeypatch, capsys):
    import experiments.runner

    def no_training(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(experiments.runner.Runner, "__init__", no_training)
    code, _, err = run_cli(["experiment", "new_attention", "--quick", "--out", "/proc/x"], capsys)
    assert code == 2 and "--out" in one_error_line(err)


@pytest.mark.parametrize("flag", ["--json", "--png"])
def test_inspect_output_paths_are_checked_first(flag, capsys, tmp_path):
    fixtures = ROOT / "tests" / "fixtures" / "hf" / "gpt2"
    argv = ["inspect", "--model", f"hf:{fixtures / 'model'}", "--adapter", str(fixtures / "prefix")]
    code, out, err = run_cli([*argv, flag, str(tmp_path / "no" / "x.png")], capsys)
    assert code == 2 and flag in one_error_line(err) and out == ""


def test_inspect_png_must_name_a_png_file(capsys, tmp_path):
    fixtures = ROOT / "tests" / "fixtures" / "hf" / "gpt2"
    argv = ["inspect", "--model", f"hf:{fixtures / 'model'}", "--adapter", str(fixtures / "prefix")]
    code, out, err = run_cli([*argv, "--png", str(tmp_path / "out.json")], capsys)
    assert code == 2 and ".png" in one_error_line(err) and out == ""
    assert list(tmp_path.iterdir()) == []


def test_export_out_is_checked_first(capsys, tmp_path):
    fixtures = ROOT / "tests" / "fixtures" / "hf" / "gpt2"
    context = tmp_path / "c.npz"
    np.savez(context, embeddings=np.zeros((2, 32), np.float32))
    argv = ["export", "--model", f"hf:{fixtures / 'model'}", "--context", str(context)]
    code, out, err = run_cli([*argv, "--out", "/proc/adapter"], capsys)
    assert code == 2 and "--out" in one_error_line(err) and out == ""


# -------------------------------------------------------- construct: sizes, T, NOT CERTIFIED


@pytest.mark.parametrize(
    "argv, message",
    [
        (["construct", "certificate", "unconditional", "--N", "-1"], "--N"),
        (["construct", "certificate", "unconditional", "--N", "0"], "--N"),
        (["construct", "certificate", "unconditional", "--V", "0"], "--V"),
        (["construct", "certificate", "conditional", "--V", "1"], "--V"),
        (["construct", "certificate", "unconditional", "--T", "-1"], "--T"),
        (["construct", "certificate", "two_token", "--T", "nan"], "--T"),
        (["construct", "ceiling", "--T", "0"], "--T"),
        (["construct", "pairs", "--V", "0"], "--V"),
        (["construct", "unconditional", "abc", "--N", "-2"], "--N"),
    ],
)
def test_construct_rejects_bad_sizes_and_temperatures(argv, message, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and message in one_error_line(err) and out == ""


def test_construct_certificate_not_certified_exits_1(capsys):
    code, out, _ = run_cli(["construct", "certificate", "unconditional", "--T", "0.5"], capsys)
    assert "NOT CERTIFIED" in out and code == 1
    code, out, _ = run_cli(["construct", "certificate", "unconditional"], capsys)
    assert "CORRECT" in out and code == 0


# ------------------------------------------- construct unconditional: the ceiling in batches


@pytest.fixture
def batch_sizes(monkeypatch):
    """The number of prompts of every batch the constructions generate (recorded in order)."""
    import constructions.generate as generate

    sizes = []
    real = generate.greedy_generate_batch

    def recording(construction, contexts, prompts, *args, **kwargs):
        sizes.append(np.asarray(prompts).shape[0])
        return real(construction, contexts, prompts, *args, **kwargs)

    monkeypatch.setattr(generate, "greedy_generate_batch", recording)
    return sizes


def test_hard_prompt_ceiling_streams_in_bounded_batches(monkeypatch, capsys, batch_sizes):
    import constructions.generate as generate

    sizes = batch_sizes
    monkeypatch.setattr(generate, "BATCH_BYTES", 1)  # the smallest budget: one prompt at a time
    code, out, _ = run_cli(["construct", "unconditional", "hello"], capsys)
    assert code == 0
    assert "95 distinct completions" in out
    assert sizes and max(sizes) == 1 and len(sizes) == 96


def test_construct_pairs_streams_its_inputs_and_refuses_what_cannot_fit(
    monkeypatch, capsys, batch_sizes
):
    import constructions.generate as generate

    sizes = batch_sizes
    monkeypatch.setattr(generate, "BATCH_BYTES", 40_000)
    code, out, _ = run_cli(["construct", "pairs", "--V", "6"], capsys)
    assert code == 0 and "36/36 inputs correct" in out
    assert len(sizes) > 1 and sum(sizes) >= 36 and len(set(sizes)) == 1  # padded: one shape
    # 2^36 weights would not fit this (or any) machine: refused before anything is allocated
    code, out, err = run_cli(["construct", "pairs", "--V", "4096"], capsys)
    assert code == 2 and "GiB" in one_error_line(err) and out == ""


# ------------------------------------------------------------------------------ plug-ins


def test_bad_plugin_variable_does_not_break_help_and_is_one_line():
    proc = subprocess_cli(["--help"], PREFIX_THEORY_PLUGINS="no_such_plugin_module")
    assert proc.returncode == 0 and "exit codes" in proc.stdout
    proc = subprocess_cli(["derive", "--list"], PREFIX_THEORY_PLUGINS="no_such_plugin_module")
    assert proc.returncode == 2
    assert "no_such_plugin_module" in one_error_line(proc.stderr)


def test_dotted_plugin_with_a_syntax_error_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "broken_variants.py").write_text("def f(:\n")
    sys.path.insert(0, str(tmp_path))
    try:
        code, _, err = run_cli(["verify", "--plugin", "broken_variants", *SMALL_VERIFY], capsys)
    finally:
        sys.path.remove(str(tmp_path))
    assert code == 2 and "SyntaxError" in one_error_line(err)


# ----------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--seed", "99999999999999999999999", *SMALL_VERIFY],
        ["verify", "--seed", "4294967296", *SMALL_VERIFY],
        ["verify", "--seed", "-1", *SMALL_VERIFY],
        ["verify", "--seeds", "99999999999999999999999", *SMALL_VERIFY],
        ["verify", "--seeds", "4294967296", *SMALL_VERIFY],
        ["verify", "--seeds", "0:4294967297", *SMALL_VERIFY],
        ["experiment", "new_attention", "--quick", "--seed", "-1"],
        ["construct", "pairs", "--seed", "-1"],
        ["construct", "pairs", "--seed", "4294967296"],
        ["derive", "relative_attention", "--substitute", "--seed", "99999999999999999999999"],
        ["inspect", "--model", "hf:x", "--adapter", "y", "--seed", "-5"],
    ],
)
def test_seeds_outside_the_32_bit_range_are_usage_errors(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and "--seed" in one_error_line(err) and "[0, 2^32)" in err and out == ""


def test_largest_seed_is_accepted(capsys):
    code, _, err = run_cli(["verify", "--seed", str(2**32 - 1), *SMALL_VERIFY], capsys)
    assert code == 0, err


def test_a_sweep_of_millions_of_seeds_is_refused_before_any_work(capsys):
    code, out, err = run_cli(["verify", "--seeds", "0:4294967296", *SMALL_VERIFY], capsys)
    assert code == 2 and "at most 1,000,000 seeds" in one_error_line(err) and out == ""
    from theory.verify import run_verify

    with pytest.raises(ToolkitError, match=r"ints in \[0, 2\^32\), got \[4294967296\]"):
        run_verify(["relative_attention"], ["paper"], seeds=[0, 2**32])


# ------------------------------------------------------------------------------ broken pipe


def test_output_piped_into_a_closed_reader_is_silent():
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "derive", "--all", "--markdown"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(10)  # what `head -c 10` reads, then it stops reading
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipeError" not in err and proc.returncode == 0


# ------------------------------------------------------------------------ NaN is an ERROR


def test_nan_residual_is_an_error_row_not_fails(monkeypatch, capsys):
    from theory.theorems import relative_attention
    from theory.verify import run_verify

    nan_theorem = dataclasses.replace(
        relative_attention.THEOREM, id="nan_check", check=lambda arch, trial: jnp.asarray(jnp.nan)
    )

    monkeypatch.setitem(THEOREMS, "nan_check", nan_theorem)
    [result] = run_verify(["nan_check"], ["paper"], ["prefix"], trials=2)
    assert result.verdict == "error" and "not finite" in result.reason
    assert not result.as_expected
    code, out, _ = run_cli(
        ["verify", "--theorem", "nan_check", "--architecture", "paper", "--method", "prefix"],
        capsys,
    )
    assert code == 1 and "error" in out and "not finite" in out


# -------------------------------------------------------------------- Python API messages


@pytest.mark.usefixtures("without_runtime_typecheck")
def test_python_api_messages_say_what_was_expected():
    from theory.model import forward
    from theory.params import init_params
    from theory.registry import METHODS
    from theory.trials import TrialShape, draw_trial
    from theory.verify import replay, run_verify

    gpt = ARCHITECTURES["gpt"]
    params = init_params(gpt, jax.random.PRNGKey(0))
    with pytest.raises(ToolkitError, match=r"tokens: expected an array of token ids.*got list"):
        forward(params, gpt, [1, 2, 3])
    with pytest.raises(ToolkitError, match=r"run_verify.*list of theorem ids.*\['relative_att"):
        run_verify("relative_attention")
    with pytest.raises(ToolkitError, match=r"arch: expected an Architecture.*got str 'gpt'"):
        forward(params, "gpt", jnp.arange(3))
    with pytest.raises(ToolkitError, match=r"trial: expected an int in \[0, 2\^32\), got -1"):
        replay("relative_attention", "gpt", "prefix", 0, -1)
    with pytest.raises(ToolkitError, match=r"seed: expected an int in \[0, 2\^32\)"):
        replay("relative_attention", "gpt", "prefix", 2**70, 0)
    with pytest.raises(ToolkitError, match=r"n_p: expected an int >= 1, got -1"):
        run_verify(["relative_attention"], ["gpt"], ["prefix"], shape=TrialShape(n_p=-1))
    with pytest.raises(ToolkitError, match=r"n_p: expected an int >= 1, got -1"):
        replay("relative_attention", "gpt", "prefix", 0, 0, TrialShape(n_p=-1))
    with pytest.raises(ToolkitError, match=r"TrialShape.n: expected an int >= 1, got 0"):
        draw_trial(gpt, METHODS["prefix"], jax.random.PRNGKey(0), TrialShape(n=0))


# ------------------------------------------------------------------ progress on long work


def test_verify_shows_progress_on_a_terminal_only(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    argv = ["verify", "--architecture", "paper", "--architecture", "gpt", "--trials", "1"]
    argv += ["--theorem", "relative_attention", "--method", "prefix"]
    code, out, err = run_cli([*argv, "--json", str(tmp_path / "a.json")], capsys)
    assert code == 0 and "checked paper" in err and "checked gpt" in err and "(2/2)" in err
    code, out2, err = run_cli([*argv, "--quiet", "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0 and err == ""
    rows = [json.loads((tmp_path / n).read_text())["results"] for n in ("a.json", "b.json")]
    assert rows[0] == rows[1]  # progress never reaches the JSON
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and err == ""
