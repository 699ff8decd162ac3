"""Adaptation methods: how a trial turns a base model into an adapted one.

A method takes the base parameters and returns ``(adapted_params, context)``.
Context-based methods (docs/theory.md §1.4) keep the weights and add virtual
positions; weight-based methods (full fine-tuning, LoRA) change the weights and
add no context.  The theorems of docs/theory.md §3 compare the adapted run with the
base run, so weight-based methods are the negative controls: a rank-1 update of
``W_Q`` or ``W_K`` changes ``H`` and hence relative attention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from theory.architecture import meets
from theory.context import HardPrompt, InitialState, KVPrefix, LatentPrefix, Prefix, SoftPrompt
from theory.registry import BLOCK_KINDS, METHODS


@dataclass(frozen=True)
class Method:
    name: str
    changes_weights: bool
    draw: Callable  # (arch, params, key, n_p) -> (adapted_params, context)
    description: str
    requires: tuple = ()  # architecture features the method needs (theory.blocks)

    def applies(self, arch) -> bool:
        """Whether the method can run on ``arch`` (its features meet ``requires``)."""
        return meets(arch, self.requires)


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Register an adaptation method under ``method.name``
    (see :class:`theory.registry.Registry`)."""
    return METHODS.register(method, replace=replace)


def get_method(name: str) -> Method:
    """Registered method by name (ToolkitError listing valid names otherwise)."""
    return METHODS.lookup(name)


def _dtype(params):
    return params["embed"]["W_E"].dtype


def _hard_prompt(arch, params, key, n_p):
    return params, HardPrompt(jax.random.randint(key, (n_p,), 0, arch.d_vocab))


def _soft_prompt(arch, params, key, n_p):
    return params, SoftPrompt(jax.random.normal(key, (n_p, arch.d_model), _dtype(params)))


def _prefix(arch, params, key, n_p):
    return params, Prefix(
        jax.random.normal(key, (arch.n_layers, n_p, arch.d_model), _dtype(params))
    )


def _kv_prefix(arch, params, key, n_p):
    kk, kv = jax.random.split(key)
    shape = (arch.n_layers, arch.kv_heads, n_p, arch.d_head)
    return params, KVPrefix(
        jax.random.normal(kk, shape, _dtype(params)), jax.random.normal(kv, shape, _dtype(params))
    )


def _latent_prefix(arch, params, key, n_p):
    kc, kr = jax.random.split(key)
    return params, LatentPrefix(
        jax.random.normal(kc, (arch.n_layers, n_p, arch.d_latent), _dtype(params)),
        jax.random.normal(kr, (arch.n_layers, n_p, arch.d_rope), _dtype(params)),
    )


def _initial_state(arch, params, key, n_p):
    shape = (arch.n_layers, *BLOCK_KINDS[arch.block].mixer.state_shape(arch))
    return params, InitialState(jax.random.normal(key, shape, _dtype(params)))


def rank1_update(params, matrix: str, key, scale: float = 1.0):
    """Add a LoRA-style rank-1 update ``u v^T`` to ``matrix`` ("W_Q" or "W_K") in every layer.

    The update is rank 1 over the whole ``[d_model, n_heads * d_head]`` matrix, as a
    rank-1 LoRA on the fused projection would be.
    """
    blocks = []
    for l, bp in enumerate(params["blocks"]):
        W = bp["attn"][matrix]  # [heads, d_model, d_head]
        heads, d, k = W.shape
        ku, kv = jax.random.split(jax.random.fold_in(key, l))
        u = jax.random.normal(ku, (d,), W.dtype) * scale / jnp.sqrt(d)
        v = jax.random.normal(kv, (heads, k), W.dtype)
        attn = dict(bp["attn"], **{matrix: W + jnp.einsum("d,hk->hdk", u, v)})
        blocks.append(dict(bp, attn=attn))
    return dict(params, blocks=blocks)


def rank1_mixer_update(params, key, scale: float = 1.0):
    """Add a rank-1 update ``u v^T`` to the recurrence's input map ``mixer.W_in`` in every layer."""
    blocks = []
    for l, bp in enumerate(params["blocks"]):
        W = bp["mixer"]["W_in"]  # [d_model, channels]
        ku, kv = jax.random.split(jax.random.fold_in(key, l))
        u = jax.random.normal(ku, (W.shape[0],), W.dtype) * scale / jnp.sqrt(W.shape[0])
        v = jax.random.normal(kv, (W.shape[1],), W.dtype)
        blocks.append(dict(bp, mixer=dict(bp["mixer"], W_in=W + jnp.outer(u, v))))
    return dict(params, blocks=blocks)


register_method(Method("hard_prompt", False, _hard_prompt, "n_p prompt tokens (rows of W_E)"))
register_method(Method("soft_prompt", False, _soft_prompt, "n_p free layer-0 embeddings"))
register_method(
    Method("prefix", False, _prefix, "free hidden state per layer per virtual position")
)
register_method(
    Method(
        "kv_prefix",
        False,
        _kv_prefix,
        "free key and value per layer per virtual position",
        requires=("attention",),
    )
)
register_method(
    Method(
        "finetune_rank1_WQ",
        True,
        lambda a, p, k, n: (rank1_update(p, "W_Q", k), None),
        "NEGATIVE CONTROL: rank-1 update of W_Q in every layer (fine-tuning / LoRA)",
        requires=("attention",),
    )
)
register_method(
    Method(
        "lora_rank1_WK",
        True,
        lambda a, p, k, n: (rank1_update(p, "W_K", k), None),
        "NEGATIVE CONTROL: rank-1 LoRA update of W_K in every layer",
        requires=("projections",),
    )
)
register_method(
    Method(
        "latent_prefix",
        False,
        _latent_prefix,
        "free key/value latent and RoPE key per layer per virtual position (latent attention)",
        requires=("latent",),
    )
)
register_method(
    Method(
        "initial_state",
        False,
        _initial_state,
        "free initial state of every recurrent layer (no virtual positions)",
        requires=("recurrence",),
    )
)
register_method(
    Method(
        "finetune_rank1_recurrence",
        True,
        lambda a, p, k, n: (rank1_mixer_update(p, k), None),
        "NEGATIVE CONTROL: rank-1 update of the recurrence's input map in every layer",
        requires=("recurrence",),
    )
)


def default_expectation(method: Method) -> str:
    """Context methods are expected to satisfy the §3 theorems; weight updates to violate them."""
    return "fails" if method.changes_weights else "holds"
