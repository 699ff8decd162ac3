"""A theorem at one numeric instance: its derivation at random numbers, its check on one trial.

:func:`symbolic_instance` evaluates every step of a derivation at one random instance (every
free symbol and indexed entry drawn from a seeded ``random.Random``; indexed sums expanded;
undefined functions replaced by a fixed smooth function): each step's lhs and rhs as numbers.
:func:`numeric_instance` runs the theorem's JAX check on one random trial with the same seed,
and its ``instance`` hook, which evaluates the symbolic conclusion AT THE JAX RUN'S NUMBERS next
to the JAX value of the same quantity. :func:`substitute` bundles both with a verdict; the
command line renders it (``prefix-theory derive THEOREM --substitute``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import jax
import sympy as sp

from theory.errors import ToolkitError
from theory.registry import ARCHITECTURES, METHODS
from theory.theorem import Theorem
from theory.trials import check_index, draw_trial


def _value_for(symbol: sp.Symbol, rng: random.Random):
    if symbol.is_integer:
        return rng.randint(2, 4) if symbol.is_positive else rng.randint(0, 3)
    if symbol.is_positive or symbol.is_nonnegative:
        return sp.Rational(rng.randint(5, 40), 10)
    return sp.Rational(rng.randint(-20, 20), 10)


def _evaluate(expr, values: dict, rng: random.Random):
    """Numeric value of ``expr``: free symbols, then indexed entries (once sums are expanded), drawn
    into ``values``; an undefined function ``F`` becomes the fixed smooth function
    ``sin(c x) + x / 2``."""
    from sympy.core.function import AppliedUndef

    for _ in range(6):
        expr = expr.xreplace(values).doit()
        expr = expr.replace(
            lambda e: isinstance(e, AppliedUndef),
            lambda e: (
                sp.sin(
                    values.setdefault(sp.Symbol(f"c_{e.func}"), sp.Rational(rng.randint(5, 20), 10))
                    * e.args[0]
                )
                + e.args[0] / 2
            ),
        )
        labels = {a.base.label for a in expr.atoms(sp.Indexed)}
        free = [
            s
            for s in expr.free_symbols
            if type(s) is sp.Symbol and s not in values and s not in labels
        ]
        indexed = [
            a
            for a in expr.atoms(sp.Indexed)
            if a not in values and all(i.is_number for i in a.indices)
        ]
        if free:
            for s in sorted(free, key=str):
                values[s] = _value_for(s, rng)
        elif indexed:
            for a in sorted(indexed, key=str):
                values[a] = sp.Rational(rng.randint(-20, 20), 10)
        else:
            break
    return sp.N(expr.xreplace(values), 15)


def symbolic_instance(theorem: Theorem, seed: int) -> tuple[list[tuple], dict]:
    """Every step of the derivation at one random instance:
    ``(step number, relation, lhs, rhs, holds)``."""
    derivation = theorem.derivation()
    definitions = derivation.definition_map
    rng = random.Random(seed)
    values: dict = {}
    rows = []
    for k, step in enumerate(derivation.steps, 1):
        lhs = _evaluate(_expand(step.lhs, definitions), values, rng)
        rhs = _evaluate(_expand(step.rhs, definitions), values, rng)
        holds = _numeric_relation(lhs, rhs, step.relation)
        rows.append((k, step.relation, lhs, rhs, holds))
    return rows, values


def _expand(expr, definitions):
    expr = sp.sympify(expr)
    for _ in range(20):
        new = expr.xreplace(definitions)
        if new == expr:
            return expr
        expr = new
    return expr


def _numeric_relation(lhs, rhs, relation: str) -> bool:
    try:
        a, b = complex(lhs), complex(rhs)
    except TypeError:
        return False
    if relation == "=":
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    a, b = a.real, b.real
    return {"<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[relation]


@dataclass
class Instance:
    """One theorem at one numeric instance (see the module doc)."""

    theorem: str
    seed: int
    architecture: str
    method: str
    values: dict  # the drawn symbol values
    steps: list  # (step number, relation, lhs, rhs, agrees)
    rows: list  # (label, symbolic value at the JAX numbers, JAX value)
    residual: float  # the numeric check on the trial
    tolerance: float
    expected: str  # "holds" | "fails"
    reason: str

    @property
    def verdict(self) -> str:
        """ "holds" | "fails" for the numeric check; "error" when its residual is not finite."""
        if not math.isfinite(self.residual):
            return "error"
        return "holds" if self.residual <= self.tolerance else "fails"

    @property
    def steps_agree(self) -> bool:
        return all(agrees for *_, agrees in self.steps)

    @property
    def as_expected(self) -> bool:
        """Every step agrees and the check's verdict is the expected one."""
        return self.steps_agree and self.verdict == self.expected


def substitute(
    theorem: Theorem,
    seed: int = 0,
    architecture: str | None = None,
    progress: Callable[[str], None] | None = None,
    **instance_inputs,
) -> Instance:
    """The derivation at a random instance and the JAX side on one random trial (same seed).

    ``architecture``: default ``paper``, or the first registered architecture the theorem
    applies to; the method is the theorem's first that runs there. ``instance_inputs`` go to the
    theorem's ``instance`` hook (e.g. the constructions' counts for ``capacity``);
    ``progress(message)``, when given, is told each stage."""
    say = progress or (lambda message: None)
    check_index("seed", seed)
    if architecture is None:
        names = ["paper", *ARCHITECTURES]
        architecture = next((a for a in names if theorem.applies(ARCHITECTURES[a])), "paper")
    arch = ARCHITECTURES.lookup(architecture)
    runnable = [m for m in theorem.method_names() if METHODS[m].applies(arch)]
    if not theorem.applies(arch) or not runnable:
        raise ToolkitError(
            f"theorem {theorem.id!r} does not apply to architecture {architecture!r} (it "
            f"requires {', '.join(theorem.requires)}; the architecture has "
            f"{', '.join(sorted(arch.features))})"
        )
    say(f"derive --substitute {theorem.id}: the derivation at random numbers (sympy)")
    steps, values = symbolic_instance(theorem, seed)
    method = METHODS.lookup(runnable[0])
    say(f"derive --substitute {theorem.id}: one random trial on {arch.name} (JAX)")
    trial = draw_trial(arch, method, jax.random.PRNGKey(seed))
    rows = []
    if theorem.instance is not None:
        rows = list(theorem.instance(arch, trial, **instance_inputs))
    say(f"derive --substitute {theorem.id}: the numeric check on {arch.name} (JAX)")
    residual = float(theorem.check(arch, trial))
    expected, reason = theorem.expectation(arch, method)
    return Instance(
        theorem.id,
        seed,
        arch.name,
        method.name,
        values,
        steps,
        rows,
        residual,
        theorem.tolerance,
        expected,
        reason,
    )
