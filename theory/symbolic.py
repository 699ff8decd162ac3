"""Machine-checked symbolic derivations (sympy).

A :class:`Derivation` has definitions (``name := expression``) and a list of
:class:`Step` s.  Each step claims ``lhs <relation> rhs``; :meth:`Step.check`
substitutes the definitions and asks sympy to simplify ``lhs - rhs``: an ``=``
step passes only if the difference simplifies to exactly 0, an inequality step
only if sympy can prove the sign from the symbols' assumptions.  Nothing is
evaluated at a numeric instance, so a passing derivation holds for every value
of its symbols (e.g. every number of content and prefix positions, when sums
are represented by positive symbols such as ``Z_i`` and ``P_i``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import sympy as sp

RELATIONS = ("=", "<=", ">=", "<", ">")


class StepResult(NamedTuple):
    step: Step
    ok: bool
    residual: sp.Expr  # simplified lhs - rhs after substituting definitions


@dataclass(frozen=True)
class Step:
    """One claimed relation ``lhs <relation> rhs`` with the reason it holds."""

    lhs: sp.Expr | int | float
    rhs: sp.Expr | int | float
    reason: str
    relation: str = "="

    def check(self, definitions: dict) -> StepResult:
        lhs = _expand_definitions(sp.sympify(self.lhs), definitions)
        rhs = _expand_definitions(sp.sympify(self.rhs), definitions)
        diff = sp.simplify(sp.together(lhs - rhs))
        if self.relation == "=":
            ok = diff == 0
        elif self.relation in ("<=", "<"):
            ok = bool((-diff).is_nonnegative if self.relation == "<=" else (-diff).is_positive)
        elif self.relation in (">=", ">"):
            ok = bool(diff.is_nonnegative if self.relation == ">=" else diff.is_positive)
        else:
            raise ValueError(f"relation must be one of {RELATIONS}, got {self.relation!r}")
        return StepResult(self, bool(ok), diff)


def _expand_definitions(expr, definitions: dict, depth: int = 20):
    for _ in range(depth):
        new = expr.xreplace(definitions)
        if new == expr:
            return expr
        expr = new
    return expr


@dataclass(frozen=True)
class Derivation:
    """A derivation: definitions, then checked steps; the last step is the conclusion."""

    title: str
    definitions: tuple = ()  # ((symbol, expression, description), ...)
    steps: tuple = ()  # (Step, ...)
    notes: tuple = field(default=())  # free-text remarks printed after the steps

    @property
    def definition_map(self) -> dict:
        return {symbol: expr for symbol, expr, _ in self.definitions}

    def check(self) -> list[StepResult]:
        """Check every step; returns one result per step."""
        defs = self.definition_map
        return [step.check(defs) for step in self.steps]

    def verified(self) -> bool:
        return all(result.ok for result in self.check())

    def render(self, style: str = "text") -> str:
        """Human-readable derivation with each step's check ("text", "latex" or "markdown")."""
        show = sp.latex if style in ("latex", "markdown") else sp.sstr
        wrap = (lambda s: f"${s}$") if style == "markdown" else (lambda s: s)
        rel = {
            "=": "=",
            "<=": r"\le" if style != "text" else "<=",
            ">=": r"\ge" if style != "text" else ">=",
            "<": "<",
            ">": ">",
        }
        lines = [f"{'### ' if style == 'markdown' else ''}{self.title}", ""]
        if self.definitions:
            lines.append("Definitions:")
            for symbol, expr, description in self.definitions:
                assign = r":=" if style != "text" else ":="
                bullet = "- " if style == "markdown" else "  "
                definition = wrap(f"{show(symbol)} {assign} {show(expr)}")
                lines.append(f"{bullet}{definition}  ({description})")
            lines.append("")
        lines.append(
            "Steps (each checked by sympy: lhs - rhs simplifies to 0, or its sign is proved):"
        )
        for i, result in enumerate(self.check(), 1):
            s = result.step
            mark = "checked" if result.ok else f"FAILED (residual {sp.sstr(result.residual)})"
            formula = wrap(f"{show(s.lhs)} {rel[s.relation]} {show(s.rhs)}")
            lines.append(f"{i}. {formula}    [{mark}] — {s.reason}")
        for note in self.notes:
            lines.append("")
            lines.append(note)
        return "\n".join(lines)
