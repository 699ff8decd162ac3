"""Derivations: every step is machine-checked, and a broken step is caught."""

import dataclasses

import pytest
import sympy as sp

from theory.registry import THEOREMS
from theory.symbolic import Derivation, Step


@pytest.mark.parametrize("theorem_id", ["relative_attention", "convex_output"])
def test_core_derivations_verify(theorem_id):
    derivation = THEOREMS[theorem_id].derivation()
    results = derivation.check()
    assert results and all(r.ok for r in results), [
        (r.step.reason, r.residual) for r in results if not r.ok
    ]


@pytest.mark.parametrize("theorem_id", ["relative_attention", "convex_output"])
def test_breaking_any_step_is_detected(theorem_id):
    """Negative control: perturb each step in turn; that step (and only it) must fail."""
    derivation = THEOREMS[theorem_id].derivation()
    for i, step in enumerate(derivation.steps):
        broken_step = dataclasses.replace(step, rhs=2 * step.rhs + sp.Rational(1, 7))
        steps = derivation.steps[:i] + (broken_step,) + derivation.steps[i + 1 :]
        broken = dataclasses.replace(derivation, steps=steps)
        results = broken.check()
        assert not results[i].ok, f"step {i} ({step.reason}) was not caught when broken"
        assert not broken.verified()
        assert "FAILED" in broken.render()


def test_wrong_factor_fails():
    """The classic mistake (forgetting the prefix in the denominator) does not verify."""
    e, Z, P = sp.symbols("e Z P", positive=True)
    wrong = Derivation(
        "wrong", steps=(Step(e / Z, (e / Z) * (1 - P / (Z + P)), "prefix outside denominator"),)
    )
    assert not wrong.verified()


def test_inequality_steps_use_assumptions():
    x = sp.Symbol("x", positive=True)
    assert Step(x / (x + 1), 1, "a share is below 1", relation="<").check({}).ok
    assert not Step(x, 1, "unprovable", relation="<=").check({}).ok
    assert Step(x**2 + 1, 1, "square is non-negative", relation=">=").check({}).ok
