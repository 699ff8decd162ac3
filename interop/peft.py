"""PEFT adapters (``adapter_config.json`` + ``adapter_model.safetensors``) as toolkit contexts.

Two adapter types are prompt-learning methods that the theory covers:

``PREFIX_TUNING`` -> :class:`theory.context.KVPrefix`
    The file holds ``prompt_embeddings [num_virtual_tokens, num_layers * 2 * token_dim]``
    (with ``prefix_projection`` PEFT saves the projected output, so the file has the same
    shape and no MLP is needed).  PEFT's ``get_prompt`` views it as
    ``[n_p, 2 L, G, k]`` (``G = num_attention_heads``, which PEFT sets to the number of
    key/value heads under grouped-query attention, ``k = token_dim / G``), permutes it to
    ``[2 L, G, n_p, k]`` and splits it in pairs: layer ``l`` gets keys ``[2l]`` and values
    ``[2l + 1]``.  transformers puts them in the KV cache as they are: no norm, no projection,
    no RoPE rotation; the content follows at positions ``n_p ..`` and the attention mask is
    ``n_p`` ones followed by the content mask.  That is exactly the toolkit's ``KVPrefix``
    (used as-is, virtual keys first, content at ``position_offset = n_p``).  Under RoPE the
    keys are reordered by the model's head permutation (:func:`interop.family.rope_half_to_pairs`).

``PROMPT_TUNING`` -> :class:`theory.context.SoftPrompt`
    The file holds ``prompt_embeddings [num_virtual_tokens, token_dim]`` (``token_dim =
    d_model``), which PEFT concatenates in front of the input embeddings: the model adds
    positions (and BERT's embedding LayerNorm) to them as to any token, as the toolkit does
    with a ``SoftPrompt``.

Writing (:func:`write_adapter`) is the inverse; a hidden-state :class:`theory.context.Prefix`
(the paper's prefix-tuning) is written as the KV-prefix it induces (keys and values of its
states at every layer, :func:`kv_prefix_from_prefix`), a :class:`HardPrompt` as the soft
prompt of its token embeddings.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from interop.files import read_json, read_safetensors, write_bytes, write_safetensors
from interop.hf import HFModel, check_dtype
from theory.context import HardPrompt, KVPrefix, Prefix, SoftPrompt, validate_context
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward

SUPPORTED = ("PREFIX_TUNING", "PROMPT_TUNING")
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
TENSOR = "prompt_embeddings"


class Adapter(NamedTuple):
    """A PEFT adapter read for one model: its type, the toolkit context, and its config."""

    peft_type: str  # "PREFIX_TUNING" | "PROMPT_TUNING"
    context: Any  # KVPrefix (prefix tuning) or SoftPrompt (prompt tuning)
    config: dict
    adapter_dir: Path

    @property
    def n_virtual(self) -> int:
        return self.context.n_virtual


def _int_field(config: dict, key: str, source: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ToolkitError(f"{source}: expected {key} to be a positive int, got {value!r}")
    return value


def expected_prefix_shape(model: HFModel, n_p: int) -> tuple:
    arch = model.arch
    return (n_p, arch.n_layers * 2 * arch.kv_heads * arch.d_head)


def read_adapter(adapter_dir, model: HFModel, dtype=None) -> Adapter:
    """A PEFT adapter folder as a toolkit context for ``model`` (checked against its shapes).

    ``dtype`` (default: the model's) is the dtype of the context; float64 is the exact
    widening of the stored values.
    """
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise ToolkitError(
            f"adapter folder {adapter_dir}: expected a directory with {CONFIG_FILE} and "
            f"{WEIGHTS_FILE} (as PEFT's save_pretrained writes them), not found"
        )
    config_path = adapter_dir / CONFIG_FILE
    config = read_json(config_path, "PEFT adapter config")
    peft_type = config.get("peft_type")
    if peft_type not in SUPPORTED:
        raise ToolkitError(
            f"{config_path}: unsupported peft_type {peft_type!r}; supported: "
            + ", ".join(SUPPORTED)
            + " (the context-based methods the theory covers)"
        )
    weights_path = adapter_dir / WEIGHTS_FILE
    if not weights_path.is_file() and (adapter_dir / "adapter_model.bin").is_file():
        raise ToolkitError(
            f"{adapter_dir}: only adapter_model.bin found; expected {WEIGHTS_FILE} (the toolkit "
            "reads safetensors only, never torch pickles: re-save with safe_serialization=True)"
        )
    tensors = read_safetensors(weights_path)
    if TENSOR not in tensors:
        raise ToolkitError(
            f"{weights_path}: expected a tensor {TENSOR!r} (PEFT's prompt-learning weights), "
            f"got {sorted(tensors)[:5]}"
        )
    stored = np.asarray(tensors[TENSOR])
    if not np.issubdtype(stored.dtype, np.floating) or not np.all(np.isfinite(stored)):
        raise ToolkitError(f"{weights_path}: {TENSOR} must hold finite floats, got {stored.dtype}")
    dtype = check_dtype(dtype or model.params["embed"]["W_E"].dtype)
    n_p = _int_field(config, "num_virtual_tokens", config_path)
    if config.get("num_transformer_submodules", 1) != 1:
        raise ToolkitError(
            f"{config_path}: num_transformer_submodules={config['num_transformer_submodules']} "
            "(an encoder-decoder adapter) is not supported; expected 1"
        )
    arch = model.arch
    if peft_type == "PROMPT_TUNING":
        want = (n_p, arch.d_model)
        made_for = f"token_dim={config.get('token_dim')}"
        mine = f"d_model={arch.d_model}"
    else:
        want = expected_prefix_shape(model, n_p)
        made_for = (
            f"num_layers={config.get('num_layers')}, num_attention_heads="
            f"{config.get('num_attention_heads')}, token_dim={config.get('token_dim')}"
        )
        mine = (
            f"n_layers={arch.n_layers}, key/value heads={arch.kv_heads}, d_head={arch.d_head}, "
            f"token_dim={arch.kv_heads * arch.d_head}"
        )
    if stored.shape != want:
        raise ToolkitError(
            f"adapter {adapter_dir} does not fit model {arch.name}: its {TENSOR} has shape "
            f"{stored.shape} ({made_for}), the model expects {want} ({mine}); "
            "the adapter was made for another base model"
        )
    values = stored.astype(dtype)
    if peft_type == "PROMPT_TUNING":
        context = SoftPrompt(jnp.asarray(values))
    else:
        G, k = arch.kv_heads, arch.d_head
        per_layer = values.reshape(n_p, arch.n_layers * 2, G, k).transpose(1, 2, 0, 3)
        keys, vals = per_layer[0::2], per_layer[1::2]  # [L, G, n_p, k] each
        if model.key_permutation is not None:
            keys = keys[..., model.key_permutation]
        context = KVPrefix(jnp.asarray(keys), jnp.asarray(vals))
    validate_context(context, arch)
    return Adapter(peft_type, context, config, adapter_dir)


def kv_prefix_from_prefix(params, arch, prefix: Prefix) -> KVPrefix:
    """The KV-prefix that a hidden-state prefix induces: at every layer the keys and values
    the layer computes from the prefix states (after its norm, projections and, with RoPE,
    rotation by the virtual positions ``0..n_p-1``), as ``forward`` caches them.

    A virtual position's key and value depend only on its own state, never on the content,
    so one content token suffices to read them.
    """
    validate_context(prefix, arch)
    n_p = prefix.n_virtual
    _, cache = forward(params, arch, jnp.zeros(1, jnp.int32), prefix)
    keys = jnp.stack([cache[act_name("k", l)][:n_p] for l in range(arch.n_layers)])
    values = jnp.stack([cache[act_name("v", l)][:n_p] for l in range(arch.n_layers)])
    return KVPrefix(jnp.swapaxes(keys, 1, 2), jnp.swapaxes(values, 1, 2))


def adapter_tensor(model: HFModel, context) -> tuple[str, np.ndarray]:
    """``(peft_type, prompt_embeddings)`` of a toolkit context, exactly as PEFT stores it."""
    arch = model.arch
    validate_context(context, arch)
    if isinstance(context, HardPrompt):
        context = SoftPrompt(model.params["embed"]["W_E"][context.tokens])
    if isinstance(context, SoftPrompt):
        return "PROMPT_TUNING", np.asarray(context.embeddings)
    if isinstance(context, Prefix):
        context = kv_prefix_from_prefix(model.params, arch, context)
    if not isinstance(context, KVPrefix):
        raise ToolkitError(
            "context: expected a HardPrompt, SoftPrompt, Prefix or KVPrefix to write as a PEFT "
            f"adapter, got {type(context).__name__}"
        )
    keys, values = np.asarray(context.keys), np.asarray(context.values)
    if model.key_permutation is not None:
        keys = keys[..., np.argsort(model.key_permutation)]
    L, G, n_p, k = keys.shape
    pairs = np.stack([keys, values], axis=1).reshape(2 * L, G, n_p, k)  # [k_0, v_0, k_1, ...]
    return "PREFIX_TUNING", pairs.transpose(2, 0, 1, 3).reshape(n_p, 2 * L * G * k)


def adapter_config(model: HFModel, peft_type: str, n_p: int, task_type=None, base=None) -> dict:
    """The ``adapter_config.json`` PEFT writes for this adapter (inference mode)."""
    arch = model.arch
    prefix = peft_type == "PREFIX_TUNING"
    token_dim = arch.kv_heads * arch.d_head if prefix else arch.d_model
    config = {
        "peft_type": peft_type,
        "task_type": task_type or model.family.task_type,
        "base_model_name_or_path": str(base if base is not None else model.model_dir),
        "revision": None,
        "auto_mapping": None,
        "inference_mode": True,
        "num_virtual_tokens": n_p,
        "token_dim": token_dim,
        "num_transformer_submodules": 1,
        "num_attention_heads": arch.kv_heads if prefix else arch.n_heads,
        "num_layers": arch.n_layers,
        "modules_to_save": None,
    }
    if prefix:
        config.update({"encoder_hidden_size": token_dim, "prefix_projection": False})
    else:
        config.update(
            {
                "prompt_tuning_init": "RANDOM",
                "prompt_tuning_init_text": None,
                "tokenizer_name_or_path": None,
                "tokenizer_kwargs": None,
            }
        )
    return config


def write_adapter(
    context,
    model: HFModel,
    out_dir,
    *,
    task_type: str | None = None,
    base_model_name_or_path: str | None = None,
    dtype="float32",
    overwrite: bool = False,
) -> Path:
    """Write a toolkit context as a PEFT adapter folder that ``PeftModel.from_pretrained`` loads.

    ``Prefix``/``KVPrefix`` become PREFIX_TUNING, ``SoftPrompt``/``HardPrompt`` PROMPT_TUNING.
    The tensor is stored in ``dtype`` (float32, PEFT's own parameter dtype, by default).
    Nothing is written on error; an existing non-empty folder is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ToolkitError(f"dtype: expected float32 or float64, got {dtype}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ToolkitError(
            f"output folder {out_dir} exists and is not empty; expected a new or empty folder "
            "(or pass overwrite=True / --force)"
        )
    peft_type, tensor = adapter_tensor(model, context)
    if not np.all(np.isfinite(tensor)):
        raise ToolkitError("context: expected finite values, got NaN or inf")
    config = adapter_config(model, peft_type, tensor.shape[0], task_type, base_model_name_or_path)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        write_safetensors(
            staging / WEIGHTS_FILE, {TENSOR: tensor.astype(dtype)}, metadata={"format": "pt"}
        )
        write_bytes(staging / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
        out_dir.mkdir(exist_ok=True)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            (staging / name).replace(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
