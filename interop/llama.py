"""LLaMA (``model_type: llama``) in the toolkit's transformer.

LLaMA is a pre-norm decoder with RMSNorm, rotary position embeddings (RoPE), grouped-query
attention (``num_key_value_heads`` key/value heads shared by ``num_attention_heads /
num_key_value_heads`` query heads each), a SwiGLU MLP ``down(silu(gate(x)) * up(x))`` and no
biases (zeros here, unless ``attention_bias``).  Layers are ``nn.Linear``: ``weight [out, in]``.

Mapping (names after the ``model.`` prefix of ``LlamaForCausalLM``)::

    embed_tokens.weight [V, d]                 -> embed.W_E
    layers.l.input_layernorm.weight            -> blocks[l].ln1.w
    layers.l.self_attn.q_proj.weight [H*k, d]  -> blocks[l].attn.W_Q [H, d, k]   (head dim permuted)
    layers.l.self_attn.k_proj.weight [G*k, d]  -> blocks[l].attn.W_K [G, d, k]   (head dim permuted)
    layers.l.self_attn.v_proj.weight [G*k, d]  -> blocks[l].attn.W_V [G, d, k]
    layers.l.self_attn.o_proj.weight [d, H*k]  -> blocks[l].attn.W_O [H, k, d]
    layers.l.post_attention_layernorm.weight   -> blocks[l].ln2.w
    layers.l.mlp.gate_proj.weight [m, d]       -> blocks[l].mlp.W_in   (inside the activation)
    layers.l.mlp.up_proj.weight [m, d]         -> blocks[l].mlp.W_gate (the linear factor)
    layers.l.mlp.down_proj.weight [d, m]       -> blocks[l].mlp.W_out
    norm.weight                                -> ln_final.w
    lm_head.weight [V, d]                      -> unembed.W_U = lm_head.weight^T (W_E^T when tied)

The toolkit's gated MLP is ``act(x W_in + b_in) * (x W_gate)``, so ``gate_proj`` is ``W_in``
and ``up_proj`` is ``W_gate`` (with ``hidden_act: silu`` this is ``gated_silu``).

RoPE: HF rotates the half-split pairs ``(x[m], x[m + k/2])`` (``rotate_half``), the toolkit
the interleaved pairs ``(x[2m], x[2m+1])``, with the same frequencies.  The head dimension of
``W_Q`` and ``W_K`` is reordered by :func:`interop.family.rope_half_to_pairs` so that the
toolkit rotates exactly HF's pairs (see that function); ``rope_theta`` becomes
``Architecture.rope_base``.  RoPE scaling variants (``rope_type`` other than ``default``) are
refused.
"""

from __future__ import annotations

import numpy as np

from interop.family import (
    Family,
    config_value,
    linear_heads_in,
    linear_heads_out,
    rope_half_to_pairs,
)
from theory.architecture import Architecture, validate_architecture
from theory.errors import ToolkitError

ACTIVATIONS = {"silu": "gated_silu", "gelu": "gated_gelu"}


