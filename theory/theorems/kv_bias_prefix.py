"""A learned key/value bias is a one-position KV-prefix (docs/theory.md §5.4.1).

A model whose every layer has a learned key ``k_s`` and value ``v_s`` that every query attends to
(an attention sink, theory/zoo/sinks.py) computes exactly what the same model without the bias
computes with the one-position KV-prefix ``(k_s, v_s)`` in every layer, content at the same
positions: the bias is a KV-prefix that was trained with the weights. With a KV-prefix of its
own, the model is the plain model with the ``1 + n_p`` positions ``(k_s, v_s), (k_p, v_p)``.
So everything §3 says about a KV-prefix of one position applies to a sink, and a context added to
a model with sinks is a KV-prefix one position longer.
"""

import jax.numpy as jnp
import sympy as sp

from theory.context import KVPrefix, n_virtual
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

e_s, e_j, Z, P = sp.symbols("e_{is} e_{ij} Z_i P_i", positive=True)
S, Q, v_s = sp.symbols("S_i Q_i v_s")
A_sink, A_kv, t_sink, t_kv = sp.symbols("A^sink_ij A^KV_ij t^sink_i t^KV_i")


def derivation() -> Derivation:
    return Derivation(
        title="A learned key/value bias is a KV-prefix of one position",
        definitions=(
            (A_sink, e_j / (e_s + P + Z), "sink model: the bias's exp(l_is) joins the denominator"),
            (A_kv, e_j / (e_s + P + Z), "plain model with the KV-prefix (k_s, v_s) first"),
            (t_sink, (e_s * v_s + Q + S) / (e_s + P + Z), "sink model's head output"),
            (t_kv, (e_s * v_s + Q + S) / (e_s + P + Z), "plain model's output with the prefix"),
        ),
        steps=(
            Step(A_sink, A_kv, "the same weight for every content (and virtual) key"),
            Step(t_sink, t_kv, "the same head output: identical layers, hence identical models"),
        ),
        notes=(
            "e_is = exp(T q_i . k_s / sqrt(d_head)), P_i and Q_i the normaliser and value sum of "
            "the model's own context (0 without one), Z_i and S_i those of the content: positive "
            "symbols for sums of any length, so the identity holds for every n and n_p. The two "
            "models read the bias and the prefix key alike because a KV-prefix's key is used as "
            "given (no rotation), like the bias.",
        ),
    )


def without_bias(arch, params):
    """The same architecture and weights without the learned key/value bias."""
    plain = arch.replace(name=f"{arch.name}[no key/value bias]", block="standard")
    blocks = [
        {name: leaf for name, leaf in bp.items() if name != "sink"} for bp in params["blocks"]
    ]
    return plain, dict(params, blocks=blocks)


def bias_as_prefix(params, context, scale=1.0):
    """The KV-prefix made of every layer's bias followed by ``context`` (a KVPrefix or None)."""
    keys = jnp.stack([bp["sink"]["k_sink"] for bp in params["blocks"]])[:, :, None]
    values = jnp.stack([bp["sink"]["v_sink"] for bp in params["blocks"]])[:, :, None] * scale
    if context is None:
        return KVPrefix(keys, values)
    return KVPrefix(
        jnp.concatenate([keys, context.keys], axis=2),
        jnp.concatenate([values, context.values], axis=2),
    )


def residual(arch, trial, scale=1.0):
    n_p = n_virtual(trial.context)
    logits, _ = forward(
        trial.adapted, arch, trial.tokens, trial.context, attention_mask=trial.key_mask,
        validate=False,
    )  # fmt: skip
    plain, params = without_bias(arch, trial.params)
    replayed, _ = forward(
        params,
        plain,
        trial.tokens,
        bias_as_prefix(trial.params, trial.context, scale),
        position_offset=n_p,
        attention_mask=jnp.concatenate([jnp.ones(1, bool), trial.key_mask]),
        validate=False,
    )
    return max_abs(logits - replayed)


def check(arch, trial):
    return residual(arch, trial)


def wrong_value_check(arch, trial):
    """A deliberately wrong prefix: the bias value scaled by 1.001 (a control)."""
    return residual(arch, trial, scale=1.001)


MEASURES = """\
kv_prefix method: the model with its learned key/value bias and the trial's KV-prefix against the
same weights without the bias and with the KV-prefix [(k_s, v_s), trial's prefix] in every layer
(content at the same positions); max |logits gap| over the content."""

THEOREM = Theorem(
    id="kv_bias_prefix",
    statement="A learned per-layer key/value bias (attention sink) is exactly a one-position "
    "KV-prefix (k_s, v_s) of the model without it; a context adds to it as a longer KV-prefix.",
    section="§5.4.1",
    assumptions=(
        "the bias key is used as given in every query's logits (no rotation), like a KV-prefix key",
        "content at the same positions; no positional logit bias (ALiBi would see the positions)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("kv_bias",),
    methods=("kv_prefix", "lora_rank1_WK"),
    controls=(
        Control(
            "wrong bias value",
            "the KV-prefix built with the bias value off by 0.1%",
            "attn-sink",
            "kv_prefix",
            check=wrong_value_check,
        ),
        Control(
            "weights updated",
            "a rank-1 W_K update on the sink model only: the equivalence needs the same weights",
            "attn-sink",
            "lora_rank1_WK",
        ),
    ),
    coq=CoqProof(
        names=("Sinks.kv_bias_is_prefix", "Sinks.kv_bias_output_is_prefix"),
        general_in="every n >= 1, n_p, value dimension, bias logit and value",
    ),
)
