"""Figures of docs/theory.md §3 (matplotlib, from the `experiments`/`notebooks` extras).

* :func:`attention_maps`: a head's content attention without the prefix, with it,
  and with the prefix share removed and the rest rescaled — the last equals the
  first exactly when the theorem holds.
* :func:`bias_geometry`: head outputs without (``t_i``) and with (``t^pt_i``) the
  prefix, projected on a plane: each ``t^pt_i`` lies on the segment from ``t_i``
  towards the prefix value ``W_V s``.
"""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            import IPython

            if IPython.get_ipython() is None:
                matplotlib.use("Agg")
        except ImportError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rescaled_content_attention(pattern_pt, n_p: int):
    """``A^pt_ij / (1 - sum_p A^pt_ip)`` over content keys: ``[n, n_p + n] -> [n, n]``."""
    pattern_pt = np.asarray(pattern_pt)
    keep = 1.0 - pattern_pt[:, :n_p].sum(-1, keepdims=True)
    return pattern_pt[:, n_p:] / np.where(keep > 0, keep, 1.0)


def attention_maps(pattern_pt, pattern, n_p: int, title: str = "", tokens=None):
    """Three panels for one head: A (no prefix) ``[n, n]``,
    A^pt ``[n, n_p + n]``, A^pt rescaled ``[n, n]``.

    Returns the matplotlib figure; the third panel's title reports max |rescaled - A|.
    """
    plt = _plt()
    pattern_pt, pattern = np.asarray(pattern_pt), np.asarray(pattern)
    rescaled = rescaled_content_attention(pattern_pt, n_p)
    residual = float(np.abs(rescaled - pattern).max())
    fig, axes = plt.subplots(
        1,
        3,
        figsize=(12, 4),
        gridspec_kw={"width_ratios": [pattern.shape[1], pattern_pt.shape[1], pattern.shape[1]]},
    )
    panels = [
        (pattern, "no prefix: A"),
        (pattern_pt, f"with prefix: A^pt (first {n_p} keys = prefix)"),
        (rescaled, f"prefix share removed, rescaled\nmax |. - A| = {residual:.1e}"),
    ]
    for ax, (data, name) in zip(axes, panels, strict=False):
        image = ax.imshow(data, vmin=0, vmax=max(pattern.max(), pattern_pt.max()), cmap="viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    axes[1].axvline(n_p - 0.5, color="white", lw=1)
    fig.colorbar(image, ax=axes, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def bias_geometry(t, t_pt, prefix_value, title: str = ""):
    """Head outputs ``t [n, d_head]``, ``t_pt [n, d_head]``
    and ``W_V s`` ``[d_head]`` on their best plane."""
    plt = _plt()
    t, t_pt, v = np.asarray(t), np.asarray(t_pt), np.asarray(prefix_value)
    points = np.concatenate([t, t_pt, v[None]])
    centre = points.mean(0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)

    def project(x):
        return (x - centre) @ vt[:2].T

    P, Ppt, Pv = project(t), project(t_pt), project(v[None])[0]
    fig, ax = plt.subplots(figsize=(5, 5))
    for a, b in zip(P, Ppt, strict=False):
        ax.plot([a[0], Pv[0]], [a[1], Pv[1]], color="0.85", lw=0.8, zorder=0)
        ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="->", color="tab:blue"))
    ax.scatter(*P.T, label="t_i (no prefix)", color="tab:gray")
    ax.scatter(*Ppt.T, label="t^pt_i (with prefix)", color="tab:blue")
    ax.scatter(*Pv, marker="*", s=200, label="W_V s (prefix value)", color="tab:red")
    ax.legend(fontsize=8)
    ax.set_title(title or "a prefix pulls every output towards one point")
    ax.set_aspect("equal", adjustable="datalim")
    return fig
