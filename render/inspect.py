"""The heatmap of ``prefix-theory inspect``: what an adapter does to each head, at a glance.

Input: the JSON form of an inspection (``interop.inspect.Inspection.to_json()``), so this
module needs nothing but matplotlib.  Four panels, layers as rows and heads as columns:
mean prefix attention mass, dimension of the span of the biases the head adds (out of the
span of the prefix values), and the largest change of content attention on a log scale
(zero at layer 0 by the theorem, measured deeper).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from theory.errors import ToolkitError

ANNOTATE_UP_TO = 24  # cells per axis that still get their number written in


def require_matplotlib():
    """pyplot with the Agg backend (ToolkitError with the install command if it is missing)."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise ToolkitError(
            "the PNG needs the optional package 'matplotlib'; install it with: "
            'pip install -e ".[experiments]"'
        ) from None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot_inspection(result: dict, path, title: str | None = None) -> Path:
    """Write the heatmap PNG of an inspection (``Inspection.to_json()``) to ``path``."""
    plt = require_matplotlib()
    L, H = result["n_layers"], result["n_heads"]
    mass = np.asarray(result["prefix_mass_mean"], float)
    mass_max = np.asarray(result["prefix_mass_max"], float)
    bias = np.asarray(result["bias_rank"], float)
    values = np.asarray(result["value_rank"], float)
    change = np.asarray(result["content_change"], float)
    floor = 1e-17
    panels = [
        ("prefix attention mass\nmean over queries", mass, "viridis", (0, 1), "{:.2f}"),
        ("prefix attention mass\nmax over queries", mass_max, "viridis", (0, 1), "{:.2f}"),
        (
            "bias span dimension\n(of the prefix value span)",
            bias,
            "magma",
            (0, max(1.0, values.max())),
            None,
        ),
        (
            "content-attention change\nlog10 max |A^pt/(1-m) - A|",
            np.log10(np.maximum(change, floor)),
            "inferno",
            (np.log10(floor), 0),
            "{:.0f}",
        ),
    ]
    width = max(10.0, 4 * 0.35 * H + 4)
    fig, axes = plt.subplots(1, 4, figsize=(width, 1.2 + 0.45 * L + 1.5), squeeze=False)
    for ax, (name, data, cmap, (lo, hi), fmt) in zip(axes[0], panels, strict=True):
        image = ax.imshow(data, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(H))
        ax.set_yticks(range(L))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        if H <= ANNOTATE_UP_TO and L <= ANNOTATE_UP_TO:
            for l in range(L):
                for h in range(H):
                    text = (
                        f"{int(bias[l, h])}/{int(values[l, h])}"
                        if fmt is None
                        else fmt.format(data[l, h])
                    )
                    bright = (data[l, h] - lo) / ((hi - lo) or 1.0) > 0.6
                    color = "black" if bright else "white"
                    ax.text(
                        h,
                        l,
                        text.replace("-0", "0") if text == "-0" else text,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=color,
                    )
    adapter = result.get("adapter", {})
    fig.suptitle(
        title
        or f"{result['model']}: {adapter.get('peft_type', adapter.get('context', 'adapter'))} "
        f"(n_p={result['n_p']}) on {len(result['inputs'])} inputs",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
