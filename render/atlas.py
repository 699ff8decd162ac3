"""The atlas: the theorem x architecture grid of
``verify`` results (``prefix-theory verify --atlas``).

One cell per (theorem, architecture) summarises every method that ran there:

* context methods (prefix, KV-prefix, prompts): their verdicts against the
  expectation, and the largest residual among them;
* weight-update methods (the negative controls): their smallest residual, which
  must stand far above the tolerance for the cell to mean anything.

Cell status: ``holds`` (every context method holds, as expected), ``modified``
(holds in a modified form: the architecture's expectation reason starts with
"modified form", e.g. sigmoid attention, c_i = 1), ``fails`` (expected to fail
and does, e.g. scalable-softmax), ``UNEXPECTED`` (some verdict differs from its
expectation) and ``error`` (no verdict: the check raised, a residual is not finite, or the
context had no effect).  Architectures are described by
their features so a reader sees at a glance where the paper's limits hold.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from theory.architecture import Architecture
from theory.registry import ARCHITECTURES, ATTENTION_KINDS, METHODS
from theory.zoo.modern import MODIFIED

STATUS_COLOURS = {
    "holds": "#4caf50",
    "modified": "#26a69a",
    "fails": "#9e9e9e",
    "UNEXPECTED": "#e53935",
    "error": "#8e24aa",
    "n/a": "#ffffff",
}


@dataclass
class Cell:
    status: str  # holds | modified | fails | UNEXPECTED | error | n/a
    context_residual: float | None  # max residual over context methods (None if none ran)
    control_residual: float | None  # min residual over weight-update controls (None if none ran)
    methods: tuple  # methods that ran here
    reason: str  # expectation reason (fails / modified) or the error / the unexpected rows


def features(arch: Architecture) -> str:
    """One-line feature summary: positions, attention, heads, norm, block, mask."""
    parts = [arch.positional, arch.attention]
    if arch.qk_norm:
        parts.append("qk-norm")
    if arch.n_kv_heads is not None:
        parts.append("MQA" if arch.kv_heads == 1 else f"GQA {arch.n_heads}/{arch.kv_heads}")
    if arch.window is not None:
        parts.append(f"window {arch.window}")
    norm = (
        "no norm"
        if arch.norm == "none"
        else f"{arch.norm}-{'RMS' if arch.norm_kind == 'rmsnorm' else 'LN'}"
    )
    parts.append(norm)
    if arch.block != "standard":
        parts.append(f"{arch.block} block")
    if arch.parallel:
        parts.append("parallel")
    if arch.d_mlp and arch.mlp_act.startswith("gated"):
        parts.append({"gated_silu": "SwiGLU", "gated_gelu": "GeGLU"}[arch.mlp_act])
    parts.append("causal" if arch.causal else "bidirectional")
    parts.append(f"{arch.n_layers}L")
    return ", ".join(parts)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"  # a residual that is not finite shows as nan / inf


def _largest(values):
    """The largest residual, a non-finite one first (it decides nothing); None when none ran."""
    return max(values, key=lambda v: (not math.isfinite(v), v), default=None)


def _smallest(values):
    """The smallest residual, a non-finite one first; None when none ran."""
    return min(values, key=lambda v: (math.isfinite(v), v), default=None)


def grid(results) -> tuple[list, list, dict]:
    """(theorem ids, architecture names, {(theorem, architecture): Cell}) from verify results."""
    theorems = list(dict.fromkeys(r.theorem for r in results))
    archs = list(dict.fromkeys(r.architecture for r in results))
    cells = {}
    for t in theorems:
        for a in archs:
            rows = [r for r in results if r.theorem == t and r.architecture == a]
            if not rows:
                cells[t, a] = Cell("n/a", None, None, (), "")
                continue
            context = [r for r in rows if not METHODS[r.method].changes_weights]
            controls = [r for r in rows if METHODS[r.method].changes_weights]
            ctx_res = _largest(r.max_residual for r in context)
            ctl_res = _smallest(r.max_residual for r in controls)
            methods = tuple(r.method for r in rows)
            if any(r.verdict == "error" for r in rows):
                bad = next(r for r in rows if r.verdict == "error")
                cell = Cell("error", ctx_res, ctl_res, methods, f"{bad.method}: {bad.reason}")
            elif not all(r.as_expected for r in rows):
                bad = [r for r in rows if not r.as_expected]
                reason = "; ".join(
                    f"{r.method}: expected {r.expected}, got {r.verdict} (witness: seed {r.seed}, "
                    f"trial {r.witness_trial}, residual {_fmt(r.max_residual)})"
                    for r in bad
                )
                cell = Cell("UNEXPECTED", ctx_res, ctl_res, methods, reason)
            elif not context:
                cell = Cell("n/a", ctx_res, ctl_res, methods, "only negative controls ran")
            elif all(r.expected == "fails" for r in context):
                cell = Cell("fails", ctx_res, ctl_res, methods, context[0].reason)
            elif any(r.reason.startswith(MODIFIED) for r in context):
                cell = Cell(
                    "modified",
                    ctx_res,
                    ctl_res,
                    methods,
                    next(r.reason for r in context if r.reason.startswith(MODIFIED)),
                )
            else:
                cell = Cell("holds", ctx_res, ctl_res, methods, "")
            cells[t, a] = cell
    return theorems, archs, cells


def _cell_text(cell: Cell) -> str:
    text = {
        "holds": "holds",
        "modified": "holds*",
        "fails": "fails",
        "UNEXPECTED": "UNEXPECTED",
        "error": "ERROR",
        "n/a": "n/a",
    }[cell.status]
    if cell.status == "n/a":
        return text
    return f"{text} {_fmt(cell.context_residual)} / ctrl {_fmt(cell.control_residual)}"


def to_markdown(results, *, seed: int, trials: int, elapsed: float | None = None) -> str:
    """The atlas page: legend, grid, expectations with reasons, the non-softmax derivations."""
    theorems, archs, cells = grid(results)
    tol = results[0].tolerance if results else float("nan")
    lines = [
        "# Architecture atlas",
        "",
        (
            "Generated by `prefix-theory verify --atlas` (`make atlas` regenerates "
            "docs/atlas.md with every theorem on every registered architecture; do not edit "
            f"by hand): {trials} random trials per (theorem, architecture, method), seed {seed}"
        )
        + (f", {elapsed:.1f} s" if elapsed is not None else "")
        + ".",
        "",
        "Each cell: verdict of the context methods, their largest residual, and the "
        "smallest residual of the weight-update negative controls (`ctrl`), which must "
        f"stand far above the tolerance {tol:.0e}. `holds*` = holds in a modified form (see "
        "the reasons below); `fails` = the theorem is expected to fail on this architecture "
        "and does; `UNEXPECTED` = a verdict differs from the registry's expectation (a "
        "witness seed and trial is listed below); `ERROR` = no verdict (the check raised, a "
        "residual is not finite, or the context had no effect; the reason is listed below); "
        "`n/a` = the theorem's methods did not run "
        "there (atlas architectures run `default_methods` unless `--method` is given).",
        "",
    ]
    lines.append("| architecture | features | " + " | ".join(f"`{t}`" for t in theorems) + " |")
    lines.append("|---|---|" + "---|" * len(theorems))
    for a in archs:
        arch = ARCHITECTURES.get(a)
        feats = features(arch) if arch is not None else ""
        lines.append(
            f"| `{a}` | {feats} | " + " | ".join(_cell_text(cells[t, a]) for t in theorems) + " |"
        )
    lines += ["", "## Methods that ran", ""]
    for a in archs:
        ran = sorted({r.method for r in results if r.architecture == a})
        lines.append(f"- `{a}`: {', '.join(ran)}")
    notes = [
        (t, a, c)
        for (t, a), c in cells.items()
        if c.status in ("fails", "modified", "UNEXPECTED", "error")
    ]
    if notes:
        lines += ["", "## Failures, modified forms and surprises", ""]
        for t, a, c in notes:
            lines.append(f"- **{a} / {t}: {c.status}** — {c.reason}")
    kinds = sorted({ARCHITECTURES[a].attention for a in archs if a in ARCHITECTURES})
    derived = [ATTENTION_KINDS[k] for k in kinds if ATTENTION_KINDS[k].derivation is not None]
    if derived:
        lines += [
            "",
            "## Derivations for the attention kinds that differ from softmax",
            "",
            "Every step is checked by sympy (the mark after each step).",
            "",
        ]
        for kind in derived:
            lines += [
                f"**`{kind.name}`** — {kind.description}",
                "",
                kind.derivation().render("markdown"),
                "",
            ]
    lines += ["", "## Architectures", ""]
    for a in archs:
        arch = ARCHITECTURES.get(a)
        if arch is not None:
            lines.append(f"- `{a}` — {arch.description}")
    return "\n".join(lines).rstrip() + "\n"


def to_png(results, path: str) -> str:
    """Save the grid as a colour-coded table (matplotlib, no display needed)."""
    try:
        import matplotlib
    except ImportError as exc:
        from theory.errors import ToolkitError

        raise ToolkitError(
            "the atlas PNG needs matplotlib (pip install 'prefix-theory[experiments]')"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    theorems, archs, cells = grid(results)
    fig_h = 1.2 + 0.38 * len(archs)
    fig_w = 3.2 + 2.6 * len(theorems)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    for i, a in enumerate(archs):
        for j, t in enumerate(theorems):
            cell = cells[t, a]
            ax.add_patch(
                plt.Rectangle(
                    (j, i), 1, 1, facecolor=STATUS_COLOURS[cell.status], edgecolor="white"
                )
            )
            label = {"modified": "holds*"}.get(cell.status, cell.status)
            if cell.status != "n/a":
                label += f"\n{_fmt(cell.context_residual)} | ctrl {_fmt(cell.control_residual)}"
            ax.text(
                j + 0.5,
                i + 0.5,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if cell.status != "n/a" else "black",
            )
    ax.set_xlim(0, len(theorems))
    ax.set_ylim(len(archs), 0)
    ax.set_xticks([j + 0.5 for j in range(len(theorems))], theorems, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(
        [i + 0.5 for i in range(len(archs))],
        [
            f"{a}  ({ARCHITECTURES[a].attention}, {ARCHITECTURES[a].positional})"
            if a in ARCHITECTURES
            else a
            for a in archs
        ],
        fontsize=8,
    )
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    used = [s for s in STATUS_COLOURS if s != "n/a" and any(c.status == s for c in cells.values())]
    ax.legend(
        handles=[
            Patch(color=STATUS_COLOURS[s], label={"modified": "holds (modified form)"}.get(s, s))
            for s in used
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=len(used),
        fontsize=8,
        frameon=False,
    )
    ax.set_title(
        "prefix theorems x architectures (cell: max context residual | min control residual)",
        fontsize=9,
        pad=24,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def write_atlas(results, directory: str, *, seed: int, trials: int, elapsed: float | None = None):
    """Write ``atlas.md`` and ``atlas.png`` into ``directory``;
    returns (markdown text, md path, png path)."""
    os.makedirs(directory, exist_ok=True)
    text = to_markdown(results, seed=seed, trials=trials, elapsed=elapsed)
    md_path = os.path.join(directory, "atlas.md")
    with open(md_path, "w") as fh:
        fh.write(text)
    png_path = to_png(results, os.path.join(directory, "atlas.png"))
    return text, md_path, png_path
