"""The extension API: docs/extending.md's worked example runs, and broken user variants are
reported."""

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.main import main
from theory.architecture import Architecture
from theory.attention import AttentionKind, register_attention
from theory.blocks import BlockKind, register_block
from theory.errors import ToolkitError
from theory.registry import ARCHITECTURES, ATTENTION_KINDS
from theory.zoo import load_plugin

ROOT = Path(__file__).resolve().parents[1]


def example_source(name: str = "my_variants.py") -> str:
    """The Python block after the ``<!-- example:NAME -->`` marker in docs/extending.md."""
    doc = (ROOT / "docs" / "extending.md").read_text()
    match = re.search(rf"<!-- example:{re.escape(name)} -->\s*```python\n(.*?)```", doc, re.S)
    assert match, f"docs/extending.md lost its example {name}"
    return match.group(1)


def run_python(script: str, cwd, **env):
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("name", ["my_variants.py", "my_theorem.py"])
def test_worked_examples_are_short(name):
    assert len(example_source(name).strip().splitlines()) <= 60


def test_worked_example_runs_end_to_end(tmp_path):
    """A fresh process loads the example through $PREFIX_THEORY_PLUGINS and --plugin; verify
    checks the new architectures, reports the failing one with a witness that replays, and the
    atlas and the property-test strategies include them with no edit anywhere else."""
    module = tmp_path / "my_variants.py"
    module.write_text(example_source())
    script = textwrap.dedent(f"""
        import json, sys
        from cli.main import main
        from theory.verify import replay
        code = main(["verify", "--plugin", {str(module)!r}, "--architecture", "my-softcap",
                     "--architecture", "my-softplus",
                     "--method", "prefix", "--method", "lora_rank1_WK",
                     "--theorem", "relative_attention", "--theorem", "convex_output",
                     "--theorem", "finetune_contrast", "--trials", "4",
                     "--json", {str(tmp_path / "v.json")!r}, "--atlas", {str(tmp_path)!r}])
        from property_tests.strategies import architectures
        drawn = architectures().elements                 # what the property tests sample from
        rows = json.load(open({str(tmp_path / "v.json")!r}))["results"]
        bad = [r for r in rows if not r["as_expected"]
               and r["theorem"] in ("relative_attention", "convex_output")]
        replayed = [replay(r["theorem"], r["architecture"], r["method"], r["seed"],
                           r["witness_trial"]) for r in bad]
        mine = sorted(set(drawn) & {{"my-softcap", "my-softplus"}})
        print("RESULT", json.dumps({{"code": code, "rows": rows, "bad": bad,
                                    "replayed": replayed, "in_property_tests": mine}}))
    """)
    proc = run_python(script, tmp_path, PREFIX_THEORY_PLUGINS=str(module))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    out = json.loads(line[len("RESULT ") :])
    assert out["code"] == 1  # my-softplus violates, as the guide says
    assert out["in_property_tests"] == ["my-softcap", "my-softplus"]
    rows = {(r["architecture"], r["method"], r["theorem"]): r for r in out["rows"]}
    for theorem in ("relative_attention", "convex_output"):
        assert rows["my-softcap", "prefix", theorem]["verdict"] == "holds"
        assert rows["my-softcap", "prefix", theorem]["max_residual"] <= 1e-10
        assert rows["my-softcap", "lora_rank1_WK", theorem]["max_residual"] > 1e-3  # control
        relu = rows["my-softplus", "prefix", theorem]
        assert relu["verdict"] == "fails" and not relu["as_expected"]
        assert relu["max_residual"] > 1e-3
    assert rows["my-softcap", "prefix", "finetune_contrast"]["verdict"] == "fails"  # declared
    assert all(r["architecture"] == "my-softplus" for r in out["rows"] if not r["as_expected"])
    assert all(r["verdict"] != "error" for r in out["rows"])
    bad = out["bad"]
    assert len(bad) == 2
    for r, again in zip(bad, out["replayed"], strict=True):  # the witness replays exactly
        assert again == pytest.approx(r["max_residual"], rel=1e-9)
    assert "UNEXPECTED (witness: seed 0, trial" in proc.stdout
    atlas = (tmp_path / "atlas.md").read_text()
    assert "| `my-softcap` |" in atlas and "UNEXPECTED" in atlas
    assert (tmp_path / "atlas.png").exists()


