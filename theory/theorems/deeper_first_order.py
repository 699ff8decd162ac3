"""Deeper layers: how earlier-layer biases change layer ``l``'s logits (docs/theory.md §3.7).

Given its inputs, a prefixed layer ``l`` equals a no-prefix layer run on the prefixed content
activations (checked in every layer by ``relative_attention`` and ``convex_output``).  Across layers
the content activations themselves move: with the attention inputs ``x`` (no prefix anywhere) and
``x + d`` (prefix in every layer; ``d`` = the change caused by the earlier layers' biases, after the
layer's norm when pre-LN), the logit ``l_ij = T (x_i^T H x_j)`` changes, to first order, by

    delta l_ij = T (d_i^T H x_j + x_i^T H d_j)

(with query/key biases and RoPE: ``T/sqrt(k) (dq_i . k_j + q_i . dk_j)`` with ``dq = W_Q d``,
``dk = W_K d``, rotated by the same positions).  The logit is a quadratic function of the input, so
the central difference ``(l(x + eps d) - l(x - eps d)) / (2 eps)`` equals the first-order term
exactly; the numeric check compares the two (relative residual).
"""

import jax.numpy as jnp
import sympy as sp

from theory.attention import attention_layer
from theory.compare import layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.layers import apply_norm
from theory.positional import rotate
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import base_run, core_architecture

EPS = 1e-2  # finite-difference step (the central difference of a quadratic is exact for any step)

# a 2-dimensional instance: H = [[h11, h12], [h21, h22]], x_i, x_j, d_i, d_j in R^2
h11, h12, h21, h22, T, eps = sp.symbols("H_11 H_12 H_21 H_22 T epsilon")
xi1, xi2, xj1, xj2, di1, di2, dj1, dj2 = sp.symbols("x_i1 x_i2 x_j1 x_j2 d_i1 d_i2 d_j1 d_j2")
l_fun, first, fd = sp.symbols("l(epsilon) delta_l FD")
Hm = sp.Matrix([[h11, h12], [h21, h22]])
xi, xj, di, dj = (
    sp.Matrix([xi1, xi2]),
    sp.Matrix([xj1, xj2]),
    sp.Matrix([di1, di2]),
    sp.Matrix([dj1, dj2]),
)


def _logit(e):
    return T * ((xi + e * di).T * Hm * (xj + e * dj))[0, 0]


def derivation() -> Derivation:
    return Derivation(
        title=(
            "First-order change of a deeper layer's logit from "
            "earlier-layer biases (exact central difference)"
        ),
        definitions=(
            (
                l_fun,
                _logit(eps),
                "logit after the activations move by eps d (2-d instance of x_i^T H x_j)",
            ),
            (
                first,
                T * ((di.T * Hm * xj)[0, 0] + (xi.T * Hm * dj)[0, 0]),
                "T (d_i^T H x_j + x_i^T H d_j)",
            ),
            (fd, (_logit(eps) - _logit(-eps)) / (2 * eps), "central difference of the logit"),
        ),
        steps=(
            Step(
                sp.diff(_logit(eps), eps).subs(eps, 0),
                first,
                "the derivative at eps = 0 is the stated formula",
            ),
            Step(
                l_fun - _logit(0) - eps * first,
                eps**2 * T * (di.T * Hm * dj)[0, 0],
                "the remainder is exactly the second-order "
                "term eps^2 T d_i^T H d_j (bilinear logit)",
            ),
            Step(
                fd, first, "so the central difference equals the first-order change for every eps"
            ),
        ),
        notes=(
            "The 2 x 2 instance is representative: every step is an identity of bilinear "
            "forms, whose coefficients are checked entry by entry, and the same expansion "
            "holds in any dimension. Query and key biases make the logit affine-bilinear "
            "(same conclusion); RoPE multiplies q and k by fixed orthogonal matrices; "
            "ALiBi adds a constant. Invariance given inputs (the other half of the "
            "deeper-layer statement) is relative_attention / convex_output, which compare "
            "every layer of the prefixed run with a no-prefix layer on the same inputs.",
        ),
    )


