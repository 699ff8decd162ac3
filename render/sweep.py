"""The plain-text summary of a sweep over seeds: one row per theorem x architecture x method."""

from __future__ import annotations

import math

from theory.verify import Result


def format_sweep(results: list[Result]) -> str:
    """Per (theorem, architecture, method): how many seeds gave the expected verdict, the largest
    residual over every seed and trial, and the seed and trial it came from."""
    rows: dict[tuple, list[Result]] = {}
    for r in results:
        rows.setdefault((r.theorem, r.architecture, r.method), []).append(r)
    header = ("theorem", "architecture", "method", "expected", "as expected", "max residual", "")
    table = [header]
    for (theorem, arch, method), rs in rows.items():
        finite = [r for r in rs if math.isfinite(r.max_residual)]
        worst = max(finite, key=lambda r: r.max_residual) if finite else rs[0]
        n_ok = sum(r.as_expected for r in rs)
        bad = [r for r in rs if not r.as_expected]
        if not bad:
            flag = "ok"
        elif bad[0].verdict == "error":
            flag = f"ERROR (seed {bad[0].seed}: {bad[0].reason})"
        else:
            flag = f"UNEXPECTED (witness: seed {bad[0].seed}, trial {bad[0].witness_trial})"
        table.append(
            (
                theorem,
                arch,
                method,
                rs[0].expected,
                f"{n_ok}/{len(rs)} seeds",
                f"{worst.max_residual:.2e} (seed {worst.seed}, trial {worst.witness_trial})",
                flag,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    seeds = sorted({r.seed for r in results})
    n_ok = sum(r.as_expected for r in results)
    lines += [
        "",
        f"{n_ok}/{len(results)} verdicts as expected over {len(seeds)} seeds x "
        f"{results[0].trials} trials (tolerance: residual <= {results[0].tolerance:.0e} in "
        "float64 means 'holds')",
    ]
    return "\n".join(lines)
