"""One prefix position in closed form (docs/theory.md §3.3).

For a content query ``i`` with logits ``l_ir`` to the visible content keys and
``l_i0`` to the single prefix position ``s``::

    A^pt_i0 = exp(l_i0) / (exp(l_i0) + sum_r exp(l_ir))
    A^pt_ij = A_ij (1 - A^pt_i0)
    t^pt_i  = A^pt_i0 W_V s + (1 - A^pt_i0) t_i
    t^pt_i - t_i = A^pt_i0 (W_V s - t_i)

so every content query's output is pulled towards the one point ``W_V s``.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.attention import mask_matrix
from theory.compare import layer_pairs
from theory.hooks import act_name
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture, max_abs, single_virtual_trial

PATTERN, SCORES, V, Z_HOOK = act_name("pattern"), act_name("scores"), act_name("v"), act_name("z")

e0 = sp.Symbol("e_{i0}", positive=True)  # exp(l_i0), the prefix logit exponentiated
e_ij = sp.Symbol("e_{ij}", positive=True)  # exp(l_ij), one content key
Z = sp.Symbol("Z_i", positive=True)  # sum_{r in C(i)} exp(l_ir)
S = sp.Symbol("S_i")  # sum_r exp(l_ir) v_r (one coordinate of the value space)
u = sp.Symbol("u")  # one coordinate of W_V s
A0 = sp.Symbol("A^{pt}_{i0}")
A_ij = sp.Symbol("A_{ij}")
Apt_ij = sp.Symbol("A^{pt}_{ij}")
t_i = sp.Symbol("t_i")
tpt_i = sp.Symbol("t^{pt}_i")


def derivation() -> Derivation:
    return Derivation(
        title=(
            "One prefix position: closed-form prefix weight, "
            "rescaled content attention, convex output"
        ),
        definitions=(
            (A0, e0 / (e0 + Z), "softmax weight of the prefix position (closed form)"),
            (A_ij, e_ij / Z, "softmax without the prefix"),
            (Apt_ij, e_ij / (e0 + Z), "softmax with the prefix"),
            (t_i, S / Z, "head output without the prefix"),
            (tpt_i, (e0 * u + S) / (e0 + Z), "head output with the prefix (value u = W_V s)"),
        ),
        steps=(
            Step(A0, 1 / (1 + Z / e0), "closed form: A^pt_i0 = sigmoid(l_i0 - log Z_i)"),
            Step(1 - A0, Z / (e0 + Z), "the content keeps the share Z_i / (e_i0 + Z_i)"),
            Step(Apt_ij, A_ij * (1 - A0), "relative attention is unchanged"),
            Step(tpt_i, A0 * u + (1 - A0) * t_i, "convex combination of W_V s and t_i"),
            Step(
                tpt_i - t_i,
                A0 * (u - t_i),
                "displacement: every query moves towards the one point W_V s",
            ),
            Step(A0, 1, "the prefix weight is a proper share (so the combination is convex)", "<"),
        ),
        notes=(
            "Z_i = sum_{r in C(i)} exp(l_ir) > 0 and S_i = sum_{r in C(i)} exp(l_ir) "
            "v_r are kept as symbols (Z_i positive), so nothing depends on the "
            "number of content keys. Z_i stands for a sum of any length, so the "
            "steps hold for every n, head, query, temperature and mask; the value "
            "steps are linear, so one coordinate proves every coordinate. With a "
            "KV-prefix u is the free value v_0 and e_i0 = exp(T q_i . k_0 / sqrt(k)).",
        ),
    )


def residuals(arch, trial):
    """Per-check residuals of the four closed-form identities (first virtual position only),
    all layers."""
    trial = single_virtual_trial(trial)
    group = arch.n_heads // arch.kv_heads
    sees_prefix = mask_matrix(arch, trial.key_mask)[1:, 0]  # [n] content query i sees the prefix
    out = []
    for layer in layer_pairs(arch, trial)[0]:
        adapted, base = layer.adapted, layer.base
        pattern = adapted[PATTERN][:, 1:, :]  # [H, n, 1 + n]
        l0 = adapted[SCORES][:, 1:, 0]  # [H, n] logit to the prefix
        content_scores = jnp.where(layer.content_mask[None], base[SCORES], -jnp.inf)
        a0 = jax.nn.sigmoid(
            l0 - jax.scipy.special.logsumexp(content_scores, axis=-1)
        )  # closed form
        a0 = jnp.where(sees_prefix[None], a0, 0.0)  # masked / out of window: no weight
        v0 = jnp.repeat(adapted[V][:1], group, axis=1)[0]  # [H, d_head], W_V s (or v_0)
        t, tpt = base[Z_HOOK], adapted[Z_HOOK][1:]  # [n, H, d_head]
        w = a0.T[..., None]  # [n, H, 1]
        out.append(
            jnp.stack(
                [
                    max_abs(pattern[:, :, 0] - a0),
                    max_abs(pattern[:, :, 1:] - base[PATTERN] * (1 - a0)[..., None]),
                    max_abs(tpt - (w * v0[None] + (1 - w) * t)),
                    max_abs((tpt - t) - w * (v0[None] - t)),
                ]
            )
        )
    return jnp.stack(out)  # [n_layers, 4]


def check(arch, trial):
    return residuals(arch, trial).max()


def instance(arch, trial):
    """(label, symbolic result at the JAX numbers, JAX value) for layer 0, head 0, the last
    content query."""
    trial = single_virtual_trial(trial)
    layer = layer_pairs(arch, trial)[0][0]
    i = trial.tokens.shape[0] - 1
    scores = layer.adapted[SCORES][0, 1 + i]  # [1 + n] logits of head 0, query i
    visible = mask_matrix(arch, trial.key_mask)[1 + i]
    shift = jnp.max(jnp.where(visible, scores, -jnp.inf))
    e = jnp.where(visible, jnp.exp(scores - shift), 0.0)  # exp(l) up to a common factor
    values = layer.adapted[V][:, 0, 0]  # first coordinate of each value, [1 + n]
    numbers = {
        e0: float(e[0]),
        Z: float(e[1:].sum()),
        e_ij: float(e[1]),
        S: float((e[1:] * values[1:]).sum()),
        u: float(values[0]),
    }
    definitions = derivation().definition_map

    def at(expr):
        return float(sp.sympify(expr).xreplace(definitions).xreplace(definitions).xreplace(numbers))

    pattern = layer.adapted[PATTERN][0, 1 + i]
    return [
        ("A^pt_i0 = e_i0 / (e_i0 + Z_i)", at(A0), float(pattern[0])),
        (
            "A^pt_ij = A_ij (1 - A^pt_i0), j = first content key",
            at(A_ij * (1 - A0)),
            float(pattern[1]),
        ),
        (
            "t^pt_i = A^pt_i0 u + (1 - A^pt_i0) t_i (first coordinate)",
            at(A0 * u + (1 - A0) * t_i),
            float(layer.adapted[Z_HOOK][1 + i, 0, 0]),
        ),
    ]


MEASURES = """\
The first virtual position of each random context, every layer given its inputs: the four
closed-form identities of the derivation, with A^pt_i0 computed as sigmoid(l_i0 - logsumexp_r
l_ir) from the prefix logit and the base run's content logits (0 where the query cannot see the
prefix: masked or outside the window); residual = the largest of the four max-abs gaps."""

THEOREM = Theorem(
    id="single_prefix",
    statement="One prefix position: A^pt_i0 = e_i0/(e_i0+Z_i), A^pt_ij = A_ij(1-A^pt_i0), "
    "t^pt_i - t_i = A^pt_i0 (W_V s - t_i).",
    section="§3.3",
    assumptions=(
        "softmax attention: the prefix enters the same denominator as the content",
        "content at the same positions with and without the prefix",
        "deeper layers: given the layer's inputs (the check runs every layer that way)",
        "numeric check: the first virtual position of each random context",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    instance=instance,
    default_run=core_architecture,
    methods=("prefix", "kv_prefix"),
    controls=(
        Control(
            "prefix outside the denominator",
            "a wrong softmax: the prefix weight is no longer e_i0 / (e_i0 + Z_i)",
            "broken-denominator",
            "prefix",
        ),
    ),
    coq=CoqProof(
        names=("SinglePrefix.single_prefix",),
        general_in=("every n >= 1, value dimension, prefix logit and value (prefix or KV-prefix)"),
    ),
)
