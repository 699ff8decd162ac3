"""The theorem registry.

A :class:`Theorem` bundles: an id, a one-line statement, the paper section, its
assumptions, a sympy derivation (every step machine-checked), and a numeric
check.  The numeric check is a pure JAX function ``check(arch, trial) ->
residual`` (a scalar, >= 0) that ``verify`` jits and vmaps over random trials
(:mod:`theory.trials`); the theorem is reported to hold on a trial when the
residual is at most ``tolerance`` (default :data:`theory.tolerances.TOL_F64`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from theory.architecture import Architecture
from theory.errors import unknown_name
from theory.methods import METHODS, Method, default_expectation
from theory.tolerances import TOL_F64


@dataclass(frozen=True)
class Theorem:
    id: str
    statement: str
    section: str
    assumptions: tuple
    derivation: Callable  # () -> theory.symbolic.Derivation
    check: Callable  # (arch, trial) -> scalar residual (jittable)
    methods: tuple = ()  # method names the check runs with (default: all registered)
    tolerance: float = TOL_F64
    expect: Optional[Callable] = field(default=None)  # (arch, method) -> (expected, reason)
    default_run: Optional[Callable] = (
        None  # arch -> bool: run by a `verify` that names neither a theorem nor
    )
    #                                            an architecture (None: every one); keeps the default run fast

    def in_default_run(self, arch: Architecture) -> bool:
        return self.default_run is None or bool(self.default_run(arch))

    def method_names(self) -> tuple:
        return self.methods or tuple(METHODS)

    def expectation(self, arch: Architecture, method: Method) -> tuple[str, str]:
        """(expected verdict, reason) on ``arch`` under ``method``."""
        if self.expect is not None:
            return self.expect(arch, method)
        if method.changes_weights:
            return "fails", f"{method.name} changes the weights (negative control)"
        declared = arch.expectation(self.id)
        if declared is not None:
            return declared
        return default_expectation(method), "THEORY.md " + self.section


THEOREMS: dict[str, Theorem] = {}


def register_theorem(theorem: Theorem) -> Theorem:
    """Add a theorem to the registry (``verify``, ``derive`` and the tests pick it up)."""
    THEOREMS[theorem.id] = theorem
    return theorem


def get_theorem(theorem_id: str) -> Theorem:
    if theorem_id not in THEOREMS:
        raise unknown_name("theorem", theorem_id, THEOREMS)
    return THEOREMS[theorem_id]