def rope_theta(config: dict) -> float:
    """``rope_theta`` from ``rope_parameters`` (transformers 5) or the top level (4.x)."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ToolkitError(
            f"config.json: RoPE scaling {kind!r} is not supported; expected rope_type 'default' "
            "(plain RoPE with base rope_theta)"
        )
    if float(params.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ToolkitError("config.json: partial_rotary_factor != 1 is not supported; expected 1")
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def architecture(config: dict, name: str) -> Architecture:
    d, heads = (
        int(config_value(config, "hidden_size")),
        int(config_value(config, "num_attention_heads")),
    )
    kv = int(config.get("num_key_value_heads") or heads)
    d_head = int(config.get("head_dim") or d // heads)
    act = config.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise ToolkitError(
            f"config.json: hidden_act {act!r} is not supported; expected one of: "
            + ", ".join(ACTIVATIONS)
        )
    if config.get("mlp_bias"):
        raise ToolkitError(
            "config.json: mlp_bias=true is not supported (the toolkit's gated MLP has no bias on "
            "its linear factor); expected false"
        )
    if heads % kv:
        raise ToolkitError(
            f"config.json: num_attention_heads {heads} is "
            f"not a multiple of num_key_value_heads {kv}"
        )
    return validate_architecture(
        Architecture(
            name=name,
            n_layers=int(config_value(config, "num_hidden_layers")),
            n_heads=heads,
            d_model=d,
            d_head=d_head,
            d_mlp=int(config_value(config, "intermediate_size")),
            d_vocab=int(config_value(config, "vocab_size")),
            n_ctx=int(config_value(config, "max_position_embeddings")),
            positional="rope",
            rope_base=rope_theta(config),
            norm="pre",
            norm_kind="rmsnorm",
            norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            causal=True,
            n_kv_heads=None if kv == heads else kv,
            mlp_act=ACTIVATIONS[act],
            description="LLaMA checkpoint: pre-RMSNorm decoder, RoPE, "
            f"{'GQA ' + str(heads) + '/' + str(kv) + ', ' if kv != heads else ''}SwiGLU",
        )
    )


def expected_tensors(arch: Architecture, config: dict) -> dict:
    d, m, V, k = arch.d_model, arch.d_mlp, arch.d_vocab, arch.d_head
    qo, kv = arch.n_heads * k, arch.kv_heads * k
    bias = bool(config.get("attention_bias"))
    shapes = {"embed_tokens.weight": (V, d)}
    for l in range(arch.n_layers):
        p = f"layers.{l}."
        shapes.update(
            {
                p + "input_layernorm.weight": (d,),
                p + "self_attn.q_proj.weight": (qo, d),
                p + "self_attn.k_proj.weight": (kv, d),
                p + "self_attn.v_proj.weight": (kv, d),
                p + "self_attn.o_proj.weight": (d, qo),
                p + "post_attention_layernorm.weight": (d,),
                p + "mlp.gate_proj.weight": (m, d),
                p + "mlp.up_proj.weight": (m, d),
                p + "mlp.down_proj.weight": (d, m),
            }
        )
        if bias:
            shapes.update(
                {
                    p + "self_attn.q_proj.bias": (qo,),
                    p + "self_attn.k_proj.bias": (kv,),
                    p + "self_attn.v_proj.bias": (kv,),
                    p + "self_attn.o_proj.bias": (d,),
                }
            )
    shapes["norm.weight"] = (d,)
    return shapes


def key_permutation(arch: Architecture) -> np.ndarray:
    return rope_half_to_pairs(arch.d_head)


def to_params(t, arch: Architecture, config: dict) -> dict:
    H, G, k, d = arch.n_heads, arch.kv_heads, arch.d_head, arch.d_model
    perm = key_permutation(arch)
    bias = bool(config.get("attention_bias"))
    W_E = t("embed_tokens.weight")
    dtype = W_E.dtype
    head = t("lm_head.weight", optional=True)
    params = {
        "embed": {"W_E": W_E},
        "blocks": [],
        "ln_final": {"w": t("norm.weight")},
        "unembed": {"W_U": (W_E if head is None else head).T, "b_U": np.zeros(arch.d_vocab, dtype)},
    }

    def b(name, shape):
        return t(name).reshape(shape) if bias else np.zeros(shape, dtype)

    for l in range(arch.n_layers):
        p = f"layers.{l}."
        a = p + "self_attn."
        attn = {
            "W_Q": linear_heads_in(t(a + "q_proj.weight"), H, k)[..., perm],
            "b_Q": b(a + "q_proj.bias", (H, k))[..., perm],
            "W_K": linear_heads_in(t(a + "k_proj.weight"), G, k)[..., perm],
            "b_K": b(a + "k_proj.bias", (G, k))[..., perm],
            "W_V": linear_heads_in(t(a + "v_proj.weight"), G, k),
            "b_V": b(a + "v_proj.bias", (G, k)),
            "W_O": linear_heads_out(t(a + "o_proj.weight"), H, k),
            "b_O": b(a + "o_proj.bias", (d,)),
        }
        mlp = {
            "W_in": t(p + "mlp.gate_proj.weight").T,
            "b_in": np.zeros(arch.d_mlp, dtype),
            "W_gate": t(p + "mlp.up_proj.weight").T,
            "W_out": t(p + "mlp.down_proj.weight").T,
            "b_out": np.zeros(d, dtype),
        }
        params["blocks"].append(
            {
                "attn": attn,
                "mlp": mlp,
                "ln1": {"w": t(p + "input_layernorm.weight")},
                "ln2": {"w": t(p + "post_attention_layernorm.weight")},
            }
        )
    return params


FAMILY = Family(
    model_type="llama",
    description="LLaMA: pre-RMSNorm decoder, RoPE, grouped-query attention, SwiGLU, no biases",
    base_prefix="model.",
    architecture=architecture,
    expected_tensors=expected_tensors,
    to_params=to_params,
    task_type="CAUSAL_LM",
    ignored=(".rotary_emb.inv_freq",),  # a buffer saved by old checkpoints
    head_tensors=("lm_head.weight",),
    key_permutation=key_permutation,
)