def _layer_gap(arch, bp, layer, x, d):
    """Relative gap between the central difference and the first-order formula in one layer."""
    scale = arch.temperature / jnp.sqrt(arch.d_head)
    group = arch.n_heads // arch.kv_heads

    def scores(h):
        return attention_layer(
            bp["attn"],
            arch,
            h,
            layer.positions,
            layer.content_mask,
            jnp.zeros(h.shape[0], bool),
        )[1][act_name("scores")]

    fd = (scores(x + EPS * d) - scores(x - EPS * d)) / (2 * EPS)
    q = jnp.einsum("nd,hdk->nhk", x, bp["attn"]["W_Q"]) + bp["attn"]["b_Q"]
    k = jnp.einsum("nd,gdk->ngk", x, bp["attn"]["W_K"]) + bp["attn"]["b_K"]
    dq = jnp.einsum("nd,hdk->nhk", d, bp["attn"]["W_Q"])
    dk = jnp.einsum("nd,gdk->ngk", d, bp["attn"]["W_K"])
    q, k, dq, dk = (rotate(arch, a, layer.positions) for a in (q, k, dq, dk))
    k, dk = jnp.repeat(k, group, axis=1), jnp.repeat(dk, group, axis=1)
    first = scale * (jnp.einsum("qhd,khd->hqk", dq, k) + jnp.einsum("qhd,khd->hqk", q, dk))
    visible = layer.content_mask[None]
    gap = jnp.where(visible, jnp.abs(fd - first), 0.0)
    return jnp.max(gap) / jnp.maximum(jnp.max(jnp.where(visible, jnp.abs(first), 0.0)), 1.0)


def residuals(arch, trial):
    """[n_layers]: relative gap between the central difference and the first-order formula."""
    n_p = n_virtual(trial.context)
    _, base_cache = base_run(arch, trial)
    out = []
    for l, layer in enumerate(layer_pairs(arch, trial)[0]):
        bp = trial.params["blocks"][l]
        pre_ln = arch.norm == "pre"
        x = base_cache[act_name("resid_pre", l)]
        adapted_in = layer.adapted[act_name("resid_pre")][n_p:]
        if pre_ln:
            x = apply_norm(bp["ln1"], x, arch)
            adapted_in = apply_norm(bp["ln1"], adapted_in, arch)
        # d: the change of this layer's input caused by earlier biases, plus the change this
        # layer's own prefix causes in its output (what the next layer receives), so that
        # layer 0 is not vacuous
        d = (
            adapted_in
            - x
            + layer.adapted[act_name("attn_out")][n_p:]
            - layer.base[act_name("attn_out")]
        )
        out.append(_layer_gap(arch, bp, layer, x, d))
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


def expect(arch, method):
    if arch.qk_norm:
        return (
            "fails",
            "qk-norm makes the logit non-quadratic in the input: the formula is first order only",
        )
    return "holds", "docs/theory.md §3.7"


MEASURES = """\
Prefix method, every layer: with x the layer's attention input in the base run (no prefix
anywhere) and d its change in the prefixed run plus the change the layer's own prefix makes to
its output (so layer 0 is not vacuous), the central difference (l(x + eps d) - l(x - eps d)) /
(2 eps) of the attention scores against the first-order formula T/sqrt(k) (dq_i . k_j +
q_i . dk_j); relative max gap. The logit is quadratic in the input, so the two agree exactly."""

THEOREM = Theorem(
    id="deeper_first_order",
    statement="Earlier-layer biases d change a deeper logit by T (d_i^T H x_j + x_i^T H d_j) to "
    "first order (checked against central differences).",
    section="§3.7",
    assumptions=(
        "the logit is bilinear in the attention input (no qk-norm)",
        "d is the change of the attention input (after the layer's norm for pre-LN)",
        "content at the same positions with and without the prefix",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=core_architecture,
    methods=("prefix",),
    expect=expect,
    controls=(
        Control(
            "qk-norm",
            "normalised queries and keys make the logit non-quadratic: the formula misses",
            "gpt",
            "prefix",
            changes=(("positional", "rope"), ("qk_norm", True)),
        ),
    ),
    requires=("attention", "projections"),
    coq=CoqProof(
        names=(
            "DeeperFirstOrder.deeper_first_order",
            "DeeperFirstOrder.deeper_first_order_reals",
            "DeeperFirstOrder.moved_logit_expansion",
            "DeeperFirstOrder.central_difference_exact",
            "DeeperFirstOrder.deeper_first_order_qk",
        ),
        general_in=(
            "every dimension d, bilinear form H = W_Q^T W_K, temperature T and activation changes "
            "d_i, d_j; query/key form for any head dimension (biases, RoPE)"
        ),
    ),
)
