"""Hugging Face checkpoints (``save_pretrained`` folders) as the toolkit's one transformer.

:func:`load_hf` reads ``config.json`` and ``model.safetensors`` (or a sharded index) from a
local folder, picks the family from ``model_type`` (:data:`FAMILIES`), builds the
:class:`theory.architecture.Architecture` and the parameter pytree of :mod:`theory.params`,
and checks every tensor against the config first.  No torch, no network: numpy reads the
files (:mod:`interop.files`).

Tensor names: a model with a task head nests the base model under a prefix
(``transformer.`` for GPT-2, ``model.`` for LLaMA, ``bert.`` for BERT); the prefix is
stripped when present.  Outside it only the language-model head (``lm_head.weight``) is
read; other heads (classifiers, poolers) are not part of the toolkit's transformer and are
ignored.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interop import bert, gpt2, llama
from interop.family import Family, arch_summary, check_tensors, is_ignored
from interop.files import read_checkpoint_tensors, read_json
from theory.architecture import Architecture
from theory.errors import ToolkitError
from theory.params import validate_params
from theory.sharding import shard_params

FAMILIES: dict[str, Family] = {f.model_type: f for f in (gpt2.FAMILY, llama.FAMILY, bert.FAMILY)}
DTYPES = ("float32", "float64")


class HFModel(NamedTuple):
    """A loaded checkpoint: the toolkit's architecture and parameters, and where they came from."""

    arch: Architecture
    params: Any  # parameter pytree (theory.params layout) in the requested dtype
    family: Family
    config: dict
    model_dir: Path
    key_permutation: np.ndarray | None  # RoPE: toolkit head index j holds HF index perm[j]


def get_family(config: dict, source: str = "config.json") -> Family:
    """The family of a config's ``model_type`` (ToolkitError listing the supported ones)."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ToolkitError(
            f"{source}: unsupported model_type {model_type!r}; supported: "
            + ", ".join(sorted(FAMILIES))
        )
    return FAMILIES[model_type]


def check_dtype(dtype) -> str:
    """``"float32"`` or ``"float64"`` (float64 needs JAX's x64 mode: ``theory.configure_jax()``)."""
    name = jnp.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in DTYPES:
        raise ToolkitError(f"dtype: expected float32 or float64, got {dtype}")
    if name == "float64" and not jax.config.jax_enable_x64:
        raise ToolkitError(
            "dtype float64 needs JAX's 64-bit mode, which is off; call theory.configure_jax() "
            "first (the command line does)"
        )
    return name


def split_tensors(tensors: dict, family: Family) -> tuple[dict, dict]:
    """(base tensors without the family's prefix, head tensors the mapping reads)."""
    p = family.base_prefix
    if any(name.startswith(p) for name in tensors):
        base = {name[len(p) :]: v for name, v in tensors.items() if name.startswith(p)}
        outside = {name: v for name, v in tensors.items() if not name.startswith(p)}
    else:
        base = {n: v for n, v in tensors.items() if n not in family.head_tensors}
        outside = {n: v for n, v in tensors.items() if n in family.head_tensors}
    heads = {name: v for name, v in outside.items() if name in family.head_tensors}
    return base, heads


def params_from_tensors(
    tensors: dict,
    arch: Architecture,
    family: Family,
    config: dict,
    dtype="float32",
    source: str = "weights",
    mesh=None,
) -> dict:
    """Map a checkpoint's tensors to the toolkit's parameter pytree (checked, then validated);
    with a ``mesh`` (:mod:`theory.sharding`) the parameters are split over its ``model`` axis."""
    dtype = check_dtype(dtype)
    base, heads = split_tensors(tensors, family)
    what = f"a {family.model_type} model with {arch_summary(arch)}"
    check_tensors(base, family.expected_tensors(arch, config), family.ignored, source, what)
    head_shapes = {"lm_head.weight": (arch.d_vocab, arch.d_model)}
    for name, value in heads.items():
        if tuple(np.shape(value)) != head_shapes.get(name, np.shape(value)):
            raise ToolkitError(
                f"{source}: tensor {name!r} has shape {tuple(np.shape(value))}, expected "
                f"{head_shapes[name]} (config.json describes {what})"
            )

    def t(name, optional=False):
        if name in heads:
            return np.asarray(heads[name])
        if optional and name not in base:
            return None
        return np.asarray(base[name])

    params = family.to_params(t, arch, config)
    if mesh is None:
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
        validate_params(params, arch)
        return params
    # Sharded: converted and checked on the host, then each device receives only its slices.
    params = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype), params)
    validate_params(params, arch)
    return shard_params(params, mesh)


