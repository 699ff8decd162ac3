"""The catalogue's derivations: every step machine-checked, a broken step caught, the document
fresh, and the ``derive`` command line (--list, --all --markdown, --substitute, usage errors)."""

import dataclasses
from pathlib import Path

import pytest
import sympy as sp

from cli.main import main
from render.derivations import markdown_document
from theory.instance import symbolic_instance
from theory.registry import THEOREMS

CATALOGUE = (
    "single_prefix",
    "bias_span",
    "pre_ln",
    "kv_converse",
    "hierarchy",
    "hierarchy_strict",
    "deeper_first_order",
    "deeper_attention_changes",
    "position_shift",
    "finetune_contrast",
    "capacity",
)
DOC = Path(__file__).resolve().parents[1] / "docs" / "derivations.md"
FLIP = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


@pytest.mark.parametrize("theorem_id", CATALOGUE)
def test_every_step_verifies_and_any_broken_step_is_caught(theorem_id):
    derivation = THEOREMS[theorem_id].derivation()
    definitions = derivation.definition_map
    for i, step in enumerate(derivation.steps):
        assert step.check(definitions).ok, f"step {i + 1} ({step.reason}) does not verify"
        if step.relation == "=":
            broken = dataclasses.replace(step, rhs=2 * step.rhs + sp.Rational(1, 7))
        else:  # an inequality is broken by claiming its negation
            broken = dataclasses.replace(step, relation=FLIP[step.relation])
        assert not broken.check(definitions).ok, (
            f"step {i + 1} ({step.reason}) not caught when broken"
        )


def test_breaking_a_definition_breaks_the_conclusion():
    """Negative control at the level of the model:
    the prefix left out of the softmax denominator."""
    derivation = THEOREMS["single_prefix"].derivation()
    definitions = list(derivation.definitions)
    k = next(i for i, (symbol, _, _) in enumerate(definitions) if str(symbol) == "A^{pt}_{ij}")
    symbol, _, text = definitions[k]
    definitions[k] = (
        symbol,
        sp.Symbol("e_{ij}", positive=True) / sp.Symbol("Z_i", positive=True),
        text,
    )
    broken = dataclasses.replace(derivation, definitions=tuple(definitions))
    assert not broken.verified()
    assert "FAILED" in broken.render()


def test_checked_in_document_is_fresh():
    assert DOC.read_text() == markdown_document(), (
        "docs/derivations.md is stale: run `prefix-theory "
        "derive --all --markdown --output docs/derivations.md`"
    )


def test_document_lists_every_theorem_with_assumptions_and_check():
    text = DOC.read_text()
    for tid in CATALOGUE:
        section = THEOREMS[tid].section
        assert f"## {tid}" in text and f"| {section} |" in text
    assert text.count("**Numeric check**") == len(THEOREMS) and "FAILED" not in text


def test_derive_list_shows_every_theorem_with_its_section(capsys):
    assert main(["derive", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for tid in CATALOGUE:
        [line] = [line for line in lines if line.split()[0] == tid]
        assert THEOREMS[tid].section in line


def test_derive_all_markdown_writes_the_document(tmp_path, capsys, monkeypatch):
    import render.derivations as report

    monkeypatch.setattr(
        report, "markdown_document", lambda: DOC.read_text()
    )  # the rendering is tested above
    out = tmp_path / "d.md"
    assert main(["derive", "--all", "--markdown", "--output", str(out)]) == 0
    assert out.read_text() == DOC.read_text()


def test_substitute_agrees_symbolically_and_with_jax(capsys):
    assert main(["derive", "single_prefix", "--substitute", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "DISAGREES" not in out and out.count("[agrees]") == len(
        THEOREMS["single_prefix"].derivation().steps
    )
    rows = [line for line in out.splitlines() if "JAX value" in line]
    assert len(rows) == 3
    for row in rows:
        assert float(row.split("difference ")[1].rstrip(")")) < 1e-12


def test_symbolic_instance_detects_a_wrong_step():
    thm = THEOREMS["single_prefix"]
    derivation = thm.derivation()
    wrong = dataclasses.replace(derivation.steps[2], rhs=derivation.steps[2].rhs * 2)
    bad = dataclasses.replace(
        thm,
        derivation=lambda: dataclasses.replace(
            derivation, steps=derivation.steps[:2] + (wrong,) + derivation.steps[3:]
        ),
    )
    rows, _ = symbolic_instance(bad, seed=0)
    assert [holds for *_, holds in rows] == [True, True, False] + [True] * (len(rows) - 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["derive"], "derive needs exactly one of: a theorem id, --all, --list; got neither"),
        (["derive", "capacity", "--all"], "got both 'capacity' and --all"),
        (["derive", "--all", "--substitute"], "--substitute takes one theorem id"),
        (
            ["derive", "capacity", "--substitute", "--architecture", "gtp"],
            "unknown architecture 'gtp'",
        ),
    ],
)
def test_derive_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("theorem_id", sorted(THEOREMS))
def test_every_derivation_agrees_at_a_random_instance(theorem_id):
    rows, values = symbolic_instance(THEOREMS[theorem_id], seed=5)
    assert rows and all(holds for *_, holds in rows), rows
