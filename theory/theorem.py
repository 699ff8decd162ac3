"""A theorem as one declarative object.

A :class:`Theorem` holds everything the toolkit knows about one result, under one id:

* ``statement``, ``section`` (in docs/theory.md) and ``assumptions``;
* ``derivation``: ``() -> Derivation``, the sympy derivation, every step machine-checked;
* ``check``: ``(arch, trial) -> residual``, a pure JAX function (jitted and vmapped over random
  trials by :mod:`theory.verify`); a trial holds when its residual is at most ``tolerance``;
* ``measures``: what the numeric check measures, in words (rendered in docs/derivations.md);
* ``expect``: the expected verdict per architecture and method (see :meth:`Theorem.expectation`);
* ``instance``: optional ``(arch, trial) -> [(label, symbolic value, JAX value)]``, the
  derivation's conclusion evaluated at the numbers of one JAX run (``derive --substitute``);
* ``controls``: the negative controls (:class:`Control`), inputs on which the check must come
  out the other way. The test suite runs every control of every registered theorem, and fails
  for a theorem without one;
* ``coq``: the Coq theorems that prove the statement in general (:class:`CoqProof`, ``proofs/``);
* ``requires``: the architecture features the statement is about (default: an attention layer;
  :mod:`theory.blocks` lists the features; ``"!name"``: the architecture must not have the
  feature). Where they are missing the theorem does not apply: ``verify`` runs no row there and
  the atlas shows the cell as n/a.

Most checks measure an identity that should hold (residual ~ 0). A *witness* check measures how
far a REFUTED claim misses ("the wider method is no wider"): its expected verdict is "fails" and
a large residual is the witness; its controls remove the witness (outcome ``"holds"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from theory.architecture import Architecture, meets
from theory.errors import ToolkitError
from theory.methods import Method, default_expectation
from theory.registry import ARCHITECTURES, METHODS, THEOREMS
from theory.tolerances import TOL_F64

CONTROL_OUTCOMES = ("violation", "holds")


@dataclass(frozen=True)
class Control:
    """A negative control: an input on which a theorem's check must come out the other way.

    ``architecture`` is a registered architecture's name and ``changes`` field changes applied
    to it (``Architecture.replace``); ``method`` is a registered method;
    ``transform(arch, trial) -> trial`` edits each random trial (e.g. ties ``W_V`` to ``W_K``);
    ``check`` replaces the theorem's check (a deliberately wrong formula). ``outcome`` is what the
    check must report on every one of ``trials`` trials: ``"violation"`` (residual above
    :data:`theory.tolerances.VIOLATION`, far above the noise floor) or ``"holds"`` (residual at most
    the tolerance: the witness of a refuted claim is gone).
    """

    name: str
    description: str
    architecture: str
    method: str
    outcome: str = "violation"
    changes: tuple = ()  # ((field, value), ...) applied with Architecture.replace
    transform: Callable | None = None
    check: Callable | None = None
    trials: int = 2
    seed: int = 0

    def resolve_architecture(self) -> Architecture:
        """The architecture this control runs on (the registered one with ``changes`` applied)."""
        base = ARCHITECTURES.lookup(self.architecture)
        if not self.changes:
            return base
        return base.replace(name=f"{base.name}[{self.name}]", **dict(self.changes))


@dataclass(frozen=True)
class CoqProof:
    """The Coq theorems of ``proofs/theories`` that prove a theorem in general dimension.

    ``names`` are ``"Module.theorem"`` (the first is the headline), ``general_in`` says for which
    sizes and maps the proof holds, ``gap`` what is not proved in Coq and why ("" for nothing).
    ``prefix-theory prove`` compiles them and checks their axioms.
    """

    names: tuple
    general_in: str
    gap: str = ""


@dataclass(frozen=True)
class Theorem:
    id: str
    statement: str
    section: str
    assumptions: tuple
    derivation: Callable
    check: Callable
    measures: str
    controls: tuple = ()
    methods: tuple = ()  # methods the check runs with (empty: every registered method)
    expect: Callable | None = None  # (arch, method) -> (verdict, reason), see expectation()
    instance: Callable | None = None
    default_run: Callable | None = None  # arch -> bool: in a `verify` that names nothing
    tolerance: float = TOL_F64
    coq: CoqProof | None = None
    requires: tuple = ("attention",)  # architecture features the statement is about

    def applies(self, arch: Architecture) -> bool:
        """Whether the statement is about ``arch`` (its features meet ``requires``)."""
        return meets(arch, self.requires)

    def in_default_run(self, arch: Architecture) -> bool:
        return self.default_run is None or bool(self.default_run(arch))

    def method_names(self) -> tuple:
        return self.methods or tuple(METHODS)

    def expectation(self, arch: Architecture, method: Method) -> tuple[str, str]:
        """(expected verdict, reason) of this theorem on ``arch`` under ``method``.

        In order: a weight-changing method is a negative control ("fails") unless the theorem
        has its own rule; an expectation the architecture declares for this theorem wins; then
        the theorem's rule ``expect``; otherwise context methods are expected to hold.
        """
        if self.expect is None and method.changes_weights:
            return "fails", f"{method.name} changes the weights (negative control)"
        declared = arch.expectation(self.id)
        if declared is not None:
            return declared
        if self.expect is not None:
            return self.expect(arch, method)
        return default_expectation(method), f"docs/theory.md {self.section}"


def _check_theorem(theorem: Theorem) -> None:
    for name in ("derivation", "check"):
        if not callable(getattr(theorem, name)):
            raise ToolkitError(f"theorem {theorem.id!r}: {name} must be callable")
    if theorem.coq is not None and not (
        isinstance(theorem.coq, CoqProof) and theorem.coq.names and theorem.coq.general_in
    ):
        raise ToolkitError(
            f"theorem {theorem.id!r}: coq must be a CoqProof with names and general_in, "
            f"got {theorem.coq!r}"
        )
    if not isinstance(theorem.requires, tuple) or not all(
        isinstance(f, str) for f in theorem.requires
    ):
        raise ToolkitError(
            f"theorem {theorem.id!r}: requires must be a tuple of feature names, "
            f"got {theorem.requires!r}"
        )
    for control in theorem.controls:
        if not isinstance(control, Control) or control.outcome not in CONTROL_OUTCOMES:
            raise ToolkitError(
                f"theorem {theorem.id!r}: controls must be Control objects with outcome in "
                f"{CONTROL_OUTCOMES}, got {control!r}"
            )


def register_theorem(theorem: Theorem, *, replace: bool = False) -> Theorem:
    """Add a theorem to the registry: ``verify``, ``derive``, the derivations document, the
    generated control tests and the property tests pick it up."""
    _check_theorem(theorem)
    return THEOREMS.register(theorem, replace=replace)


def get_theorem(theorem_id: str) -> Theorem:
    """Registered theorem by id (ToolkitError listing valid ids otherwise)."""
    return THEOREMS.lookup(theorem_id)
