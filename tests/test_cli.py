"""The prefix-theory CLI: verify's table and JSON, exit codes, derive."""

import json
import subprocess
import sys

import pytest

from cli.main import main
from theory.architecture import ARCHITECTURES
from theory.verify import replay, run_verify


def test_verify_subset_json_and_exit_code(tmp_path, capsys):
    out = tmp_path / "v.json"
    code = main(
        [
            "verify",
            "--architecture",
            "paper",
            "--method",
            "prefix",
            "--method",
            "finetune_rank1_WQ",
            "--trials",
            "4",
            "--seed",
            "3",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert (
        "relative_attention" in table
        and f"{len(results)}/{len(results)} verdicts as expected" in table
    )
    assert {"relative_attention", "convex_output"} <= {r["theorem"] for r in results}
    assert {r["method"] for r in results} == {"prefix", "finetune_rank1_WQ"}
    for r in results:
        assert set(r) >= {
            "theorem",
            "architecture",
            "expected",
            "verdict",
            "max_residual",
            "trials",
        }
        assert r["trials"] == 4 and r["verdict"] == r["expected"]
        if r["expected"] == "holds":
            assert r["max_residual"] <= 1e-10
        else:
            assert r["max_residual"] > 1e-3  # violations are many orders above the tolerance


def test_verify_reports_unexpected_with_witness_and_exits_1(monkeypatch, capsys):
    """An architecture that is broken but claims the theorem holds must be reported, not crash."""
    lying = ARCHITECTURES["broken-denominator"].replace(
        name="lying", expectations=(), negative_control=False
    )
    monkeypatch.setitem(ARCHITECTURES, "lying", lying)
    code = main(
        [
            "verify",
            "--architecture",
            "lying",
            "--method",
            "prefix",
            "--theorem",
            "relative_attention",
            "--trials",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "UNEXPECTED (witness: seed 0, trial" in out
    [result] = run_verify(["relative_attention"], ["lying"], ["prefix"], trials=3)
    assert result.verdict == "fails"
    assert replay(
        "relative_attention", "lying", "prefix", 0, result.witness_trial
    ) == pytest.approx(result.max_residual, rel=1e-9)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "--theorem", "nope"], "unknown theorem 'nope'; expected one of: "),
        (
            ["verify", "--architecture", "gtp"],
            "unknown architecture 'gtp' (did you mean 'gpt'?); expected one of: ",
        ),
        (["verify", "--trials", "0"], "argument --trials: expected an int >= 1, got 0"),
        (["derive", "nope"], "unknown theorem 'nope'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_argparse_errors_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "verify", "--trials", "many"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--trials: expected an integer, got 'many'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_derive_prints_checked_steps(capsys):
    assert main(["derive", "relative_attention"]) == 0
    out = capsys.readouterr().out
    assert "[checked]" in out and "FAILED" not in out
    assert main(["derive", "convex_output", "--latex"]) == 0
    assert "\\frac" in capsys.readouterr().out
    assert main(["derive", "--list"]) == 0
    assert "convex_output" in capsys.readouterr().out
