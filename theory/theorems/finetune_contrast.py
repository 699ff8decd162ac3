"""Contrast: a rank-1 update of W_Q changes relative attention; no prefix can
(docs/theory.md §3.9).

For any head (``d_head >= 1``) and a query ``i`` that sees two content keys with different keys
``k_1 != k_2`` and a non-zero attention input ``h_i`` (non-degenerate content), the rank-1 update

    W_Q <- W_Q + b a^T,    b = h_i / |h_i|^2,    a = R_i^{-1} (k_1 - k_2) / |k_1 - k_2|^2

(TransformerLens layout: ``q = h W_Q``; ``R_i`` the query's RoPE rotation, identity otherwise) moves
the query by ``R_i a`` and so multiplies ``A_i1 / A_i2`` by exactly ``exp(T / sqrt(d_head))``:
relative attention changes.  A prefix, on the other hand, rescales every content weight by the same
factor.

"""

import jax
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
from theory.theorems.common import core_architecture

PATTERN, K = act_name("pattern"), act_name("k")

T, sk = sp.symbols("T sqrt_k", positive=True)
hh, ww = sp.symbols(
    "|h_i|^2 |w|^2", positive=True
)  # |h_i|^2 and |k_1 - k_2|^2, non-degenerate content
hb, aw = sp.symbols("h_i.b a.w", real=True)  # h_i . b and (R_i a) . (k_1 - k_2)
dl, l1, l2 = sp.symbols("Delta l_{i1} l_{i2}", real=True)


def derivation() -> Derivation:
    return Derivation(
        title=(
            "A rank-1 update of W_Q changes relative attention by exp(T/sqrt(k)); a prefix cannot"
        ),
        definitions=(
            (hb, hh / hh, "h_i . b with b = h_i / |h_i|^2"),
            (
                aw,
                ww / ww,
                "(R_i a) . (k_1 - k_2) with a = R_i^{-1}(k_1 "
                "- k_2) / |k_1 - k_2|^2 (R_i orthogonal)",
            ),
            (dl, T / sk * hb * aw, "change of l_i1 - l_i2: the query moves by (h_i . b) R_i a"),
        ),
        steps=(
            Step(
                dl,
                T / sk,
                "the log-ratio log(A_i1/A_i2) = l_i1 - l_i2 changes by exactly T / sqrt(k)",
            ),
            Step(
                dl,
                0,
                "... which is positive: relative attention "
                "changes (any head, k >= 1, h_i != 0, k_1 != k_2)",
                ">",
            ),
            Step(
                sp.log(sp.exp(l1) / sp.exp(l2)),
                l1 - l2,
                "softmax ratios depend only on logit differences; a prefix adds no term to l_i1 "
                "- l_i2 (it only enlarges the denominator), so it leaves every ratio unchanged",
            ),
        ),
        notes=(
            "Every weight-based change of H that makes the logit change "
            "depend on the key can do this; the limitation of prefixes is "
            "structural (they never touch H), not a parameter count. A rank-1 "
            "update of W_K can do the same, but not symmetrically: it needs a "
            "non-zero query and the two keys' inputs linearly independent.",
        ),
    )


def _layer_residuals(arch, bp, layer, n_p: int, i: int):
    """[2]: relative error of the rank-1 witness and the prefix's residual in one layer."""
    group = arch.n_heads // arch.kv_heads
    predicted = arch.temperature / jnp.sqrt(arch.d_head)
    x = layer.adapted[act_name("resid_pre")][n_p:]
    h = apply_norm(bp["ln1"], x, arch) if arch.norm == "pre" else x
    keys = jnp.repeat(layer.base[K], group, axis=1)  # [n, H, d_head] (rotated)
    dist = jnp.where(
        layer.content_mask[i][:, None], jnp.sum((keys - keys[i]) ** 2, -1), -1.0
    )  # [n, H]
    j2 = jnp.argmax(dist, axis=0)  # [H] the most different visible key
    w = keys[i] - keys[j2, jnp.arange(arch.n_heads)]  # [H, d_head] = k_i - k_j2
    # [H] the premise fails: no second visible key with a different key, h_i = 0, or the query
    # cannot see itself (its own key is masked out)
    degenerate = (
        (jnp.max(dist, axis=0) <= 1e-20)
        | (jnp.sum(h[i] * h[i]) <= 1e-20)
        | ~layer.content_mask[i, i]
    )
    w = jnp.where(degenerate[:, None], 1.0, w)
    a = w / jnp.sum(w * w, axis=-1, keepdims=True)
    a = rotate(arch, a[None], -layer.positions[i : i + 1])[0]  # R_i^{-1}
    b = h[i] / jnp.sum(h[i] * h[i])

    def log_ratio_change(head):
        onehot = (jnp.arange(arch.n_heads) == head)[:, None, None]
        attn = dict(bp["attn"], W_Q=bp["attn"]["W_Q"] + onehot * jnp.outer(b, a[head])[None])
        _, rec = attention_layer(
            attn, arch, h, layer.positions, layer.content_mask, jnp.zeros(h.shape[0], bool)
        )
        new, old = rec[PATTERN][head, i], layer.base[PATTERN][head, i]
        j = j2[head]
        return (jnp.log(new[i]) - jnp.log(new[j])) - (jnp.log(old[i]) - jnp.log(old[j]))

    change = jax.vmap(log_ratio_change)(jnp.arange(arch.n_heads))
    pattern = layer.adapted[PATTERN][:, n_p:, :]
    mass = pattern[:, :, :n_p].sum(-1)
    prefix_res = jnp.max(jnp.abs(pattern[:, :, n_p:] - (1 - mass)[..., None] * layer.base[PATTERN]))
    # vacuous (0) where the premise fails
    witness = jnp.where(degenerate, 0.0, jnp.abs(change - predicted) / predicted)
    return jnp.stack([jnp.max(witness), prefix_res])


