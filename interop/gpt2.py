"""GPT-2 (``model_type: gpt2``) in the toolkit's transformer.

GPT-2 is a pre-LN decoder with learned absolute positions, LayerNorm, a GELU MLP
(``gelu_new`` is the tanh approximation, the toolkit's ``gelu_tanh``), biases everywhere,
a final LayerNorm and a language-model head tied to the token embeddings.  Its linear
layers are ``Conv1D`` modules: ``weight [in, out]``, ``y = x weight + bias`` (the toolkit's
own row-vector layout, no transpose), and queries, keys and values are one fused ``c_attn``.

Mapping (names after the ``transformer.`` prefix of ``GPT2LMHeadModel``)::

    wte.weight [V, d]                  -> embed.W_E (and unembed.W_U = W_E^T when tied)
    wpe.weight [n_positions, d]        -> embed.W_pos
    h.l.ln_1.{weight,bias}             -> blocks[l].ln1.{w,b}
    h.l.attn.c_attn.weight [d, 3d]     -> W_Q | W_K | W_V (columns split in thirds, then heads)
    h.l.attn.c_attn.bias [3d]          -> b_Q | b_K | b_V
    h.l.attn.c_proj.{weight [d, d], bias} -> blocks[l].attn.W_O [H, k, d], b_O
    h.l.ln_2.{weight,bias}             -> blocks[l].ln2.{w,b}
    h.l.mlp.c_fc.{weight [d, m], bias} -> blocks[l].mlp.W_in, b_in
    h.l.mlp.c_proj.{weight [m, d], bias} -> blocks[l].mlp.W_out, b_out
    ln_f.{weight,bias}                 -> ln_final.{w,b}
    lm_head.weight [V, d] (untied only) -> unembed.W_U = lm_head.weight^T;  unembed.b_U = 0

``scale_attn_weights: false`` (no ``1/sqrt(d_head)``) is the inverse temperature
``T = sqrt(d_head)``; ``scale_attn_by_inverse_layer_idx`` (a per-layer scale) has no
counterpart and is refused.
"""

from __future__ import annotations

import numpy as np

from interop.family import Family, config_value, conv1d_heads_in
from theory.architecture import Architecture, validate_architecture
from theory.errors import ToolkitError

ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}


def architecture(config: dict, name: str) -> Architecture:
    d, heads = int(config_value(config, "n_embd")), int(config_value(config, "n_head"))
    act = config.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise ToolkitError(
            f"config.json: activation_function {act!r} is not supported; expected one of: "
            + ", ".join(ACTIVATIONS)
        )
    for key in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if config.get(key):
            raise ToolkitError(f"config.json: {key}=true is not supported; expected false")
    if d % heads:
        raise ToolkitError(f"config.json: n_embd {d} is not a multiple of n_head {heads}")
    d_head = d // heads
    return validate_architecture(
        Architecture(
            name=name,
            n_layers=int(config_value(config, "n_layer")),
            n_heads=heads,
            d_model=d,
            d_head=d_head,
            d_mlp=int(config.get("n_inner") or 4 * d),
            d_vocab=int(config_value(config, "vocab_size")),
            n_ctx=int(config_value(config, "n_positions")),
            positional="learned",
            norm="pre",
            norm_kind="layernorm",
            norm_eps=float(config.get("layer_norm_epsilon", 1e-5)),
            causal=True,
            mlp_act=ACTIVATIONS[act],
            temperature=1.0 if config.get("scale_attn_weights", True) else float(np.sqrt(d_head)),
            description=f"GPT-2 checkpoint: pre-LN decoder, learned positions, {act}",
        )
    )


def expected_tensors(arch: Architecture, config: dict) -> dict:
    d, m, V = arch.d_model, arch.d_mlp, arch.d_vocab
    shapes = {"wte.weight": (V, d), "wpe.weight": (arch.n_ctx, d)}
    for l in range(arch.n_layers):
        p = f"h.{l}."
        shapes.update(
            {
                p + "ln_1.weight": (d,),
                p + "ln_1.bias": (d,),
                p + "attn.c_attn.weight": (d, 3 * d),
                p + "attn.c_attn.bias": (3 * d,),
                p + "attn.c_proj.weight": (d, d),
                p + "attn.c_proj.bias": (d,),
                p + "ln_2.weight": (d,),
                p + "ln_2.bias": (d,),
                p + "mlp.c_fc.weight": (d, m),
                p + "mlp.c_fc.bias": (m,),
                p + "mlp.c_proj.weight": (m, d),
                p + "mlp.c_proj.bias": (d,),
            }
        )
    shapes.update({"ln_f.weight": (d,), "ln_f.bias": (d,)})
    return shapes


def to_params(t, arch: Architecture, config: dict) -> dict:
    H, k, d = arch.n_heads, arch.d_head, arch.d_model

    def norm(prefix):
        return {"w": t(prefix + ".weight"), "b": t(prefix + ".bias")}

    W_E = t("wte.weight")
    head = t("lm_head.weight", optional=True)
    params = {
        "embed": {"W_E": W_E, "W_pos": t("wpe.weight")},
        "blocks": [],
        "ln_final": norm("ln_f"),
        "unembed": {
            "W_U": (W_E if head is None else head).T,
            "b_U": np.zeros(arch.d_vocab, W_E.dtype),
        },
    }
    for l in range(arch.n_layers):
        p = f"h.{l}."
        W, b = t(p + "attn.c_attn.weight"), t(p + "attn.c_attn.bias")
        (Wq, Wk, Wv), (bq, bk, bv) = np.split(W, 3, axis=1), np.split(b, 3)
        attn = {
            "W_Q": conv1d_heads_in(Wq, H, k),
            "b_Q": bq.reshape(H, k),
            "W_K": conv1d_heads_in(Wk, H, k),
            "b_K": bk.reshape(H, k),
            "W_V": conv1d_heads_in(Wv, H, k),
            "b_V": bv.reshape(H, k),
            "W_O": t(p + "attn.c_proj.weight").reshape(H, k, d),
            "b_O": t(p + "attn.c_proj.bias"),
        }
        mlp = {
            "W_in": t(p + "mlp.c_fc.weight"),
            "b_in": t(p + "mlp.c_fc.bias"),
            "W_out": t(p + "mlp.c_proj.weight"),
            "b_out": t(p + "mlp.c_proj.bias"),
        }
        params["blocks"].append(
            {"attn": attn, "mlp": mlp, "ln1": norm(p + "ln_1"), "ln2": norm(p + "ln_2")}
        )
    return params


FAMILY = Family(
    model_type="gpt2",
    description="GPT-2: pre-LN decoder, learned positions, Conv1D layers, fused c_attn",
    base_prefix="transformer.",
    architecture=architecture,
    expected_tensors=expected_tensors,
    to_params=to_params,
    task_type="CAUSAL_LM",
    ignored=(".attn.bias", ".attn.masked_bias"),  # causal-mask buffers of older checkpoints
    head_tensors=("lm_head.weight",),
)