def load_hf(folder, dtype="float32", name: str | None = None, mesh=None) -> HFModel:
    """A ``save_pretrained`` folder as ``HFModel(arch, params, family, config, model_dir, perm)``.

    ``dtype`` float32 keeps float32 weights (float16/bfloat16 ones are widened exactly);
    float64 is the exact widening of the stored values.  With a ``mesh``
    (:func:`theory.sharding.make_mesh`) the parameters go straight from the files to the
    devices, split over heads, MLP hidden units and vocabulary
    (:func:`theory.sharding.param_specs`).
    """
    folder = Path(folder)
    dtype = check_dtype(dtype)
    if not folder.is_dir():
        raise ToolkitError(
            f"model folder {folder}: expected a directory with config.json and model.safetensors "
            "(as save_pretrained writes them), not found"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ToolkitError(f"model folder {folder}: expected config.json, not found")
    config = read_json(config_path, "model config")
    family = get_family(config, str(config_path))
    arch = family.architecture(config, name or f"hf:{folder}")
    tensors, files = read_checkpoint_tensors(folder)
    source = str(files[0]) if len(files) == 1 else f"{folder} (sharded)"
    params = params_from_tensors(tensors, arch, family, config, dtype, source, mesh)
    perm = family.key_permutation(arch) if family.key_permutation is not None else None
    return HFModel(arch, params, family, config, folder, perm)


def ignored_tensors(tensors: dict, family: Family) -> list:
    """Names in a checkpoint that the mapping does not read (task heads, buffers)."""
    base, heads = split_tensors(tensors, family)
    p = family.base_prefix
    skipped = [n for n in tensors if not n.startswith(p) and n not in heads]
    skipped += [p + n for n in base if is_ignored(n, family.ignored)]
    return sorted(skipped)


def load_tokenizer(folder):
    """The folder's ``tokenizer.json`` (the ``tokenizers`` library), or None when it has none."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        tokenizers = importlib.import_module("tokenizers")
    except ImportError:
        raise ToolkitError(
            f"{path} needs the optional package 'tokenizers'; install it with: "
            'pip install -e ".[models]"'
        ) from None
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises plain Exceptions
        raise ToolkitError(
            f"{path}: expected a tokenizers JSON file, could not read it ({exc})"
        ) from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def tokenize(tokenizer, texts, n_ctx: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``[B, L] int32`` and mask ``[B, L] bool`` (right-padded with 0 to the longest)."""
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise ToolkitError(f"texts: expected a non-empty list of non-empty strings, got {texts!r}")
    encodings = [tokenizer.encode(t).ids for t in texts]
    length = max(len(e) for e in encodings)
    if length > n_ctx or min(len(e) for e in encodings) == 0:
        raise ToolkitError(
            f"texts: expected between 1 and {n_ctx} tokens per text (the model's positions), "
            f"got {min(len(e) for e in encodings)} to {length}"
        )
    ids = np.zeros((len(texts), length), np.int32)
    mask = np.zeros((len(texts), length), bool)
    for row, e in enumerate(encodings):
        ids[row, : len(e)] = e
        mask[row, : len(e)] = True
    return ids, mask
