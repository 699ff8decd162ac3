"""Attention maps of a real head with and without a prefix (like the paper's §4 figure), as PNG.

Per row (a layer and head), four panels over the content tokens of one sentence:

1. ``A``: the model run WITHOUT the prefix (content at the same positions);
2. ``A^pt``: the prefixed run, prefix columns first;
3. ``A^pt / (1 - m_i)``: prefix columns removed, rows rescaled (docs/theory.md §3);
4. the base layer run on the prefixed model's content inputs at this layer.

At layer 0 panels 1, 3 and 4 coincide (the unconditional statement).  Deeper,
3 equals 4 (the statement given the layer's inputs) but differs from 1: the
prefix changed the inputs of the layer, hence its attention.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pretrained.optional import require
from render.figures import rescaled_content_attention
from theory.attention import mask_matrix
from theory.blocks import block_forward
from theory.context import n_virtual
from theory.hooks import act_name
from theory.model import forward


def attention_maps(params, arch, ids, context, layer: int, head: int) -> dict:
    """The four ``[n, n]`` maps (``with_prefix`` is ``[n, n_p + n]``) of one head, no padding."""
    n_p, n = n_virtual(context), ids.shape[0]
    with jax.default_matmul_precision("highest"):
        _, pt = forward(params, arch, ids, context, validate=False)
        _, base = forward(params, arch, ids, None, position_offset=n_p, validate=False)
        resid = pt[act_name("resid_pre", layer)][n_p:]
        _, given = block_forward(
            params["blocks"][layer],
            arch,
            resid,
            n_p + jnp.arange(n),
            mask_matrix(arch, jnp.ones(n, bool)),
            jnp.zeros(n, bool),
        )
    with_prefix = np.asarray(pt[act_name("pattern", layer)][head, n_p:, :], np.float64)
    mass = with_prefix[:, :n_p].sum(-1, keepdims=True)
    return {
        "no_prefix": np.asarray(base[act_name("pattern", layer)][head], np.float64),
        "with_prefix": with_prefix,
        "rescaled": rescaled_content_attention(with_prefix, n_p),
        "given_inputs": np.asarray(given[act_name("pattern")][head], np.float64),
        "prefix_mass": mass[:, 0],
    }


def plot_attention(
    params, arch, ids, tokens: list, context, layer_heads, path, title: str = ""
) -> Path:
    """Save the four panels for each ``(layer, head)`` in ``layer_heads`` as one PNG at ``path``."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    n_p = n_virtual(context)
    rows = len(layer_heads)
    fig, axes = plt.subplots(rows, 4, figsize=(17, 4.3 * rows), squeeze=False)
    for r, (layer, head) in enumerate(layer_heads):
        maps = attention_maps(params, arch, ids, context, layer, head)
        d_uncond = np.abs(maps["rescaled"] - maps["no_prefix"]).max()
        d_cond = np.abs(maps["rescaled"] - maps["given_inputs"]).max()
        panels = [
            (maps["no_prefix"], f"L{layer} H{head}: no prefix  A", tokens),
            (
                maps["with_prefix"],
                f"with prefix  A^pt (mean prefix mass {maps['prefix_mass'].mean():.2f})",
                [f"<p{j}>" for j in range(n_p)] + tokens,
            ),
            (
                maps["rescaled"],
                f"prefix removed, rescaled  A^pt/(1-m)\nmax |diff to no prefix| = {d_uncond:.1e}",
                tokens,
            ),
            (
                maps["given_inputs"],
                f"base layer on prefixed inputs\nmax |diff to rescaled| = {d_cond:.1e}",
                tokens,
            ),
        ]
        for c, (image, label, keys) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_title(label, fontsize=9)
            ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=7)
            ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def strongest_head(params, arch, ids, context, layer: int) -> int:
    """The head of ``layer`` giving the prefix the
    largest mean attention (so the effect is visible)."""
    n_p = n_virtual(context)
    with jax.default_matmul_precision("highest"):
        _, cache = forward(params, arch, ids, context, validate=False)
    return int(jnp.argmax(cache[act_name("pattern", layer)][:, n_p:, :n_p].sum(-1).mean(-1)))
