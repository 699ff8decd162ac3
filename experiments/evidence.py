"""Evidence beyond accuracy, on the trained models (docs/theory.md §3 on real training runs).

* :func:`attention_maps` — layer-0 content attention without a prefix, with a prefix, and
  with the prefix share removed and the rest rescaled (they coincide, §3), next to the
  fully fine-tuned model's (which differs).  Residuals are computed in float64.
* :func:`bias_plot` — attention-block outputs at one content position for many inputs,
  one cloud per prefix: each is the no-prefix cloud pulled towards a fixed point
  (``t^pt = A0 W_V s + (1 - A0) t``), i.e. a bias.  Residual of the per-head convex
  combination in float64.
* :func:`prefix_attention` — the appendix observation: how a query's attention to the
  ``n_p`` prefix positions is distributed (far from uniform).

Figures are written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.tasks import MODEL_LEN, N_DIGITS, target
from theory.hooks import act_name
from theory.model import forward


def _in_float64(fn):
    """Run ``fn`` with JAX's float64 enabled, whatever the process-wide setting: the
    residuals are float64 figures, and training elsewhere never depends on that setting."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _seq(x, task):
    """Model input ``[19]``: x then the task's output (teacher forcing)."""
    return jnp.asarray(np.concatenate([x, target(task, x[None])[0]])[:MODEL_LEN], jnp.int32)


@_in_float64
def attention_maps(arch, base, ft_params, prefix_states, x, task, path, n_p):
    """PNG of layer-0 head-0 content attention: pretrained (no prefix), fine-tuned, prefixed,
    prefixed rescaled; returns the residual max |rescaled - no-prefix| over heads."""
    from theory.context import Prefix

    seq = _seq(x, task)
    # the no-prefix run puts the content at the same positions as the prefixed run
    base64 = _f64(base)
    _, cache = forward(base64, arch, seq, None, position_offset=n_p)
    A_none = np.asarray(cache[act_name("pattern", 0)])
    _, cache = forward(_f64(ft_params), arch, seq, None, position_offset=n_p)
    A_ft = np.asarray(cache[act_name("pattern", 0)])
    _, cache = forward(base64, arch, seq, Prefix(jnp.asarray(prefix_states, jnp.float64)))
    P = np.asarray(cache[act_name("pattern", 0)])
    A_pt, share = P[:, n_p:, n_p:], P[:, n_p:, :n_p].sum(-1)
    rescaled = A_pt / (1.0 - share[..., None])
    residual = float(np.abs(rescaled - A_none).max())
    change_ft = float(np.abs(A_ft - A_none).max())
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    panels = [
        (A_none[0], "pretrained, no prefix"),
        (A_ft[0], "fully fine-tuned"),
        (A_pt[0], "with prefix (content keys only)"),
        (
            rescaled[0],
            f"with prefix, rescaled by 1/(1-A0)\nmax |diff| vs no prefix = {residual:.1e}",
        ),
    ]
    for ax, (M, title) in zip(axes, panels, strict=False):
        im = ax.imshow(M, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("key (content position)")
        ax.set_ylabel("query")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(
        f"layer 0 head 0 attention on one '{task}' sequence; fine-tuning changes it "
        f"(max change {change_ft:.2f}), a prefix only rescales it",
        fontsize=10,
    )
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return {"rescaled_vs_no_prefix_max_abs": residual, "finetune_change_max_abs": change_ft}


@_in_float64
def bias_plot(arch, base, prefixes: dict, x_inputs, path, position=N_DIGITS - 1):
    """PNG of the attn_out activation at content ``position`` for each prefix (and none), PCA 2-D.

    ``prefixes``: {label: states [n_layers, n_p, d_model]} (layer 0 is used).
    Returns {label: residual of the per-head convex combination, float64} and the
    mean shift of each cloud.
    """
    from theory.context import Prefix

    base64 = _f64(base)
    n_p = next(iter(prefixes.values())).shape[1]
    seqs = jnp.asarray(
        np.concatenate([x_inputs, np.zeros((len(x_inputs), MODEL_LEN - N_DIGITS), np.int32)], 1)
    )

    def run(context):
        def one(s):
            _, c = forward(base64, arch, s, context, position_offset=n_p, validate=False)
            return (
                c[act_name("attn_out", 0)][-MODEL_LEN:][position],
                c[act_name("z", 0)][-MODEL_LEN:][position],
                c[act_name("pattern", 0)][:, -MODEL_LEN:][:, position, :],
            )

        return jax.vmap(one)(seqs)

    out_none, z_none, _ = run(None)
    clouds = {"no prefix": np.asarray(out_none)}
    residuals = {}
    for label, states in prefixes.items():
        states = jnp.asarray(states, jnp.float64)
        out, z, pattern = run(Prefix(states))
        A0 = pattern[:, :, :n_p]  # [B, H, n_p]
        s_norm = states[0]  # block-0 input
        p = base64["blocks"][0]
        if arch.norm == "pre":
            from theory.layers import apply_norm

            s_norm = apply_norm(p["ln1"], s_norm, arch)
        v_s = jnp.einsum("pd,hdk->phk", s_norm, p["attn"]["W_V"]) + p["attn"]["b_V"]  # [n_p, H, k]
        pred = jnp.einsum("bhp,phk->bhk", A0, v_s) + (1.0 - A0.sum(-1))[..., None] * z_none
        residuals[label] = float(jnp.abs(pred - z).max())
        clouds[label] = np.asarray(out)
    allpts = np.concatenate(list(clouds.values()))
    mean = allpts.mean(0)
    _, _, vt = np.linalg.svd(allpts - mean, full_matrices=False)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    shifts = {}
    for label, pts in clouds.items():
        proj = (pts - mean) @ vt[:2].T
        ax.scatter(proj[:, 0], proj[:, 1], s=6, alpha=0.5, label=label)
        shifts[label] = float(np.linalg.norm(pts.mean(0) - clouds["no prefix"].mean(0)))
    ax.set_title(
        f"attention-block output at content position {position} ({len(x_inputs)} inputs)\n"
        "each prefix moves the cloud towards a fixed point: a bias",
        fontsize=10,
    )
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, markerscale=2)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return {"convex_combination_residual": residuals, "mean_shift": shifts}


