"""The plain-text table of ``verify`` results."""

from __future__ import annotations

import math

from theory.tolerances import EFFECT_FLOOR
from theory.verify import Result


def _effect(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.1e}"


def format_table(results: list[Result]) -> str:
    """Plain-text table: theorem x architecture x method, expected, verdict, max residual, the
    context's effect (prefix mass, output displacement: smallest over the trials), trials."""
    header = (
        "theorem",
        "architecture",
        "method",
        "expected",
        "verdict",
        "max residual",
        "prefix mass",
        "displacement",
        "trials",
        "",
    )
    rows = [header]
    for r in results:
        flag = (
            "ok"
            if r.as_expected
            else f"UNEXPECTED (witness: seed {r.seed}, trial {r.witness_trial})"
        )
        if r.verdict == "error":
            flag = f"ERROR ({r.reason})"
        rows.append(
            (
                r.theorem,
                r.architecture,
                r.method,
                r.expected,
                r.verdict,
                f"{r.max_residual:.2e}",
                _effect(r.prefix_mass),
                _effect(r.displacement),
                str(r.trials),
                flag,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    n_ok = sum(r.as_expected for r in results)
    n_error = sum(r.verdict == "error" for r in results)
    lines.append("")
    lines.append(
        f"{n_ok}/{len(results)} verdicts as expected (tolerance: residual "
        f"<= {results[0].tolerance:.0e} in float64 means 'holds')"
        + (f"; {n_error} ERROR (no verdict)" if n_error else "")
    )
    lines.append(
        "prefix mass, displacement: what the context changed, smallest over the trials "
        f"(each must exceed {EFFECT_FLOOR:.0e}, else the row is an ERROR: a check on a context "
        "that does nothing holds vacuously); `-`: not measured (a weight update, or a mixer "
        "without attention, whose displacement is its output's)"
    )
    return "\n".join(lines)
