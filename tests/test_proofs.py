"""The Coq development (proofs/): it compiles, every exported theorem rests only on the
standard real-number axioms, the negative controls are rejected by coqc, and
``prefix-theory prove`` has the documented exit codes.

These tests need coqc (``make coq`` installs Debian's Coq and Coquelicot): without it they
FAIL with the install command, they are never skipped.  The development is compiled once per
session (module fixture).
"""

import shutil
import time

import pytest

from cli.main import main
from proofs import (
    ALLOWED_AXIOMS,
    CONTROLS,
    ENTRIES,
    INSTALL_COMMAND,
    REGISTERED_IDS,
    CoqNotFound,
    ProofsError,
    compile_development,
    coq_statement,
    exported_theorems,
    find_coqc,
    get_entry,
    standard_axioms,
)
from proofs.assumptions import forbidden_commands, parse_assumptions, print_assumptions
from proofs.controls import run_control
from proofs.coq import ROOT, development_files, module_of
from theory.registry import THEOREMS

COMPILE_BUDGET_S = 180  # the whole development on 2 cores


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    start = time.perf_counter()
    compiled = compile_development(tmp_path_factory.mktemp("coq-build"))
    compiled.wall = time.perf_counter() - start
    return compiled


def test_development_compiles_within_budget(build):
    failed = {m: r.message for m, r in build.files.items() if not r.ok}
    assert not failed, failed
    assert set(build.files) == {module_of(f) for f in development_files()}
    assert build.version.startswith("8.16")
    assert build.wall < COMPILE_BUDGET_S


def test_catalogue_covers_every_registered_theorem():
    assert set(REGISTERED_IDS) == set(THEOREMS)
    exported = {f"{m}.{n}" for m, n in exported_theorems()}
    for entry in ENTRIES.values():
        assert entry.general_in
        assert set(entry.names) <= exported, entry.theorem_id
        assert entry.theorem_id in coq_statement(entry.theorem_id) or entry.coq[0][1] in (
            coq_statement(entry.theorem_id)
        )
    with pytest.raises(ProofsError, match="unknown theorem 'nope'; expected one of: "):
        get_entry("nope")


def test_allowed_axioms_are_those_of_the_standard_reals(build):
    assert standard_axioms(build.coqc) == set(ALLOWED_AXIOMS)


def test_every_exported_theorem_rests_only_on_standard_axioms(build):
    names = exported_theorems()
    assert len(names) > 100
    report = print_assumptions(build, names)
    assert not report.error, report.error
    assert report.union and set(report.union) <= set(ALLOWED_AXIOMS)
    assert report.violations() == {}
    assert set(report.checked) == {f"{m}.{n}" for m, n in names}
    assert forbidden_commands() == {}


def test_parse_assumptions():
    text = (
        '     = "@@ A.x"\n     : string\nAxioms:\nFoo.bar : nat\nBaz.qux\n  : forall P, P\n'
        '     = "@@ A.y"\n     : string\nClosed under the global context\n'
    )
    assert parse_assumptions(text) == {"A.x": ("Foo.bar", "Baz.qux"), "A.y": ()}


def _planted_source(tmp_path):
    """A copy of the development where ConvexOutput.v has an Axiom used by a new theorem and
    an Admitted proof."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "theories", source / "theories")
    shutil.copytree(ROOT / "negative", source / "negative")
    shutil.copy2(ROOT / "_CoqProject", source / "_CoqProject")
    path = source / "theories" / "ConvexOutput.v"
    text = path.read_text()
    start = text.index("Theorem convex_output_weights")
    end = text.index("Qed.", start)
    text = text[:end] + "Admitted." + text[end + len("Qed.") :]
    text += "\nAxiom planted : forall x : R, x = 0.\nTheorem planted_use : 1 = 0.\n"
    text += "Proof. apply planted. Qed.\n"
    path.write_text(text)
    return source


def test_planted_axiom_and_admitted_are_detected(build, tmp_path, monkeypatch, capsys):
    """Negative control of the assumption check, through `prefix-theory prove` (exit 1).  The
    compiled build is copied, so only the planted file is compiled again."""
    import json

    import proofs.runner

    source = _planted_source(tmp_path)
    shutil.copytree(build.directory, tmp_path / "build")
    assert forbidden_commands(source) == {"theories/ConvexOutput.v": ["Admitted", "Axiom"]}
    real_prove = proofs.runner.prove
    monkeypatch.setattr(
        proofs.runner,
        "prove",
        lambda ids, build_dir, jobs, controls, each_theorem: real_prove(
            ids, tmp_path / "build", jobs, controls, source=source, each_theorem=each_theorem
        ),
    )
    assert main(["prove", "convex_output", "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "convex_output              FAILED" in out
    assert "ConvexOutput.convex_output_weights rests on convex_output_weights" in out
    assert "ConvexOutput.planted_use: planted" in out
    per_theorem = json.loads((tmp_path / "r.json").read_text())["assumptions"]["per_theorem"]
    assert set(per_theorem["ConvexOutput.convex_output"]) <= set(ALLOWED_AXIOMS)  # untouched
    assert set(per_theorem["Softmax.softmax_sum"]) <= set(ALLOWED_AXIOMS)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_negative_control_is_rejected_inside_the_false_proof(build, control):
    result = run_control(build, control)
    assert result.rejected, f"coqc accepted the false variant {control.false_theorem}"
    assert result.in_false_proof, (result.error_line, result.false_proof_lines, result.message)
    assert result.tactic_failure, result.message
    assert control.refuted_by in exported_theorems()  # its negation is proved (and checked)


def test_prove_exit_codes(build, capsys, monkeypatch):
    assert main(["prove", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown theorem 'nope'" in err and "relative_attention" in err
    # reuse the compiled build: only Print Assumptions runs again
    assert main(["prove", "single_prefix", "--build-dir", str(build.directory)]) == 0
    out = capsys.readouterr().out
    assert "single_prefix              proved" in out and "1/1 proved" in out
    monkeypatch.setenv("COQC", "/nonexistent/coqc")
    assert main(["prove", "single_prefix"]) == 2
    assert INSTALL_COMMAND in capsys.readouterr().err
    with pytest.raises(CoqNotFound, match="apt-get install -y coq libcoq-coquelicot"):
        find_coqc()


def test_negative_control_check_fails_when_the_claim_is_made_true(build, tmp_path):
    """The rejection check itself can fail: with the false claim replaced by the true one
    (V behaviours instead of V + 1), coqc accepts the file and the control is not ok."""
    import dataclasses

    copy = dataclasses.replace(build, directory=tmp_path / "build")
    shutil.copytree(build.directory, copy.directory)
    control = next(c for c in CONTROLS if c.name == "hard_prompt_V_plus_1")
    path = copy.directory / control.file
    path.write_text(path.read_text().replace("S V", "V").replace("seq 0 (S V)", "seq 0 V"))
    result = run_control(copy, control)
    assert not result.rejected and not result.ok