def test_declaring_the_failures_makes_verify_green(tmp_path):
    """The guide's "declare it and verify is green again" snippet, run as written."""
    declared = re.search(
        r"<!-- example:declared -->\s*```python\n(.*?)```",
        (ROOT / "docs" / "extending.md").read_text(),
        re.S,
    ).group(1)
    module = tmp_path / "my_variants_declared.py"
    module.write_text(example_source() + "\n" + declared)
    script = textwrap.dedent(f"""
        from cli.main import main
        raise SystemExit(main(["verify", "--plugin", {str(module)!r}, "--architecture",
                               "my-softplus", "--trials", "4"]))
    """)
    proc = run_python(script, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "UNEXPECTED" not in proc.stdout


def test_adding_a_theorem_from_the_guide_reaches_every_part(tmp_path):
    """The guide's theorem, loaded as a plug-in: derive, verify, the derivations document and
    the generated control tests pick it up; no test names it."""
    module = tmp_path / "my_theorem.py"
    module.write_text(example_source("my_theorem.py"))
    env = {"PREFIX_THEORY_PLUGINS": str(module)}
    script = textwrap.dedent("""
        import json
        from cli.main import main
        codes = [main(["derive", "repeated_prefix"]),
                 main(["verify", "--theorem", "repeated_prefix", "--architecture", "gpt",
                       "--architecture", "broken-denominator", "--trials", "3"])]
        from render.derivations import markdown_document
        print("RESULT", json.dumps({"codes": codes,
                                    "documented": "## repeated_prefix" in markdown_document()}))
    """)
    proc = run_python(script, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    out = json.loads(line[len("RESULT ") :])
    assert out == {"codes": [0, 0], "documented": True}
    assert "[checked]" in proc.stdout and "2/2 verdicts as expected" in proc.stdout
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_theorems.py"),
            "-k",
            "repeated_prefix",
        ],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert re.search(r"\b4 passed\b", tests.stdout), tests.stdout[-1000:]


def test_a_theorem_without_a_control_fails_the_generated_test(monkeypatch):
    """Negative control of the generated tests: delete a theorem's controls and its test fails."""
    from tests.test_theorems import test_theorem_declares_a_negative_control
    from theory.registry import THEOREMS

    stripped = dataclasses.replace(THEOREMS["relative_attention"], id="stripped", controls=())
    monkeypatch.setitem(THEOREMS, "stripped", stripped)
    with pytest.raises(AssertionError, match="no negative control"):
        test_theorem_declares_a_negative_control("stripped")


def _raising_weights(q, k, arch, bias, mask, virtual):
    return q @ k, q  # a user's shape bug: raises while tracing


def test_variant_that_raises_is_an_error_row_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setitem(
        ATTENTION_KINDS, "buggy", AttentionKind("buggy", True, _raising_weights, "raises")
    )
    arch = ARCHITECTURES["paper"].replace(name="buggy-arch", attention="buggy")
    monkeypatch.setitem(ARCHITECTURES, "buggy-arch", arch)
    code = main(
        [
            "verify",
            "--architecture",
            "buggy-arch",
            "--architecture",
            "paper",
            "--method",
            "prefix",
            "--theorem",
            "relative_attention",
            "--trials",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR (the check raised TypeError" in out
    assert re.search(
        r"relative_attention\s+paper\s+prefix\s+holds\s+holds", out
    )  # the other rows still ran
    assert "Traceback" not in out


@pytest.mark.usefixtures("without_runtime_typecheck")  # what users see: our own validation
def test_plugin_and_registration_errors_are_clear(tmp_path, capsys):
    with pytest.raises(ToolkitError, match="no such file"):
        load_plugin(str(tmp_path / "missing.py"))
    with pytest.raises(ToolkitError, match="expected an importable module"):
        load_plugin("no_such_module_for_prefix_theory")
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise RuntimeError('boom')\n")
    assert main(["verify", "--plugin", str(broken), "--architecture", "paper"]) == 2
    assert "plugin" in capsys.readouterr().err
    with pytest.raises(ToolkitError, match="already registered"):
        register_attention(AttentionKind("softmax", True, _raising_weights, "a second softmax"))
    with pytest.raises(ToolkitError, match="already registered"):
        register_block(BlockKind("sandwich", "another sandwich", forward=lambda *a: None))
    with pytest.raises(ToolkitError, match="default_methods must be a tuple"):
        ARCHITECTURES["paper"].replace(name="x", default_methods="prefix")
    with pytest.raises(ToolkitError, match="unknown method in default_methods"):
        from theory.verify import plan

        bad = ARCHITECTURES["paper"].replace(name="bad-defaults", default_methods=("nope",))
        ARCHITECTURES["bad-defaults"] = bad
        try:
            plan(architectures=["bad-defaults"])
        finally:
            del ARCHITECTURES["bad-defaults"]
    assert isinstance(ARCHITECTURES["paper"], Architecture)


def test_one_raising_method_does_not_take_down_its_architecture(monkeypatch, capsys):
    """All methods of an architecture compile as one function; when one of them raises,
    only its rows become ERROR rows and the architecture's other methods are still checked."""
    from theory.methods import METHODS, Method

    def raising_draw(arch, params, key, n_p):
        raise ValueError("a user's method bug")

    monkeypatch.setitem(
        METHODS, "buggy_method", Method("buggy_method", False, raising_draw, "raises")
    )
    code = main(
        [
            "verify",
            "--architecture",
            "paper",
            "--method",
            "prefix",
            "--method",
            "buggy_method",
            "--theorem",
            "relative_attention",
            "--trials",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(
        r"relative_attention\s+paper\s+buggy_method\s+holds\s+error\s+nan\s+-\s+-\s+2\s+"
        r"ERROR \(the check raised ValueError: a user's method bug\)",
        out,
    )
    assert re.search(r"relative_attention\s+paper\s+prefix\s+holds\s+holds", out)
