"""Writing a toolkit model as a Hugging Face GPT-2 checkpoint (``config.json`` + safetensors).

The exact inverse of :func:`interop.gpt2.to_params`: ``save_gpt2`` writes the folder that
``GPT2LMHeadModel.from_pretrained`` (and :func:`interop.hf.load_hf`) reads back as the same
architecture and parameters.  Tensor names carry the ``transformer.`` prefix of a model with a
language-model head; ``lm_head.weight = W_U^T`` is written only when the unembedding is not
the transpose of the token embedding (``tie_word_embeddings: false``).

What GPT-2 can represent is decided by the reader itself: the config built from the
architecture is read back by :func:`interop.gpt2.architecture`, and every field that changes
the computation must come back equal (a model without norms, with RoPE, gated MLPs,
grouped-query attention, ... is refused, naming the field, what GPT-2 has and what was given).

GPT-2 has no bias on its language-model head.  A nonzero unembedding bias ``b_U`` is folded
into the final LayerNorm's bias: the logits are ``(w * n(x) + b) W_U + b_U``, so a ``c``
with ``c W_U = b_U`` makes them ``(w * n(x) + b + c) W_U`` exactly.  ``W_U [d_model, d_vocab]``
of full column rank (``d_model >= d_vocab``) always has such a ``c``; it is solved in float64
(least squares, minimum norm) and the fold is refused when its residual
``max |c W_U - b_U|`` exceeds ``TOL_F64 * max(1, max |b_U|)``.  Stored in float32, the new
bias is rounded like any float32 weight.  ``unembed_bias="refuse"`` refuses instead of folding.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
from jaxtyping import Float

from interop.files import write_bytes, write_safetensors
from interop.gpt2 import ACTIVATIONS, architecture
from theory.architecture import Architecture
from theory.errors import ToolkitError
from theory.params import validate_params
from theory.tolerances import TOL_F64

# toolkit activation -> the config's activation_function (the first name that maps to it)
ACTIVATION_NAMES = {ours: hf for hf, ours in reversed(ACTIVATIONS.items())}
# fields that name or annotate an architecture without changing what it computes
NOT_COMPUTED = (
    "name",
    "description",
    "default_methods",
    "default_run",
    "expectations",
    "negative_control",
)
BIAS_MODES = ("fold", "refuse")
BASE = "transformer."


class SavedModel(NamedTuple):
    """What :func:`save_gpt2` wrote."""

    model_dir: Path
    config: dict
    tied: bool  # lm_head shares the token embedding (no lm_head.weight in the file)
    folded_bias: bool  # a nonzero b_U was folded into ln_f.bias
    fold_residual: float  # max |c W_U - b_U| of the fold (0.0 when nothing was folded)


def gpt2_config(arch: Architecture) -> dict:
    """The ``config.json`` of a GPT-2 model with ``arch``'s sizes (checked by
    :func:`check_representable`)."""
    act = ACTIVATION_NAMES.get(arch.mlp_act, arch.mlp_act)
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": arch.d_vocab,
        "n_positions": arch.n_ctx,
        "n_embd": arch.d_model,
        "n_layer": arch.n_layers,
        "n_head": arch.n_heads,
        "n_inner": arch.d_mlp,
        "activation_function": act,
        "layer_norm_epsilon": arch.norm_eps,
        "scale_attn_weights": arch.temperature == 1.0,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "initializer_range": 0.02,
        "add_cross_attention": False,
        "bos_token_id": None,
        "eos_token_id": None,
        "use_cache": True,
        "tie_word_embeddings": True,
    }


def check_representable(arch: Architecture) -> dict:
    """The GPT-2 config of ``arch``; ToolkitError naming every field GPT-2 cannot match."""
    config = gpt2_config(arch)
    problems = []
    if arch.mlp_act not in ACTIVATION_NAMES:
        problems.append(
            f"mlp_act: GPT-2 has one of {sorted(ACTIVATION_NAMES)}, got {arch.mlp_act!r}"
        )
        config["activation_function"] = "gelu_new"
    if arch.temperature != 1.0 and arch.n_heads and arch.d_model % arch.n_heads == 0:
        if arch.temperature != float(np.sqrt(arch.d_model // arch.n_heads)):
            problems.append(
                "temperature: GPT-2 has 1.0 or sqrt(d_head) (scale_attn_weights), "
                f"got {arch.temperature!r}"
            )
    if arch.d_model % arch.n_heads == 0:
        back = architecture(config, arch.name)
        for field in dataclasses.fields(Architecture):
            if field.name in NOT_COMPUTED or field.name in ("mlp_act", "temperature"):
                continue
            ours, theirs = getattr(arch, field.name), getattr(back, field.name)
            if ours != theirs:
                problems.append(f"{field.name}: GPT-2 has {theirs!r}, got {ours!r}")
    else:
        problems.append(
            f"d_model: GPT-2 needs a multiple of n_head={arch.n_heads}, got {arch.d_model}"
        )
    if problems:
        raise ToolkitError(
            f"model {arch.name!r} cannot be written as a GPT-2 checkpoint (a pre-LN LayerNorm "
            "decoder with learned positions, one key/value head per head and a GELU/ReLU MLP): "
            + "; ".join(problems)
        )
    return config


def fold_unembed_bias(
    W_U: Float[np.ndarray, "d_model d_vocab"], b_U: Float[np.ndarray, " d_vocab"]
) -> tuple[np.ndarray, float]:
    """``(c, residual)``: the minimum-norm ``c [d_model]`` with ``c W_U = b_U`` (float64) and
    ``max |c W_U - b_U|``."""
    W = np.asarray(W_U, np.float64)
    b = np.asarray(b_U, np.float64)
    c = np.linalg.lstsq(W.T, b, rcond=None)[0]
    return c, float(np.max(np.abs(c @ W - b))) if b.size else 0.0


def gpt2_tensors(params, arch: Architecture, unembed_bias: str = "fold") -> tuple[dict, dict]:
    """``({name: array}, info)``: the checkpoint tensors of ``params`` (the inverse of
    :func:`interop.gpt2.to_params`) and ``info`` = tied, folded_bias, fold_residual."""
    if unembed_bias not in BIAS_MODES:
        raise ToolkitError(f"unembed_bias: expected one of {BIAS_MODES}, got {unembed_bias!r}")
    check_representable(arch)
    validate_params(params, arch)
    p = _to_numpy(params)
    H, k, d = arch.n_heads, arch.d_head, arch.d_model

    def heads_out(W):  # [H, d, k] -> Conv1D [d, H*k], the inverse of conv1d_heads_in
        return W.transpose(1, 0, 2).reshape(d, H * k)

    t = {"wte.weight": p["embed"]["W_E"], "wpe.weight": p["embed"]["W_pos"]}
    for l, block in enumerate(p["blocks"]):
        pre, attn, mlp = f"h.{l}.", block["attn"], block["mlp"]
        t.update(
            {
                pre + "ln_1.weight": block["ln1"]["w"],
                pre + "ln_1.bias": block["ln1"]["b"],
                pre + "attn.c_attn.weight": np.concatenate(
                    [heads_out(attn[n]) for n in ("W_Q", "W_K", "W_V")], axis=1
                ),
                pre + "attn.c_attn.bias": np.concatenate(
                    [attn[n].reshape(-1) for n in ("b_Q", "b_K", "b_V")]
                ),
                pre + "attn.c_proj.weight": attn["W_O"].reshape(H * k, d),
                pre + "attn.c_proj.bias": attn["b_O"],
                pre + "ln_2.weight": block["ln2"]["w"],
                pre + "ln_2.bias": block["ln2"]["b"],
                pre + "mlp.c_fc.weight": mlp["W_in"],
                pre + "mlp.c_fc.bias": mlp["b_in"],
                pre + "mlp.c_proj.weight": mlp["W_out"],
                pre + "mlp.c_proj.bias": mlp["b_out"],
            }
        )
    W_U, b_U = p["unembed"]["W_U"], p["unembed"]["b_U"]
    ln_f_bias, residual = p["ln_final"]["b"], 0.0
    folded = bool(np.any(b_U != 0))
    if folded:
        if unembed_bias == "refuse":
            raise ToolkitError(
                f"model {arch.name!r}: GPT-2 has no unembedding (lm_head) bias, got b_U with "
                f"max |b_U| = {np.max(np.abs(b_U)):.3g}; expected b_U = 0 (or fold it into "
                "ln_f.bias: unembed_bias='fold')"
            )
        c, residual = fold_unembed_bias(W_U, b_U)
        limit = TOL_F64 * max(1.0, float(np.max(np.abs(b_U))))
        if residual > limit:
            raise ToolkitError(
                f"model {arch.name!r}: the unembedding bias b_U cannot be folded into ln_f.bias "
                f"(no c with c W_U = b_U: residual {residual:.3g} > {limit:.1g}; W_U "
                f"{tuple(W_U.shape)} has rank {np.linalg.matrix_rank(W_U.astype(np.float64))}, "
                f"expected full column rank {arch.d_vocab})"
            )
        ln_f_bias = (ln_f_bias.astype(np.float64) + c).astype(ln_f_bias.dtype)
    t.update({"ln_f.weight": p["ln_final"]["w"], "ln_f.bias": ln_f_bias})
    tensors = {BASE + name: value for name, value in t.items()}
    tied = bool(np.array_equal(W_U, p["embed"]["W_E"].T))
    if not tied:
        tensors["lm_head.weight"] = W_U.T
    return tensors, {"tied": tied, "folded_bias": folded, "fold_residual": residual}


def save_gpt2(
    params,
    arch: Architecture,
    out_dir,
    *,
    dtype=None,
    unembed_bias: str = "fold",
    overwrite: bool = False,
) -> SavedModel:
    """Write ``params`` of ``arch`` as a GPT-2 ``save_pretrained`` folder.

    ``dtype`` (default: the parameters') is float32 or float64.  Nothing is written on error;
    an existing non-empty folder is refused unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if dtype is None:
        dtype = np.asarray(params["embed"]["W_E"]).dtype
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ToolkitError(f"dtype: expected float32 or float64, got {dtype}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ToolkitError(
            f"output folder {out_dir} exists and is not empty; expected a new or empty folder "
            "(or pass overwrite=True / --force)"
        )
    config = check_representable(arch)
    tensors, info = gpt2_tensors(params, arch, unembed_bias)
    tensors = {name: np.ascontiguousarray(v, dtype) for name, v in tensors.items()}
    config["tie_word_embeddings"] = info["tied"]
    config["dtype"] = np.dtype(dtype).name
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    names = ("model.safetensors", "config.json")
    try:
        write_safetensors(staging / names[0], tensors, metadata={"format": "pt"})
        write_bytes(staging / names[1], (json.dumps(config, indent=2) + "\n").encode())
        out_dir.mkdir(exist_ok=True)
        for name in names:
            (staging / name).replace(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SavedModel(out_dir, config, info["tied"], info["folded_bias"], info["fold_residual"])


def _to_numpy(params):
    if isinstance(params, dict):
        return {k: _to_numpy(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_to_numpy(v) for v in params]
    return np.asarray(params)
