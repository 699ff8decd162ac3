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
expectation), ``error`` (no verdict: the check raised, a residual is not finite, or the
context had no effect), ``n/a`` (the theorem is not about this
architecture: it lacks a feature the theorem requires, e.g. attention in a recurrent
model) and ``not run`` (none of the theorem's context methods ran there).
Architectures are described by their features so a reader sees at a glance where the
paper's limits hold. The PNG shows one marker per cell and a legend; the residuals and
reasons are in the Markdown.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from theory.architecture import Architecture
from theory.registry import ARCHITECTURES, ATTENTION_KINDS, METHODS, THEOREMS
from theory.zoo.modern import MODIFIED

STATUS_COLOURS = {
    "holds": "#2e7d32",
    "modified": "#00897b",
    "fails": "#757575",
    "UNEXPECTED": "#e53935",
    "error": "#8e24aa",
    "n/a": "#bdbdbd",
    "not run": "#ffffff",
}
# one marker per status (shape and colour both differ, so the grid reads in grey scale too)
STATUS_MARKERS = {
    "holds": "o",
    "modified": "D",
    "fails": "X",
    "UNEXPECTED": "^",
    "error": "s",
    "n/a": ".",
}
STATUS_LABELS = {
    "holds": "holds",
    "modified": "holds (modified form)",
    "fails": "fails, as expected",
    "UNEXPECTED": "UNEXPECTED",
    "error": "error",
    "n/a": "n/a (not about this architecture)",
}


@dataclass
class Cell:
    status: str  # holds | modified | fails | UNEXPECTED | error | n/a | not run
    context_residual: float | None  # max residual over context methods (None if none ran)
    control_residual: float | None  # min residual over weight-update controls (None if none ran)
    methods: tuple  # methods that ran here
    reason: str  # expectation reason (fails / modified) or the error / the unexpected rows
    witness_residual: float | None = None  # a holding cell's context rows expected to fail


def features(arch: Architecture) -> str:
    """One-line feature summary: positions, attention (or recurrence), heads, norm, block, mask."""
    if "recurrence" in arch.features:
        parts = [arch.positional, f"recurrence {arch.block}"]
        if arch.d_state:
            parts.append(f"d_state {arch.d_state}")
    else:
        parts = [arch.positional, arch.attention]
    if "latent" in arch.features:
        parts.append(f"latent {arch.d_latent} + RoPE key {arch.d_rope}")
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
    if arch.block != "standard" and "recurrence" not in arch.features:
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
    order = {t: i for i, t in enumerate(THEOREMS)}  # registry order (BUILTIN: §3, then §5)
    theorems = sorted(dict.fromkeys(r.theorem for r in results), key=lambda t: order.get(t, 1e9))
    archs = list(dict.fromkeys(r.architecture for r in results))
    cells = {}
    for t in theorems:
        for a in archs:
            rows = [r for r in results if r.theorem == t and r.architecture == a]
            if not rows:
                cells[t, a] = _empty_cell(t, a)
                continue
            context = [r for r in rows if not METHODS[r.method].changes_weights]
            controls = [r for r in rows if METHODS[r.method].changes_weights]
            holding = [r for r in context if r.expected == "holds"]
            witness = _smallest(
                r.max_residual for r in context if r.expected == "fails" and holding
            )  # a cell mixing an identity with a witness (e.g. hierarchy_strict, latent_strict)
            ctx_res = _largest(r.max_residual for r in holding or context)
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
                cell = Cell("not run", ctx_res, ctl_res, methods, "only negative controls ran")
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
            cell.witness_residual = witness
            cells[t, a] = cell
    return theorems, archs, cells


def _empty_cell(theorem_id: str, arch_name: str) -> Cell:
    """The cell of a (theorem, architecture) pair with no row: not applicable, or not run."""
    theorem, arch = THEOREMS.get(theorem_id), ARCHITECTURES.get(arch_name)
    if theorem is not None and arch is not None and not theorem.applies(arch):
        return Cell("n/a", None, None, (), f"requires {', '.join(theorem.requires)}")
    return Cell("not run", None, None, (), "none of the theorem's methods ran here")


def _cell_text(cell: Cell) -> str:
    text = {
        "holds": "holds",
        "modified": "holds*",
        "fails": "fails",
        "UNEXPECTED": "UNEXPECTED",
        "error": "ERROR",
        "n/a": "n/a",
        "not run": "",
    }[cell.status]
    if cell.status in ("n/a", "not run"):
        return text
    if cell.witness_residual is not None:
        text = f"{text} {_fmt(cell.context_residual)} + witness {_fmt(cell.witness_residual)}"
        return f"{text} / ctrl {_fmt(cell.control_residual)}"
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
        "Each cell: verdict of the context methods, their largest residual, and the smallest "
        "residual of the weight-update negative controls (`ctrl`), which must stand far above "
        f"the tolerance {tol:.0e}; `+ witness` = the smallest residual of a method expected to "
        "fail in a holding cell (a witness theorem such as `latent_strict`). `holds*` = holds "
        "in a modified form (see the reasons below); `fails` = the theorem is expected to fail "
        "on this architecture and does; `UNEXPECTED` = a verdict differs from the registry's "
        "expectation (a witness seed and trial is listed below); `ERROR` = no verdict (the "
        "check raised, a residual is not finite, or the context had no effect; the reason is "
        "listed below); `n/a` = the theorem is not "
        "about this architecture (it lacks a feature the theorem requires, listed below); an "
        "empty cell = none of the theorem's methods ran there (atlas architectures run "
        "`default_methods` unless `--method` is given). `docs/atlas.png` shows the same grid, "
        "one marker per cell.",
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
    requires = [(t, THEOREMS[t].requires) for t in theorems if t in THEOREMS]
    if any(cells[t, a].status == "n/a" for t in theorems for a in archs):
        lines += ["", "## Which theorems apply where", ""]
        lines.append(
            "A theorem applies to the architectures with the features it requires (`!f`: without "
            "feature `f`); the features come from the block kind and the attention kind "
            "(theory/blocks.py)."
        )
        lines += ["", "| theorem | requires | applies to |", "|---|---|---|"]
        for t, needed in requires:
            missing = [a for a in archs if cells[t, a].status == "n/a"]
            present = [a for a in archs if a not in missing]
            where = (
                "every architecture"
                if not missing
                else f"only {', '.join(present)}"
                if len(present) <= len(missing)
                else f"all but {', '.join(missing)}"
            )
            lines.append(f"| `{t}` | {', '.join(needed) or '(nothing)'} | {where} |")
    kinds = sorted(
        {
            ARCHITECTURES[a].attention
            for a in archs
            if a in ARCHITECTURES and "attention" in ARCHITECTURES[a].features
        }
    )
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
    """Save the grid as one marker per cell with a legend (matplotlib, no display needed)."""
    try:
        import matplotlib
    except ImportError as exc:
        from theory.errors import ToolkitError

        raise ToolkitError(
            "the atlas PNG needs matplotlib (pip install 'prefix-theory[experiments]')"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    theorems, archs, cells = grid(results)
    fig, ax = plt.subplots(figsize=(3.6 + 0.42 * len(theorems), 2.6 + 0.3 * len(archs)))
    for status, marker in STATUS_MARKERS.items():
        at = [
            (j, i)
            for i, a in enumerate(archs)
            for j, t in enumerate(theorems)
            if cells[t, a].status == status
        ]
        if at:
            xs, ys = zip(*at, strict=True)
            size = 18 if status == "n/a" else 70
            ax.scatter(xs, ys, marker=marker, s=size, color=STATUS_COLOURS[status], zorder=2)
    ax.set_xlim(-0.6, len(theorems) - 0.4)
    ax.set_ylim(len(archs) - 0.4, -0.6)
    sections = {t: THEOREMS[t].section for t in theorems if t in THEOREMS}
    ax.set_xticks(
        range(len(theorems)),
        [f"{t} ({sections[t]})" if t in sections else t for t in theorems],
        rotation=55,
        ha="left",
        fontsize=9,
    )
    ax.xaxis.tick_top()
    labels = []
    for a in archs:
        arch = ARCHITECTURES.get(a)
        kind = "" if arch is None else (arch.block if arch.block != "standard" else arch.attention)
        labels.append(f"{a}  ({kind})" if kind else a)
    ax.set_yticks(range(len(archs)), labels, fontsize=9)
    ax.grid(color="#eeeeee", zorder=0)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    used = [s for s in STATUS_MARKERS if any(c.status == s for c in cells.values())]
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=STATUS_MARKERS[s],
            color=STATUS_COLOURS[s],
            markersize=8,
            label=STATUS_LABELS[s],
        )
        for s in used
    ]
    legend = ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=min(len(used), 3),
        fontsize=9,
        frameon=False,
        title="residuals, controls and reasons: atlas.md",
        title_fontsize=8,
    )
    legend._legend_box.align = "center"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
