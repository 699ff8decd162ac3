"""A learned key/value bias rescales content attention by a factor <= 1 (docs/theory.md §5.4.2).

Corollary of ``kv_bias_prefix`` and §3.1-§3.3 with one virtual position: the bias takes the share
``s_i = exp(l_is) / (exp(l_is) + Z_i) = sigmoid(l_is - log Z_i)`` of every query's attention, and

    A^sink_ij = (1 - s_i) A_ij,       t^sink_i = s_i v_s + (1 - s_i) t_i

with ``A``, ``t`` the same layer without the bias on the same inputs (``Z_i`` over every key the
query sees, a context's included). The factor ``1 - s_i`` lies in (0, 1): a sink never changes
which keys a query prefers, it only damps the whole row (by ``1 - s_i``) and adds ``s_i v_s``.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.attention import mask_matrix
from theory.blocks import block_forward
from theory.context import layer_context, n_virtual
from theory.hooks import act_name, block_record
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs
from theory.theorems.kv_bias_prefix import without_bias

Q, PATTERN, SCORES, Z_HOOK = act_name("q"), act_name("pattern"), act_name("scores"), act_name("z")

e_s, e_j, Z = sp.symbols("e_{is} e_{ij} Z_i", positive=True)
S, v_s = sp.symbols("S_i v_s")
A, A_sink, s, t, t_sink = sp.symbols("A_ij A^sink_ij s_i t_i t^sink_i")


def derivation() -> Derivation:
    return Derivation(
        title="A key/value bias takes the share s_i = sigmoid(l_is - log Z_i) and damps the rest "
        "by 1 - s_i < 1",
        definitions=(
            (A, e_j / Z, "weight without the bias (Z_i over every key the query sees)"),
            (A_sink, e_j / (e_s + Z), "weight with the bias"),
            (s, e_s / (e_s + Z), "the bias's share"),
            (t, S / Z, "head output without the bias"),
            (t_sink, (e_s * v_s + S) / (e_s + Z), "head output with the bias"),
        ),
        steps=(
            Step(s, 1 / (1 + Z / e_s), "closed form: s_i = sigmoid(l_is - log Z_i)"),
            Step(A_sink, (1 - s) * A, "every weight is damped by the same factor 1 - s_i"),
            Step(1 - s, 1, "the factor is below 1 ...", "<"),
            Step(1 - s, 0, "... and positive: relative attention is unchanged", ">"),
            Step(t_sink, s * v_s + (1 - s) * t, "the output moves towards v_s"),
        ),
        notes=(
            "Z_i and S_i stand for sums of any length. This is §3.3 (single_prefix) for the "
            "one-position KV-prefix the bias is (kv_bias_prefix).",
        ),
    )


def residuals(arch, trial, share_claimed=None):
    """[n_layers, 4]: damping, closed-form share, output, range of the factor (content queries,
    every layer given its inputs). ``share_claimed``: replace the share (a control)."""
    n_p = n_virtual(trial.context)
    N = n_p + trial.tokens.shape[0]
    _, cache = forward(
        trial.adapted, arch, trial.tokens, trial.context, attention_mask=trial.key_mask,
        validate=False,
    )  # fmt: skip
    plain, params = without_bias(arch, trial.params)
    positions = jnp.arange(N)
    mask = mask_matrix(arch, trial.key_mask)
    virtual = positions < n_p
    group = arch.n_heads // arch.kv_heads
    out = []
    for l in range(arch.n_layers):
        rec = block_record(cache, l)
        _, base = block_forward(
            params["blocks"][l], plain, rec[act_name("resid_pre")], positions, mask, virtual,
            layer_context(trial.context, l),
        )  # fmt: skip
        sink = trial.params["blocks"][l]["sink"]
        k_s = jnp.repeat(sink["k_sink"], group, axis=0)  # [H, dh]
        v_s = jnp.repeat(sink["v_sink"], group, axis=0)
        logit = arch.temperature * jnp.einsum("nhk,hk->hn", rec[Q], k_s) / jnp.sqrt(arch.d_head)
        visible = jnp.where(mask[None], base[SCORES], -jnp.inf)
        closed = jax.nn.sigmoid(logit - jax.nn.logsumexp(visible, axis=-1))[:, n_p:]  # [H, n]
        weights = rec[PATTERN][:, n_p:]  # [H, n, N]
        share = 1.0 - weights.sum(-1) if share_claimed is None else share_claimed(weights)
        damped = max_abs(weights - (1 - share)[..., None] * base[PATTERN][:, n_p:])
        output = max_abs(
            rec[Z_HOOK][n_p:]
            - (share.T[..., None] * v_s[None] + (1 - share).T[..., None] * base[Z_HOOK][n_p:])
        )
        factor = jnp.maximum(jnp.max(share - 1.0), jnp.max(-share))
        out.append(jnp.stack([damped, max_abs(share - closed), output, jnp.maximum(factor, 0)]))
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


def no_share_check(arch, trial):
    """The claim "the bias takes no attention" (factor 1), which fails (a control)."""
    return residuals(arch, trial, share_claimed=lambda w: jnp.zeros(w.shape[:2], w.dtype)).max()


MEASURES = """\
Every layer given its inputs: the layer with the bias next to the same layer without it (same
weights, inputs, context); for every content query, the bias's share s_i = 1 - sum_j A^sink_ij
against sigmoid(l_is - logsumexp_j l_ij), max |A^sink_ij - (1 - s_i) A_ij| over every key, max
|t^sink_i - (s_i v_s + (1 - s_i) t_i)|, and how far 1 - s_i leaves [0, 1]."""

THEOREM = Theorem(
    id="kv_bias_rescales",
    statement="A learned key/value bias takes the share s_i = sigmoid(l_is - log Z_i) and "
    "rescales every other weight by 1 - s_i in (0, 1): relative attention unchanged, output "
    "s_i v_s + (1 - s_i) t_i.",
    section="§5.4.2",
    assumptions=(
        "softmax attention: the bias's exp(l_is) joins the denominator",
        "compared with the same layer without the bias on the same inputs (any context)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("attention", "kv_bias"),
    methods=("prefix", "kv_prefix", "lora_rank1_WK"),
    controls=(
        Control(
            "the bias takes no share",
            "the claim that the bias leaves the weights as they are (factor 1)",
            "attn-sink",
            "prefix",
            check=no_share_check,
        ),
        Control(
            "weights updated",
            "a rank-1 W_K update changes the weights themselves, not only their scale",
            "attn-sink",
            "lora_rank1_WK",
        ),
    ),
    coq=CoqProof(
        names=("Sinks.kv_bias_rescales", "Sinks.kv_bias_factor_bounds", "Sinks.kv_bias_output"),
        general_in="every n >= 1, value dimension, bias logit and value, any logits",
    ),
)
