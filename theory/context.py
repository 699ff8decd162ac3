"""Context-based methods as first-class model inputs (docs/theory.md §1.4).

Each context puts ``n_virtual = n_p`` positions in front of the content:

=============  ==========================================  ===================================
class          what is free                                array(s)
=============  ==========================================  ===================================
HardPrompt     token ids of the virtual positions           tokens ``[n_p]`` int
SoftPrompt     layer-0 embeddings (any vectors)             embeddings ``[n_p, d_model]``
Prefix         hidden state of every virtual position at    states ``[n_layers, n_p, d_model]``
               every layer (the paper's prefix-tuning):     (``states[l]`` is the block-l input,
               ``hook_resid_pre`` of block l                 i.e. before that block's norm)
KVPrefix       key and value of every virtual position at   keys, values
               every layer (PEFT's ``past_key_values``,     ``[n_layers, n_kv_heads, n_p, d_head]``
               ``num_virtual_tokens = n_p``)                used as-is: no norm, no RoPE applied
LatentPrefix   latent attention: the key/value latent and   latents ``[n_layers, n_p, d_latent]``,
               the decoupled RoPE key of every virtual      rope_keys ``[n_layers, n_p, d_rope]``
               position at every layer (docs/theory.md §5.3) (used as-is, like a latent cache)
InitialState   recurrent blocks: the state every layer's    state ``[n_layers, *state shape]``
               recurrence starts from (docs/theory.md       (no virtual positions: ``n_p = 0``)
               §5.1); the recurrent analogue of a KV-prefix
=============  ==========================================  ===================================

KV-prefixes, latent prefixes and initial states act inside every layer: block ``l`` reads its
slice :func:`layer_context` (a context of the same type without the layer axis), and each needs
a block that reads it (the architecture feature ``attention``, ``latent`` or ``recurrence``).

Hard and soft prompts are token embeddings: the model adds positions (and the
embedding norm) to them exactly as to content tokens.  All contexts are
NamedTuples, hence pytrees: they can be vmapped, differentiated and jitted.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from theory.architecture import Architecture
from theory.errors import ToolkitError
from theory.registry import BLOCK_KINDS


class HardPrompt(NamedTuple):
    tokens: jax.Array  # [n_p] int

    @property
    def n_virtual(self) -> int:
        return self.tokens.shape[0]


class SoftPrompt(NamedTuple):
    embeddings: jax.Array  # [n_p, d_model]

    @property
    def n_virtual(self) -> int:
        return self.embeddings.shape[0]


class Prefix(NamedTuple):
    states: jax.Array  # [n_layers, n_p, d_model]

    @property
    def n_virtual(self) -> int:
        return self.states.shape[1]


class KVPrefix(NamedTuple):
    keys: jax.Array  # [n_layers, n_kv_heads, n_p, d_head]
    values: jax.Array  # [n_layers, n_kv_heads, n_p, d_head]

    @property
    def n_virtual(self) -> int:
        return self.keys.shape[2]


class LatentPrefix(NamedTuple):
    latents: jax.Array  # [n_layers, n_p, d_latent]
    rope_keys: jax.Array  # [n_layers, n_p, d_rope]

    @property
    def n_virtual(self) -> int:
        return self.latents.shape[1]


class InitialState(NamedTuple):
    state: jax.Array  # [n_layers, *state shape of the block's recurrence]

    @property
    def n_virtual(self) -> int:
        return 0


Context = None | HardPrompt | SoftPrompt | Prefix | KVPrefix | LatentPrefix | InitialState
CONTEXT_TYPES = (HardPrompt, SoftPrompt, Prefix, KVPrefix, LatentPrefix, InitialState)
# per-layer contexts and the architecture feature of the blocks that read them
LAYER_CONTEXTS = {KVPrefix: "attention", LatentPrefix: "latent", InitialState: "recurrence"}


def layer_context(context: Context, layer: int):
    """Block ``layer``'s part of a per-layer context (the same type without the layer axis), or
    None for contexts that act through the virtual positions' states."""
    if type(context) not in LAYER_CONTEXTS:
        return None
    return type(context)(*(x[layer] for x in context))


def n_virtual(context: Context) -> int:
    """Number of virtual positions a context adds (0 for None)."""
    return 0 if context is None else context.n_virtual


