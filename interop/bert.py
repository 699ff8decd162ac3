"""BERT (``model_type: bert``) in the toolkit's transformer (all-MiniLM-L6-v2 is one).

BERT is a bidirectional encoder: post-LN blocks, learned absolute positions, token-type
embeddings, a LayerNorm after the embeddings, a GELU MLP.  Layers are ``nn.Linear``:
``weight [out, in]``, ``y = x weight^T + bias``.

Mapping (names after the ``bert.`` prefix of models with a task head)::

    embeddings.word_embeddings.weight [V, d]           -> embed.W_E
    embeddings.position_embeddings.weight [n_ctx, d]   -> embed.W_pos
    embeddings.token_type_embeddings.weight [types, d] -> embed.W_type
    embeddings.LayerNorm.{weight,bias}                 -> ln_embed.{w,b}
    encoder.layer.l.attention.self.query.weight [H*k, d] -> blocks[l].attn.W_Q [H, d, k]
      (key, value likewise; biases [H*k] -> [H, k])
    encoder.layer.l.attention.output.dense.weight [d, H*k] -> blocks[l].attn.W_O [H, k, d]
    encoder.layer.l.attention.output.LayerNorm         -> blocks[l].ln1   (post-LN after attention)
    encoder.layer.l.intermediate.dense.weight [m, d]   -> blocks[l].mlp.W_in [d, m]
    encoder.layer.l.output.dense.weight [d, m]         -> blocks[l].mlp.W_out [m, d]
    encoder.layer.l.output.LayerNorm                   -> blocks[l].ln2   (post-LN after the MLP)

An encoder has no language-model head: ``unembed.W_U`` is tied to ``W_E^T`` and ``b_U`` is
zero, so ``forward``'s logits are the last hidden state times ``W_E^T``.  Task heads
(``pooler.*``, ``cls.*``, ``classifier.*``) are not part of the toolkit's transformer and
are ignored, and so are the ``position_ids`` / ``token_type_ids`` buffers.
"""

from __future__ import annotations

import numpy as np

from interop.family import Family, config_value, linear_heads_in, linear_heads_out, require_value
from theory.architecture import Architecture, validate_architecture
from theory.errors import ToolkitError

ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
IGNORED = (
    "embeddings.position_ids",
    "embeddings.token_type_ids",
    "pooler.",
)


def architecture(config: dict, name: str, description: str | None = None) -> Architecture:
    """The toolkit Architecture of a Hugging Face BERT ``config.json``."""
    require_value(config, "position_embedding_type", ("absolute",), "absolute")
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise ToolkitError(
            "config.json: is_decoder/add_cross_attention=true is not supported; expected a "
            "BERT encoder"
        )
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ToolkitError(
            f"config.json: hidden_act {act!r} is not supported; expected one of: "
            + ", ".join(ACTIVATIONS)
        )
    d, heads = (
        int(config_value(config, "hidden_size")),
        int(config_value(config, "num_attention_heads")),
    )
    arch = Architecture(
        name=name,
        n_layers=int(config_value(config, "num_hidden_layers")),
        n_heads=heads,
        d_model=d,
        d_head=d // heads,
        d_mlp=int(config_value(config, "intermediate_size")),
        d_vocab=int(config_value(config, "vocab_size")),
        n_ctx=int(config_value(config, "max_position_embeddings")),
        positional="learned",
        norm="post",
        causal=False,
        embed_norm=True,
        n_token_types=int(config_value(config, "type_vocab_size")),
        final_norm=False,
        norm_eps=float(config_value(config, "layer_norm_eps")),
        mlp_act=ACTIVATIONS[act],
        description=description
        or "BERT checkpoint: post-LN encoder, learned positions, "
        f"token types, embedding LayerNorm, {act}",
    )
    if d % heads:
        raise ToolkitError(
            f"config.json: hidden_size {d} is not a multiple of num_attention_heads {heads}"
        )
    return validate_architecture(arch)


def expected_tensors(arch: Architecture, config: dict | None = None) -> dict:
    """``{safetensors name: shape}`` of every tensor the mapping reads."""
    d, m, hk = arch.d_model, arch.d_mlp, arch.n_heads * arch.d_head
    shapes = {
        "embeddings.word_embeddings.weight": (arch.d_vocab, d),
        "embeddings.position_embeddings.weight": (arch.n_ctx, d),
        "embeddings.token_type_embeddings.weight": (arch.n_token_types, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for l in range(arch.n_layers):
        p = f"encoder.layer.{l}."
        for proj in ("query", "key", "value"):
            shapes[f"{p}attention.self.{proj}.weight"] = (hk, d)
            shapes[f"{p}attention.self.{proj}.bias"] = (hk,)
        shapes.update(
            {
                f"{p}attention.output.dense.weight": (d, hk),
                f"{p}attention.output.dense.bias": (d,),
                f"{p}attention.output.LayerNorm.weight": (d,),
                f"{p}attention.output.LayerNorm.bias": (d,),
                f"{p}intermediate.dense.weight": (m, d),
                f"{p}intermediate.dense.bias": (m,),
                f"{p}output.dense.weight": (d, m),
                f"{p}output.dense.bias": (d,),
                f"{p}output.LayerNorm.weight": (d,),
                f"{p}output.LayerNorm.bias": (d,),
            }
        )
    return shapes


def to_params(t, arch: Architecture, config: dict | None = None) -> dict:
    H, k = arch.n_heads, arch.d_head

    def norm(prefix):
        return {"w": t(prefix + ".weight"), "b": t(prefix + ".bias")}

    W_E = t("embeddings.word_embeddings.weight")
    params = {
        "embed": {
            "W_E": W_E,
            "W_pos": t("embeddings.position_embeddings.weight"),
            "W_type": t("embeddings.token_type_embeddings.weight"),
        },
        "ln_embed": norm("embeddings.LayerNorm"),
        "blocks": [],
        "unembed": {"W_U": W_E.T, "b_U": np.zeros(arch.d_vocab, W_E.dtype)},
    }
    for l in range(arch.n_layers):
        p = f"encoder.layer.{l}."
        s = p + "attention.self."
        attn = {
            "W_Q": linear_heads_in(t(s + "query.weight"), H, k),
            "b_Q": t(s + "query.bias").reshape(H, k),
            "W_K": linear_heads_in(t(s + "key.weight"), H, k),
            "b_K": t(s + "key.bias").reshape(H, k),
            "W_V": linear_heads_in(t(s + "value.weight"), H, k),
            "b_V": t(s + "value.bias").reshape(H, k),
            "W_O": linear_heads_out(t(p + "attention.output.dense.weight"), H, k),
            "b_O": t(p + "attention.output.dense.bias"),
        }
        mlp = {
            "W_in": t(p + "intermediate.dense.weight").T,
            "b_in": t(p + "intermediate.dense.bias"),
            "W_out": t(p + "output.dense.weight").T,
            "b_out": t(p + "output.dense.bias"),
        }
        params["blocks"].append(
            {
                "attn": attn,
                "mlp": mlp,
                "ln1": norm(p + "attention.output.LayerNorm"),
                "ln2": norm(p + "output.LayerNorm"),
            }
        )
    return params


FAMILY = Family(
    model_type="bert",
    description="BERT: post-LN bidirectional encoder, learned positions, token types",
    base_prefix="bert.",
    architecture=architecture,
    expected_tensors=expected_tensors,
    to_params=to_params,
    task_type="FEATURE_EXTRACTION",
    ignored=IGNORED,
)