@_in_float64
def prefix_attention(arch, base, prefixes: dict, x_inputs, path):
    """Share of each prefix position in the attention a content query gives to the prefix.

    For each prefix, layer, head: mean over inputs and content queries of
    ``A_ij / sum_j' A_ij'`` over prefix positions ``j``.  Returns per prefix the median
    over heads of ``max_j share * n_p`` (1 = uniform), the mean total-variation distance
    from uniform, and writes a heatmap PNG.
    """
    from theory.context import Prefix

    n_p = next(iter(prefixes.values())).shape[1]
    seqs = jnp.asarray(
        np.concatenate([x_inputs, np.zeros((len(x_inputs), MODEL_LEN - N_DIGITS), np.int32)], 1)
    )
    stats, maps = {}, {}
    for label, states in prefixes.items():
        ctx = Prefix(jnp.asarray(states))

        def one(s, ctx=ctx):
            _, c = forward(base, arch, s, ctx, validate=False)
            return jnp.stack(
                [
                    c[act_name("pattern", l)][:, n_p : n_p + N_DIGITS, :n_p]
                    for l in range(arch.n_layers)
                ]
            )  # [L, H, n_in, n_p]

        P = np.asarray(jax.vmap(one)(seqs), np.float64)  # [B, L, H, q, n_p]
        share = P / np.maximum(P.sum(-1, keepdims=True), 1e-30)
        mean_share = share.mean(axis=(0, 3)).reshape(-1, n_p)  # [L*H, n_p]
        maps[label] = mean_share
        tv = 0.5 * np.abs(share - 1.0 / n_p).sum(-1).mean()
        stats[label] = {
            "median_max_share_x_np": float(np.median(mean_share.max(-1) * n_p)),
            "mean_tv_from_uniform": float(tv),
            "mean_prefix_mass": float(P.sum(-1).mean()),
        }
    plt = _plt()
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.8), squeeze=False)
    for i, (ax, (label, M)) in enumerate(zip(axes[0], maps.items(), strict=False)):
        im = ax.imshow(M, vmin=0, vmax=0.6, cmap="magma", aspect="auto")
        ax.set_title(f"prefix for {label}", fontsize=9)
        ax.set_xlabel("prefix position")
        if i == 0:
            ax.set_ylabel("layer x head")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(
        f"share of each of the {n_p} prefix positions in the prefix attention "
        f"(uniform = {1 / n_p:.2f})",
        fontsize=10,
    )
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return stats
