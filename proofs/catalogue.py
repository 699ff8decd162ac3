"""Which Coq theorems prove each theorem, in what generality, and what is left out.

A registered theorem names its Coq proof itself (``Theorem.coq``, a
:class:`theory.theorem.CoqProof`); this module reads them from the registry and adds the one
Coq result that has no registered numeric theorem: ``construction_thresholds`` (the §2
constructions' temperature conditions, checked numerically by the constructions' certificates).
Line counts and statements are read from the ``.v`` files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from proofs.coq import ROOT
from proofs.errors import ProofsError
from theory.registry import THEOREMS


@dataclass(frozen=True)
class CoqEntry:
    theorem_id: str
    coq: tuple  # ((module, theorem name), ...): the first is the headline theorem
    general_in: str
    gap: str = ""  # what is not proved in Coq, and why ("" when nothing is left out)
    registered: bool = True  # an id of the toolkit's theorem registry

    @property
    def modules(self) -> tuple:
        return tuple(dict.fromkeys(m for m, _ in self.coq))

    @property
    def names(self) -> tuple:
        return tuple(f"{m}.{n}" for m, n in self.coq)


def _split(name: str) -> tuple[str, str]:
    module, _, theorem = name.partition(".")
    if not module or not theorem:
        raise ProofsError(f"a Coq theorem must be named Module.theorem, got {name!r}")
    return module, theorem


CONSTRUCTION_THRESHOLDS = CoqEntry(
    "construction_thresholds",
    (
        ("Constructions", "unconditional_step"),
        ("Constructions", "unconditional_tight"),
        ("Constructions", "conditional_step"),
        ("Constructions", "decoder_margin"),
    ),
    "every V >= 2, N >= 1 (Theorem 1: e^T > (2V-3)N suffices, and is necessary), "
    "N0 >= 1 and response position r < N0 (Theorem 2 and longer responses: "
    "e^T > (4V-3)(2N0-1) suffices), every map table and every preceding valid tokens",
    gap="Modelled: the computation at one decoding query (the softmax head with the "
    "construction's logits and values, the MLP's ReLU slot selection, the scalar decoder). "
    "The weight matrices that realise it in the residual stream are those of "
    "constructions/ and are checked numerically there. Floating-point rounding and the "
    "two-token digit decoder are not covered.",
    registered=False,
)


def entries() -> dict[str, CoqEntry]:
    """Every theorem with a Coq proof: the registered ones (in registry order), then the rest."""
    found = {}
    for theorem in THEOREMS.values():
        if theorem.coq is not None:
            coq = tuple(_split(name) for name in theorem.coq.names)
            found[theorem.id] = CoqEntry(
                theorem.id, coq, theorem.coq.general_in, theorem.coq.gap, registered=True
            )
    found[CONSTRUCTION_THRESHOLDS.theorem_id] = CONSTRUCTION_THRESHOLDS
    return found


ENTRIES = entries()
REGISTERED_IDS = tuple(i for i, e in ENTRIES.items() if e.registered)


def get_entry(theorem_id: str) -> CoqEntry:
    if theorem_id not in ENTRIES:
        raise ProofsError(f"unknown theorem {theorem_id!r}; expected one of: {', '.join(ENTRIES)}")
    return ENTRIES[theorem_id]


def module_path(module: str, source: Path = ROOT) -> Path:
    return Path(source) / "theories" / f"{module}.v"


def _span(module: str, name: str, source: Path = ROOT) -> tuple[list[str], int, int, int]:
    """(lines of the file, first line of the doc comment or declaration, declaration line,
    line of the closing Qed/Defined) of a theorem, 0-based."""
    lines = module_path(module, source).read_text().splitlines()
    decl = re.compile(
        r"^\s*(?:Theorem|Lemma|Corollary|Proposition|Fact|Remark)\s+" + re.escape(name) + r"\b"
    )
    start = next((i for i, line in enumerate(lines) if decl.match(line)), None)
    if start is None:
        raise ProofsError(f"no theorem {name!r} in {module_path(module, source)}")
    end = next(
        i for i in range(start, len(lines)) if re.search(r"\b(Qed|Defined|Admitted)\.", lines[i])
    )
    doc = start
    if doc > 0 and lines[doc - 1].rstrip().endswith("*)"):
        doc -= 1
        while doc > 0 and "(**" not in lines[doc]:
            doc -= 1
    return lines, doc, start, end


def theorem_lines(module: str, name: str, source: Path = ROOT) -> int:
    """Lines of a theorem: statement and proof, up to its Qed."""
    _, _, start, end = _span(module, name, source)
    return end - start + 1


def theorem_statement(module: str, name: str, source: Path = ROOT) -> str:
    """The Coq text of a theorem's statement, with its doc comment."""
    lines, doc, start, end = _span(module, name, source)
    proof = next((i for i in range(start, end + 1) if re.match(r"^\s*Proof\b", lines[i])), end + 1)
    return "\n".join(lines[doc:proof]).rstrip()


def entry_lines(theorem_id: str, source: Path = ROOT) -> int:
    return sum(theorem_lines(m, n, source) for m, n in get_entry(theorem_id).coq)


def file_lines(module: str, source: Path = ROOT) -> int:
    return len(module_path(module, source).read_text().splitlines())


def coq_statement(theorem_id: str, source: Path = ROOT) -> str:
    """The Coq statements of a registered theorem (for ``derive`` to show beside the sympy
    steps): file and name of each Coq theorem, then its text."""
    entry = get_entry(theorem_id)
    parts = [f"Coq ({', '.join(entry.modules)}; general in: {entry.general_in})"]
    for module, name in entry.coq:
        parts.append(
            f"-- proofs/theories/{module}.v: {name}\n{theorem_statement(module, name, source)}"
        )
    if entry.gap:
        parts.append(f"Not proved in Coq: {entry.gap}")
    return "\n\n".join(parts)
