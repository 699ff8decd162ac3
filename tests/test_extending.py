"""The extension API: docs/extending.md's worked example runs, and broken user variants are reported."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from theory.architecture import ARCHITECTURES, Architecture
from theory.attention import ATTENTION_KINDS, AttentionKind, register_attention
from theory.blocks import BlockKind, register_block
from cli.main import main
from theory.errors import ToolkitError
from theory.zoo import load_plugin

ROOT = Path(__file__).resolve().parents[1]


def example_source() -> str:
    """The Python block after the ``<!-- example:my_variants.py -->`` marker in docs/extending.md."""
    doc = (ROOT / "docs" / "extending.md").read_text()
    match = re.search(r"<!-- example:my_variants.py -->\s*```python\n(.*?)```", doc, re.S)
    assert match, "docs/extending.md lost its worked example"
    return match.group(1)


def test_worked_example_is_short():
    assert len(example_source().strip().splitlines()) <= 60


def test_worked_example_runs_end_to_end(tmp_path):
    """A fresh process loads the example through $PREFIX_THEORY_PLUGINS and --plugin; verify checks the new
    architectures, reports the failing one with a witness that replays, and the atlas and the property-test
    strategies include them with no edit anywhere else."""
    module = tmp_path / "my_variants.py"
    module.write_text(example_source())
    script = textwrap.dedent(f"""
        import json, sys
        import theory                                    # loads $PREFIX_THEORY_PLUGINS
        from cli.main import main
        from theory.verify import replay
        from property_tests.strategies import architectures
        drawn = architectures().elements                 # what the property tests sample from
        code = main(["verify", "--plugin", {str(module)!r}, "--architecture", "my-softcap",
                     "--architecture", "my-relu", "--method", "prefix", "--method", "lora_rank1_WK",
                     "--theorem", "relative_attention", "--theorem", "convex_output", "--theorem", "finetune_contrast",
                     "--trials", "4", "--json", {str(tmp_path / "v.json")!r}, "--atlas", {str(tmp_path)!r}])
        rows = json.load(open({str(tmp_path / "v.json")!r}))["results"]
        bad = [r for r in rows if not r["as_expected"] and r["theorem"] in ("relative_attention", "convex_output")]
        replayed = [replay(r["theorem"], r["architecture"], r["method"], r["seed"], r["witness_trial"])
                    for r in bad]
        print("RESULT", json.dumps({{"code": code, "rows": rows, "bad": bad, "replayed": replayed,
                                    "in_property_tests": sorted(set(drawn) & {{"my-softcap", "my-relu"}})}}))
    """)
    env = dict(os.environ, PREFIX_THEORY_PLUGINS=str(module), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    out = json.loads(line[len("RESULT ") :])
    assert out["code"] == 1  # my-relu violates, as the guide says
    assert out["in_property_tests"] == ["my-relu", "my-softcap"]
    rows = {(r["architecture"], r["method"], r["theorem"]): r for r in out["rows"]}
    for theorem in ("relative_attention", "convex_output"):
        assert rows["my-softcap", "prefix", theorem]["verdict"] == "holds"
        assert rows["my-softcap", "prefix", theorem]["max_residual"] <= 1e-10
        assert (
            rows["my-softcap", "lora_rank1_WK", theorem]["max_residual"] > 1e-3
        )  # negative control
        relu = rows["my-relu", "prefix", theorem]
        assert (
            relu["verdict"] == "fails" and not relu["as_expected"] and relu["max_residual"] > 1e-3
        )
    assert (
        rows["my-softcap", "prefix", "finetune_contrast"]["verdict"] == "fails"
    )  # declared in the example
    assert all(r["architecture"] == "my-relu" for r in out["rows"] if not r["as_expected"])
    assert all(r["verdict"] != "error" for r in out["rows"])
    bad = out["bad"]
    assert len(bad) == 2
    for r, again in zip(bad, out["replayed"]):  # the witness (seed, trial) reproduces the residual
        assert again == pytest.approx(r["max_residual"], rel=1e-9)
    assert "UNEXPECTED (witness: seed 0, trial" in proc.stdout
    atlas = (tmp_path / "atlas.md").read_text()
    assert (
        "| `my-softcap` |" in atlas and "UNEXPECTED" in atlas and (tmp_path / "atlas.png").exists()
    )


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
        r"relative_attention\s+paper\s+buggy_method\s+holds\s+error\s+nan\s+2\s+ERROR \(the check "
        r"raised ValueError: a user's method bug\)",
        out,
    )
    assert re.search(r"relative_attention\s+paper\s+prefix\s+holds\s+holds", out)