def _check_float(name: str, x, expected_shape) -> None:
    shape = tuple(getattr(x, "shape", ()))
    if shape != tuple(expected_shape):
        raise ToolkitError(f"{name}: expected shape {tuple(expected_shape)}, got {shape}")
    dtype = getattr(x, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ToolkitError(f"{name}: expected a floating-point array, got dtype {dtype}")
    if not isinstance(x, jax.core.Tracer) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ToolkitError(f"{name}: expected finite values, got NaN or inf")


def check_tokens(name: str, tokens, arch: Architecture) -> None:
    """Tokens must be a 1-D integer array with ids in [0, d_vocab)."""
    if not hasattr(tokens, "shape"):
        raise ToolkitError(
            f"{name}: expected an array of token ids [n] (e.g. jnp.asarray(ids, jnp.int32)), "
            f"got {type(tokens).__name__}"
        )
    shape = tuple(tokens.shape)
    if len(shape) != 1:
        raise ToolkitError(f"{name}: expected a 1-D array of token ids [n], got shape {shape}")
    dtype = getattr(tokens, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
        raise ToolkitError(f"{name}: expected integer token ids, got dtype {dtype}")
    if not isinstance(tokens, jax.core.Tracer) and shape[0]:
        arr = np.asarray(tokens)
        if arr.min() < 0 or arr.max() >= arch.d_vocab:
            raise ToolkitError(
                f"{name}: token ids must lie in [0, {arch.d_vocab}) (the vocabulary of "
                f"{arch.name!r}), got ids from {arr.min()} to {arr.max()}"
            )


def validate_context(context: Context, arch: Architecture) -> None:
    """Check a context's type, shapes, dtype and values against ``arch``."""
    if context is None:
        return
    if not isinstance(context, CONTEXT_TYPES):
        raise ToolkitError(
            "context: expected None, HardPrompt, SoftPrompt, Prefix, KVPrefix, LatentPrefix or "
            f"InitialState, got {type(context).__name__}"
        )
    needed = LAYER_CONTEXTS.get(type(context))
    if needed is not None and needed not in arch.features:
        raise ToolkitError(
            f"context: a {type(context).__name__} needs blocks with the feature {needed!r}; "
            f"architecture {arch.name!r} (block {arch.block!r}) has {sorted(arch.features)}"
        )
    if isinstance(context, HardPrompt):
        check_tokens("hard prompt tokens", context.tokens, arch)
    elif isinstance(context, SoftPrompt):
        n_p = tuple(getattr(context.embeddings, "shape", (0,)))[0]
        _check_float(
            "soft prompt embeddings [n_p, d_model]", context.embeddings, (n_p, arch.d_model)
        )
    elif isinstance(context, Prefix):
        shape = tuple(getattr(context.states, "shape", ()))
        n_p = shape[1] if len(shape) == 3 else 0
        _check_float(
            "prefix states [n_layers, n_p, d_model]",
            context.states,
            (arch.n_layers, n_p, arch.d_model),
        )
    elif isinstance(context, LatentPrefix):
        shape = tuple(getattr(context.latents, "shape", ()))
        n_p = shape[1] if len(shape) == 3 else 0
        _check_float(
            "latent prefix latents [n_layers, n_p, d_latent]",
            context.latents,
            (arch.n_layers, n_p, arch.d_latent),
        )
        _check_float(
            "latent prefix rope_keys [n_layers, n_p, d_rope]",
            context.rope_keys,
            (arch.n_layers, n_p, arch.d_rope),
        )
    elif isinstance(context, InitialState):
        expected = (arch.n_layers, *BLOCK_KINDS[arch.block].mixer.state_shape(arch))
        _check_float("initial state [n_layers, *state shape]", context.state, expected)
    else:
        shape = tuple(getattr(context.keys, "shape", ()))
        n_p = shape[2] if len(shape) == 4 else 0
        expected = (arch.n_layers, arch.kv_heads, n_p, arch.d_head)
        _check_float("KV-prefix keys [n_layers, n_kv_heads, n_p, d_head]", context.keys, expected)
        _check_float(
            "KV-prefix values [n_layers, n_kv_heads, n_p, d_head]", context.values, expected
        )