def residuals(arch, trial):
    """[n_layers, 2]: relative error of the rank-1 witness, and the prefix's relative-attention
    residual (the last content query ``i``, every layer given its inputs)."""
    n_p = n_virtual(trial.context)
    i = trial.tokens.shape[0] - 1  # the last content query, key j1 = i (itself)
    pairs = layer_pairs(arch, trial)[0]
    return jnp.stack(
        [
            _layer_residuals(arch, trial.params["blocks"][l], layer, n_p, i)
            for l, layer in enumerate(pairs)
        ]
    )


def check(arch, trial):
    return residuals(arch, trial).max()


def instance(arch, trial):
    """The derived change T/sqrt(k) of log(A_i1/A_i2)
    next to the measured one (layer 0, every head)."""
    predicted = float(sp.N((T / sk).subs({T: arch.temperature, sk: sp.sqrt(arch.d_head)})))
    errors = residuals(arch, trial)[0]
    return [
        (
            "log-ratio change T/sqrt(k) (symbolic) vs measured, worst head of layer 0",
            predicted,
            predicted * (1 + float(errors[0])),
        ),
        ("prefix: change of the same log-ratios (0 by the theorem)", 0.0, float(errors[1])),
    ]


def expect(arch, method):
    if arch.qk_norm:
        return (
            "fails",
            "qk-norm renormalises the moved query: the change is not exactly T/sqrt(k)",
        )
    return "holds", "docs/theory.md §3.9"


MEASURES = """\
Every layer and head, given the layer's inputs; the last content query i, key 1 = itself, key 2
= the visible content key whose key differs most from its own: the measured change of
log(A_i1 / A_i2) after the rank-1 update against T / sqrt(d_head) (relative error; heads whose
content is degenerate are skipped), and the prefix's relative-attention residual on the same
trial. "holds" means both: the update changes relative attention by exactly the derived amount
AND the prefix changes it by nothing."""

THEOREM = Theorem(
    id="finetune_contrast",
    statement="A rank-1 W_Q update changes relative attention by exactly exp(T/sqrt(k)) for any "
    "head with non-degenerate content; a prefix changes it by nothing.",
    section="§3.9",
    assumptions=(
        "the last query sees itself and another content key with a different key (k_i != k_j), "
        "h_i != 0; heads where this premise is false (its own key masked out, all visible keys "
        "equal) are skipped",
        "no qk-norm (the update moves the query linearly)",
        "softmax attention",
        "every layer given its inputs",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    instance=instance,
    default_run=core_architecture,
    methods=("prefix",),
    expect=expect,
    controls=(
        Control(
            "prefix outside the denominator",
            "a wrong softmax: the prefix half of the contrast fails",
            "broken-denominator",
            "prefix",
        ),
        Control(
            "qk-norm",
            "normalised queries: the rank-1 update no longer moves the log-ratio by exactly "
            "T/sqrt(k)",
            "gpt",
            "prefix",
            changes=(("positional", "rope"), ("qk_norm", True)),
        ),
    ),
    requires=("attention", "projections", "!signed_weights"),
    coq=CoqProof(
        names=(
            "FinetuneContrast.finetune_contrast",
            "FinetuneContrast.finetune_changes_relative_attention",
        ),
        general_in=(
            "every model dimension d, head dimension k, number of keys n >= 1, W_Q, orthogonal "
            "query rotation (the identity without RoPE), temperature; any context for the "
            "contrast"
        ),
    ),
)
