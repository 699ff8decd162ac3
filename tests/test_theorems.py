"""Generated from the theorem registry: nothing here names a theorem.

For every registered theorem (plug-ins loaded through ``$PREFIX_THEORY_PLUGINS`` included):
it declares at least one negative control, each control makes the check come out the other way
(one test per (theorem, control)), its derivation verifies step by step, its declaration is
complete, and a built-in theorem lives in the module named after its id.
"""

import sys

import pytest

from theory.registry import THEOREMS
from theory.verify import run_control

CASES = [(t.id, c) for t in THEOREMS.values() for c in t.controls]


@pytest.mark.parametrize("theorem_id", list(THEOREMS))
def test_theorem_declares_a_negative_control(theorem_id):
    assert THEOREMS[theorem_id].controls, (
        f"theorem {theorem_id!r} has no negative control: a check that cannot fail is a defect"
    )


@pytest.mark.parametrize("theorem_id, control", CASES, ids=[f"{t}:{c.name}" for t, c in CASES])
def test_control_comes_out_the_other_way(theorem_id, control):
    result = run_control(THEOREMS[theorem_id], control)
    assert result.ok, result.describe()


@pytest.mark.parametrize("theorem_id", list(THEOREMS))
def test_declaration_is_complete_and_derivation_verifies(theorem_id):
    theorem = THEOREMS[theorem_id]
    assert theorem.statement and theorem.assumptions and theorem.measures.strip()
    assert theorem.section.startswith("§")
    derivation = theorem.derivation()
    assert derivation.steps and derivation.verified(), derivation.render()


@pytest.mark.parametrize("theorem_id", list(THEOREMS))
def test_builtin_theorem_lives_in_the_module_named_after_its_id(theorem_id):
    module = sys.modules[THEOREMS[theorem_id].check.__module__]
    if module.__name__.startswith("theory.theorems."):
        assert module.__name__ == f"theory.theorems.{theorem_id}"
        assert module.THEOREM is THEOREMS[theorem_id]
