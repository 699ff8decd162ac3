"""What a model family is: how its ``config.json`` and tensors map onto the toolkit's transformer.

A :class:`Family` is data plus three functions: the :class:`theory.architecture.Architecture`
of a config, the tensors (name -> shape) that config implies, and the parameter pytree
(TransformerLens layout, :mod:`theory.params`) built from those tensors.  The helpers below
are shared by the families: head splitting for the two weight layouts Hugging Face uses,
the tensor check that names the first mismatch, and the RoPE head-dimension permutation.

Weight layouts (row-vector convention ``y = x W + b`` everywhere in the toolkit)::

    torch nn.Linear   weight [out, in], y = x weight^T + bias      (BERT, LLaMA)
    GPT-2 Conv1D      weight [in, out], y = x weight + bias        (GPT-2's c_attn, c_proj, c_fc)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from theory.architecture import Architecture
from theory.errors import ToolkitError

MISSING = object()


@dataclass(frozen=True)
class Family:
    model_type: str  # config.json's "model_type"
    description: str
    base_prefix: str  # tensor-name prefix of the base model inside a model with a head
    architecture: Callable  # (config, name) -> Architecture
    expected_tensors: Callable  # (arch, config) -> {name without base_prefix: shape}
    to_params: Callable  # (tensor getter name -> array, arch, config) -> params (numpy leaves)
    task_type: str  # the PEFT task type an exported adapter declares by default
    ignored: tuple = ()  # buffers and unused parts: exact names, "prefix." or ".suffix"
    head_tensors: tuple = ()  # names outside the base model that the mapping reads
    key_permutation: Callable | None = None  # arch -> [d_head] index array (RoPE), or None
    notes: tuple = field(default=())


def config_value(config: dict, key: str, default=MISSING, source: str = "config.json"):
    """``config[key]`` (ToolkitError naming the missing field when there is no default)."""
    if key in config and config[key] is not None:
        return config[key]
    if default is MISSING:
        raise ToolkitError(f"{source}: missing field {key!r}")
    return default


def require_value(config: dict, key: str, allowed: tuple, default, source: str = "config.json"):
    """``config[key]`` when it is one of ``allowed``; ToolkitError listing them otherwise."""
    value = config.get(key, default)
    if value not in allowed:
        shown = " or ".join(repr(a) for a in allowed)
        raise ToolkitError(f"{source}: expected {key}={shown}, got {value!r}")
    return value


def linear_heads_in(weight, n_heads: int, d_head: int):
    """nn.Linear ``[n_heads*d_head, d_model]`` -> ``[n_heads, d_model, d_head]``."""
    d = weight.shape[1]
    return weight.T.reshape(d, n_heads, d_head).transpose(1, 0, 2)


def conv1d_heads_in(weight, n_heads: int, d_head: int):
    """Conv1D ``[d_model, n_heads*d_head]`` -> ``[n_heads, d_model, d_head]``."""
    d = weight.shape[0]
    return weight.reshape(d, n_heads, d_head).transpose(1, 0, 2)


def linear_heads_out(weight, n_heads: int, d_head: int):
    """nn.Linear ``[d_model, n_heads*d_head]`` (the output
    projection) -> ``[n_heads, d_head, d_model]``."""
    return weight.T.reshape(n_heads, d_head, weight.shape[0])


def rope_half_to_pairs(d_head: int) -> np.ndarray:
    """Index array ``perm`` with ``toolkit[..., j] = hf[..., perm[j]]`` for queries and keys.

    Hugging Face's RoPE (``rotate_half``) rotates the pairs ``(x[m], x[m + d_head/2])`` by
    ``pos * base^(-2m/d_head)``; :func:`theory.positional.rope_rotate` rotates the pairs
    ``(x[2m], x[2m+1])`` by the same angle.  Reordering the head dimension of ``W_Q``,
    ``W_K`` (and their biases) by ``perm = [0, d/2, 1, d/2+1, ...]`` makes the toolkit
    rotate exactly the pairs HF rotates; dot products ``q.k`` are unchanged by a common
    permutation, so every attention logit and weight is identical.  Values and ``W_O`` are
    not touched.  PEFT keys (stored in HF's order) are permuted the same way on reading
    and back on writing.
    """
    half = d_head // 2
    return np.stack([np.arange(half), np.arange(half) + half], axis=-1).reshape(-1)


def is_ignored(name: str, ignored: tuple) -> bool:
    """Entries of ``ignored``: an exact name, a prefix
    ending in "." or a suffix starting with "."."""
    return any(
        name == i
        or (i.endswith(".") and name.startswith(i))
        or (i.startswith(".") and name.endswith(i))
        for i in ignored
    )


def check_tensors(tensors: dict, expected: dict, ignored: tuple, source: str, what: str) -> None:
    """Raise ToolkitError naming the first unexpected, missing, misshapen or non-float tensor."""
    unexpected = sorted(n for n in tensors if n not in expected and not is_ignored(n, ignored))
    if unexpected:
        raise ToolkitError(
            f"{source}: unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} "
            f"(expected the {len(expected)} tensors of {what})"
        )
    for name, shape in expected.items():
        if name not in tensors:
            raise ToolkitError(
                f"{source}: missing tensor {name!r} (expected shape {tuple(shape)} for {what})"
            )
        got = tuple(np.shape(tensors[name]))
        if got != tuple(shape):
            raise ToolkitError(
                f"{source}: tensor {name!r} has shape {got}, expected {tuple(shape)} "
                f"(config.json describes {what})"
            )
        dtype = np.asarray(tensors[name]).dtype
        if not np.issubdtype(dtype, np.floating):
            raise ToolkitError(
                f"{source}: tensor {name!r} has dtype {dtype}, expected a floating-point dtype"
            )


def arch_summary(arch: Architecture) -> str:
    """A few words naming the sizes that decide every tensor shape."""
    kv = f", {arch.kv_heads} key/value heads" if arch.kv_heads != arch.n_heads else ""
    return (
        f"{arch.n_layers} layers, {arch.n_heads} heads of size {arch.d_head}{kv}, "
        f"d_model {arch.d_model}, d_mlp {arch.d_mlp}, vocabulary {arch.d_vocab}, "
        f"{arch.n_ctx} positions"
    )
