"""``Print Assumptions``: which axioms each exported theorem rests on.

The allowed axioms are exactly those of Coq's standard real numbers: ``Print Assumptions``
on the standard library's own lemmas ``Rplus_comm``, ``completeness`` and
``exp_increasing`` shows these four and nothing else (:func:`standard_axioms` recomputes
that list with the installed Coq, and the tests compare the two).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from proofs.coq import COQC_TIMEOUT_S, ROOT, Build, development_files, module_of

ALLOWED_AXIOMS = {
    "ClassicalDedekindReals.sig_forall_dec": "the reals' construction: a decidable predicate "
    "on nat holds everywhere or fails somewhere (limited principle of omniscience)",
    "ClassicalDedekindReals.sig_not_dec": "the reals' construction: weak excluded middle, "
    "{~~P} + {~P}",
    "FunctionalExtensionality.functional_extensionality_dep": "functions equal pointwise are "
    "equal (used by the reals' construction)",
    "Classical_Prop.classic": "excluded middle (used by the standard library's exp/ln lemmas, "
    "e.g. exp_increasing)",
}

# standard-library lemmas whose assumptions together are the allowed list
REFERENCE_LEMMAS = ("Rplus_comm", "completeness", "exp_increasing")

_DECLARATION = re.compile(
    r"^\s*(?:Theorem|Lemma|Corollary|Proposition|Fact|Remark)\s+([A-Za-z_][\w']*)", re.MULTILINE
)
_MARKER = re.compile(r'"@@ ([\w.\']+)"')
_HEADER = re.compile(r"^[A-Z][\w /-]*:$")


def strip_comments(text: str) -> str:
    """Coq source without its (nested) comments."""
    out, depth, i = [], 0, 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair == "(*":
            depth, i = depth + 1, i + 2
        elif pair == "*)" and depth:
            depth, i = depth - 1, i + 2
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def exported_theorems(source: Path = ROOT) -> list[tuple[str, str]]:
    """(module, name) of every Theorem/Lemma/Corollary of the development, in file order."""
    found = []
    for path in development_files(source):
        text = strip_comments((Path(source) / path).read_text())
        found += [(module_of(path), name) for name in _DECLARATION.findall(text)]
    return found


FORBIDDEN = re.compile(
    r"\b(Admitted|admit|give_up|Axiom|Axioms|Parameter|Parameters|Conjecture|Hypothesis|"
    r"Hypotheses|Variable|Variables)\b"
)


def forbidden_commands(source: Path = ROOT) -> dict[str, list[str]]:
    """Per file of the development, the commands that would leave a hole or add an axiom
    (outside comments): Admitted, admit, Axiom, Parameter, ..."""
    found = {}
    for path in development_files(source):
        hits = FORBIDDEN.findall(strip_comments((Path(source) / path).read_text()))
        if hits:
            found[path] = sorted(set(hits))
    return found


def parse_assumptions(text: str) -> dict[str, tuple[str, ...]]:
    """Parse the output of ``Eval compute in "@@ NAME"%string. Print Assumptions NAME.``
    pairs: NAME -> the assumptions Coq lists (empty: closed under the global context)."""
    result, current = {}, None
    for line in text.splitlines():
        marker = _MARKER.search(line)
        if marker:
            current = marker.group(1)
            result[current] = []
            continue
        if current is None or not line or line[0].isspace():
            continue  # types of axioms continue on indented lines
        if line.startswith("Closed under the global context") or _HEADER.match(line):
            continue
        result[current].append(line.split(" : ")[0].split()[0])
    return {name: tuple(axioms) for name, axioms in result.items()}


@dataclass(frozen=True)
class AssumptionReport:
    """Assumptions of the checked theorems.  ``union`` is what ``Print Assumptions`` shows for
    one term that uses every checked theorem, i.e. the union of their assumptions; ``axioms``
    gives per-theorem lists (``Module.name``) when the union has a disallowed assumption: exact
    for the theorems of the modules concerned, the module's union for the others."""

    checked: tuple  # "Module.name" of every theorem covered
    union: tuple
    axioms: dict  # "Module.name" -> tuple of assumptions
    seconds: float
    error: str = ""  # coqc's message when a query failed

    def violations(self, allowed=ALLOWED_AXIOMS) -> dict[str, tuple[str, ...]]:
        """Theorems resting on anything beyond the allowed axioms (``*`` for the whole set
        when only the union is known)."""
        found = {
            name: tuple(a for a in axioms if a not in allowed)
            for name, axioms in self.axioms.items()
            if any(a not in allowed for a in axioms)
        }
        extra = tuple(a for a in self.union if a not in allowed)
        if extra and not found:
            found["*"] = extra
        return found

    def allowed(self, name: str, allowed=ALLOWED_AXIOMS) -> bool | None:
        """Whether ``Module.name`` rests only on allowed axioms (None: not checked)."""
        if name in self.axioms:
            return all(a in allowed for a in self.axioms[name])
        if name in self.checked and not self.axioms and not self.error:
            return all(a in allowed for a in self.union)
        return None


