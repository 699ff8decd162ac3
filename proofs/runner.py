"""``prove``: compile the development, check every exported theorem's assumptions, and report
per registered theorem: proved / failed, with the compile time of its files."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from proofs.assumptions import (
    ALLOWED_AXIOMS,
    AssumptionReport,
    exported_theorems,
    forbidden_commands,
    print_assumptions,
)
from proofs.catalogue import ENTRIES, entry_lines, get_entry
from proofs.controls import ControlResult, run_negative_controls
from proofs.coq import ROOT, Build, compile_development, development_files, module_of


@dataclass(frozen=True)
class TheoremResult:
    theorem_id: str
    proved: bool
    seconds: float  # compile time of the files holding its Coq theorems
    coq: tuple  # "Module.name" of its Coq theorems
    lines: int
    reason: str = ""  # why it failed

    @property
    def verdict(self) -> str:
        return "proved" if self.proved else "FAILED"


@dataclass
class ProveReport:
    build: Build
    results: list
    assumptions: AssumptionReport
    forbidden: dict
    controls: list = field(default_factory=list)  # ControlResult, when requested
    seconds: float = 0.0
    kept: bool = True  # whether build.directory still exists

    @property
    def ok(self) -> bool:
        """Every theorem proved, no exported theorem resting on a disallowed axiom, no hole in
        the sources, and (when run) every negative control meaningfully rejected."""
        return (
            all(r.proved for r in self.results)
            and not self.assumptions.violations()
            and not self.assumptions.error
            and not self.forbidden
            and all(c.ok for c in self.controls)
        )

    def table(self) -> str:
        rows = [f"{'theorem':26s} {'verdict':8s} {'time (s)':>8s} {'lines':>5s}  Coq theorems"]
        for r in self.results:
            names = ", ".join(n.split(".")[1] for n in r.coq)
            rows.append(f"{r.theorem_id:26s} {r.verdict:8s} {r.seconds:8.2f} {r.lines:5d}  {names}")
            if r.reason:
                rows.append(f"{'':26s} reason: {r.reason}")
        checked = len(self.assumptions.checked)
        bad = self.assumptions.violations()
        rows.append(
            f"Print Assumptions on {checked} exported theorems: "
            + (
                f"{len(bad)} rest on disallowed assumptions: "
                + "; ".join(f"{n}: {', '.join(a)}" for n, a in sorted(bad.items()))
                if bad
                else f"only the standard real-number axioms ({len(ALLOWED_AXIOMS)} allowed)"
            )
        )
        for path, hits in sorted(self.forbidden.items()):
            rows.append(f"{path} contains {', '.join(hits)} (a hole or an axiom)")
        cached = sum(r.cached for r in self.build.files.values())
        if cached:
            rows.append(f"{cached} file(s) up to date in the build directory, not recompiled")
        for c in self.controls:
            if c.ok:
                what = (
                    f"rejected by coqc at line {c.error_line}, inside the false proof (as required)"
                )
            elif not c.rejected:
                what = "ACCEPTED by coqc (the false variant compiled)"
            else:
                last = c.message.splitlines()[-1] if c.message else ""
                what = f"rejected for another reason (line {c.error_line}): {last}"
            rows.append(f"negative control {c.control.name}: {what}")
        proved = sum(r.proved for r in self.results)
        rows.append(
            f"{proved}/{len(self.results)} proved with coqc {self.build.version} in "
            f"{self.seconds:.1f} s (compile {self.build.seconds:.1f} s, "
            f"Print Assumptions {self.assumptions.seconds:.1f} s; "
            + (f"build in {self.build.directory})" if self.kept else "temporary build removed)")
        )
        return "\n".join(rows)

    def markdown_table(self) -> str:
        """theorem | Coq theorems | lines | compile time | general in (docs/proofs.md)."""
        rows = [
            "| theorem | Coq theorems | lines | compile time (s) | general in |",
            "|---|---|---|---|---|",
        ]
        for r in self.results:
            entry = ENTRIES[r.theorem_id]
            names = ", ".join(f"`{n}`" for n in r.coq)
            verdict = "" if r.proved else " (FAILED)"
            rows.append(
                f"| {r.theorem_id}{verdict} | {names} | {r.lines} | {r.seconds:.1f} | "
                f"{entry.general_in} |"
            )
        return "\n".join(rows)

    def to_json(self) -> dict:
        return {
            "coqc_version": self.build.version,
            "seconds": self.seconds,
            "compile_seconds": self.build.seconds,
            "files": {
                m: {"ok": r.ok, "seconds": r.seconds, "skipped": r.skipped, "message": r.message}
                for m, r in self.build.files.items()
            },
            "theorems": [
                {
                    "theorem": r.theorem_id,
                    "verdict": "proved" if r.proved else "failed",
                    "seconds": r.seconds,
                    "coq": list(r.coq),
                    "lines": r.lines,
                    "reason": r.reason,
                }
                for r in self.results
            ],
            "assumptions": {
                "checked": list(self.assumptions.checked),
                "union": list(self.assumptions.union),
                "per_theorem": {n: list(a) for n, a in self.assumptions.axioms.items()},
            },
            "allowed_axioms": sorted(ALLOWED_AXIOMS),
            "negative_controls": [
                {
                    "control": c.control.name,
                    "rejected": c.rejected,
                    "meaningful": c.ok,
                    "error_line": c.error_line,
                }
                for c in self.controls
            ],
        }

    def write_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _judge(
    theorem_id: str, build: Build, assumptions: AssumptionReport, forbidden: dict, source: Path
) -> TheoremResult:
    entry = get_entry(theorem_id)
    files = {m: build.files.get(m) for m in entry.modules}
    seconds = sum(r.seconds for r in files.values() if r is not None)
    reasons = []
    compiled = True
    for module, result in files.items():
        if result is None or not result.ok:
            compiled = False
            message = (
                result.message.splitlines()[-1] if result and result.message else "not compiled"
            )
            reasons.append(f"{module}.v did not compile: {message}")
        path = f"theories/{module}.v"
        if path in forbidden:
            reasons.append(f"{path} contains {', '.join(forbidden[path])}")
    for name in entry.names if compiled else ():
        verdict = assumptions.allowed(name)
        if verdict is None:
            reasons.append(
                f"{name}: no Print Assumptions output ({assumptions.error[-300:] or 'not checked'})"
            )
        elif not verdict:
            extra = [a for a in assumptions.axioms[name] if a not in ALLOWED_AXIOMS]
            reasons.append(f"{name} rests on {', '.join(extra)}")
    return TheoremResult(
        theorem_id,
        not reasons,
        seconds,
        entry.names,
        entry_lines(theorem_id, source),
        "; ".join(reasons),
    )


def prove(
    theorem_ids=None,
    build_dir=None,
    jobs: int = 2,
    controls: bool = False,
    source: Path = ROOT,
    each_theorem: bool = False,
) -> ProveReport:
    """Compile what ``theorem_ids`` need (every theorem when None or empty) in ``build_dir``
    (kept) or a temporary directory (removed), run Print Assumptions on every exported theorem
    of the compiled files (their union; ``each_theorem``: one by one), optionally the negative
    controls, and judge each theorem.
    Raises ProofsError for an unknown id and CoqNotFound when coqc is missing."""
    start = time.perf_counter()
    if build_dir is None:  # a temporary build, removed when the report is made
        with tempfile.TemporaryDirectory(prefix="prefix-theory-coq-") as tmp:
            report = prove(theorem_ids, tmp, jobs, controls, source, each_theorem)
        report.kept = False
        return report
    ids = list(theorem_ids) if theorem_ids else list(ENTRIES)
    entries = [get_entry(i) for i in ids]  # unknown ids fail before any compilation
    # a subset compiles only the files its theorems need; the controls need the whole development
    modules = (
        None if (not theorem_ids or controls) else sorted({m for e in entries for m in e.modules})
    )
    build = compile_development(build_dir, modules, jobs, source)
    compiled = {m for m, r in build.files.items() if r.ok}
    names = [(m, n) for m, n in exported_theorems(source) if m in compiled]
    assumptions = print_assumptions(build, names, each=each_theorem)
    forbidden = forbidden_commands(source)
    results = [_judge(i, build, assumptions, forbidden, source) for i in ids]
    control_results: list[ControlResult] = run_negative_controls(build) if controls else []
    return ProveReport(
        build, results, assumptions, forbidden, control_results, time.perf_counter() - start
    )


def all_modules(source: Path = ROOT) -> list[str]:
    return [module_of(f) for f in development_files(source)]