_STRINGS = "Require Import Coq.Strings.String."


def _query(names, header: str, definitions: str = "") -> str:
    """A Coq file: ``header`` (imports), ``definitions``, then per name a marker string and
    ``Print Assumptions name``."""
    lines = [_STRINGS, header, definitions, "Open Scope string_scope."]
    for name in names:
        lines.append(f'Eval compute in "@@ {name}".')
        lines.append(f"Print Assumptions {name}.")
    return "\n".join(line for line in lines if line) + "\n"


def _run(build: Build, filename: str, text: str) -> tuple[dict, str]:
    path = build.directory / filename
    path.write_text(text)
    proc = build.run_coqc(filename)
    error = "" if proc.returncode == 0 else (proc.stdout[-2000:] + proc.stderr).strip()
    return parse_assumptions(proc.stdout), error


def _requires(modules) -> str:
    return "Require Import " + " ".join(f"PrefixTheory.{m}" for m in sorted(set(modules))) + "."


def _tuple_query(groups: dict, header: str) -> tuple[str, dict]:
    """Per group a definition that is the tuple of its theorems (so that Print Assumptions on
    it is the union of theirs); returns the file and group label -> definition name."""
    definitions, labels = [], {}
    for i, (label, names) in enumerate(groups.items()):
        terms = ", ".join(f"@PrefixTheory.{n}" for n in names)
        body = f"({terms})" if len(names) > 1 else terms
        definitions.append(f"Definition assumptions_group_{i} := {body}.")
        labels[label] = f"assumptions_group_{i}"
    return _query(labels.values(), header, "\n".join(definitions)), labels


def print_assumptions(
    build: Build, names: list[tuple[str, str]], each: bool = False
) -> AssumptionReport:
    """Print Assumptions for the theorems (module, name): first on one term using all of them
    (one traversal of their dependencies), then, where that union contains a disallowed
    assumption, module by module and theorem by theorem to name the culprits.  ``each``: also
    list every theorem's own assumptions (one query per theorem, about 1 s each)."""
    start = time.perf_counter()
    full = [f"{m}.{n}" for m, n in names]
    if not full:
        return AssumptionReport((), (), {}, 0.0)
    header = _requires(m for m, _ in names)
    if each:
        singles, error = _run(
            build, "AssumptionsEach.v", _query([f"PrefixTheory.{n}" for n in full], header)
        )
        axioms = {k.split(".", 1)[1]: v for k, v in singles.items()}
        union = tuple(dict.fromkeys(a for v in axioms.values() for a in v))
        return AssumptionReport(tuple(full), union, axioms, time.perf_counter() - start, error)
    text, labels = _tuple_query({"all": full}, header)
    parsed, error = _run(build, "AssumptionsAll.v", text)
    union = parsed.get(labels["all"], ())
    axioms = {}
    if error or any(a not in ALLOWED_AXIOMS for a in union):
        modules = sorted({m for m, _ in names})
        groups = {m: [f"{m}.{n}" for mm, n in names if mm == m] for m in modules}
        text, labels = _tuple_query(groups, header)
        per_module, err2 = _run(build, "AssumptionsModules.v", text)
        culprits = [
            m
            for m in modules
            if labels[m] not in per_module
            or any(a not in ALLOWED_AXIOMS for a in per_module[labels[m]])
        ]
        suspects = [f"{m}.{n}" for m, n in names if m in culprits]
        singles, err3 = _run(
            build,
            "AssumptionsEach.v",
            _query([f"PrefixTheory.{n}" for n in suspects], header),
        )
        axioms = {k.split(".", 1)[1]: v for k, v in singles.items()}
        for m, n in names:  # a module without culprits: its union bounds each of its theorems
            if m not in culprits:
                axioms[f"{m}.{n}"] = per_module[labels[m]]
        error = error or err2 or err3
    return AssumptionReport(tuple(full), tuple(union), axioms, time.perf_counter() - start, error)


def standard_axioms(coqc: str) -> set[str]:
    """The axioms Coq's standard Reals library itself rests on (its reference lemmas)."""
    with tempfile.TemporaryDirectory(prefix="prefix-theory-stdlib-") as tmp:
        path = Path(tmp) / "StdlibAssumptions.v"
        path.write_text(_query(REFERENCE_LEMMAS, "Require Import Reals."))
        proc = subprocess.run(
            [coqc, "-q", path.name],
            check=False,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=COQC_TIMEOUT_S,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"Print Assumptions on the standard library failed: {proc.stderr}")
    found = set()
    for axioms in parse_assumptions(proc.stdout).values():
        found |= set(axioms)
    return found
