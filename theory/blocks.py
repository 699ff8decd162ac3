"""Block kinds: how a transformer block wires attention, MLP, norms and residuals.

``"standard"`` is the built-in block (:func:`standard_block`), configured by the architecture's
fields: ``norm`` ("pre" | "post" | "none"), ``norm_kind`` (LayerNorm | RMSNorm), ``parallel``
(GPT-J: attention and MLP read the same input), ``mlp_act`` (gated variants: SwiGLU, GeGLU),
``d_mlp = 0`` (no MLP).

Any other wiring is a registered :class:`BlockKind`:

* ``forward(bp, arch, resid_pre, attend) -> (resid_post, record)`` where ``resid_pre`` is
  ``[N, d_model]`` and ``attend(h) -> (attn_out [N, d_model], record)`` runs the layer's
  attention on normalised inputs ``h`` (prefix, masks and positions are already bound; its
  record already holds the ``attn_out`` activation). ``record`` must contain that attention
  record (the checks read it); ``resid_pre`` and ``resid_post`` are added for you, and
  ``resid_mid`` / ``mlp_out`` are optional (names from :mod:`theory.hooks`).
* ``param_shapes(arch) -> {name: shape or nested dict}``: extra parameters of each block,
  merged into ``params["blocks"][l]`` next to the standard ``attn``, ``ln1``, ``ln2`` and ``mlp``
  (norm weights named ``w``/``b`` are drawn near 1/0).
* ``mixer(bp, arch, h, positions, mask, virtual, layer_context) -> (out [N, d_model], record)``:
  the block's token mixer, run by ``attend``; ``layer_context`` is this layer's slice of a
  per-layer context (:func:`theory.context.layer_context`) or None. ``None``: multi-head
  attention on ``bp["attn"]`` (:func:`theory.attention.attention_layer`).
* ``features``: what the block provides, named by ``Theorem.requires`` and ``Method.requires``:

  ==============  ============================================================================
  attention       the mixer is attention: activations q, k, v, scores, pattern, z over the N
                  positions; it reads a KV-prefix
  projections     queries, keys and values are the standard maps W_Q, W_K, W_V of ``bp["attn"]``
                  (drawn for the block; checks that rebuild keys or rerun the layer need them)
  recurrence      the mixer is a diagonal linear recurrence (:mod:`theory.recurrence`): state
                  activations; it reads an initial state
  time_invariant  the recurrence's decay does not depend on the input
  latent          multi-head latent attention: keys and values from a shared latent; it reads a
                  latent prefix
  kv_bias         a learned key/value bias (an attention sink) in every layer
  ==============  ============================================================================

  Attention kinds add their own (``AttentionKind.features``): ``differential`` (two softmax
  maps per head), ``signed_weights`` (weights may be negative, so no log-ratio of weights).

The prefix theorems (docs/theory.md §3) concern one attention layer *given its inputs*, so
they hold for every block kind whose attention is an attention kind of :mod:`theory.attention`;
the block only decides what those inputs are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from theory.architecture import Architecture
from theory.attention import attention_layer
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.layers import apply_norm, mlp
from theory.registry import BLOCK_KINDS


@dataclass(frozen=True)
class BlockKind:
    name: str
    description: str
    forward: Callable | None = None  # None: the standard block
    param_shapes: Callable | None = None  # arch -> extra leaves of each block
    requires: Callable | None = None  # arch -> None, or a message saying what is missing
    mixer: Callable | None = None  # the token mixer (module doc); None: attention on bp["attn"]
    features: tuple = ("attention", "projections")  # what the block provides (module doc)


def register_block(kind: BlockKind, *, replace: bool = False) -> BlockKind:
    """Register a block kind under ``kind.name`` (see :class:`theory.registry.Registry`)."""
    for field in ("forward", "mixer"):
        value = getattr(kind, field)
        if value is not None and not callable(value):
            raise ToolkitError(f"block kind {kind.name!r}: {field} must be callable, got {value!r}")
    if not isinstance(kind.features, tuple) or not all(isinstance(f, str) for f in kind.features):
        raise ToolkitError(
            f"block kind {kind.name!r}: features must be a tuple of names, got {kind.features!r}"
        )
    return BLOCK_KINDS.register(kind, replace=replace)


def norm_shapes(arch: Architecture) -> dict:
    """Shapes of one norm's parameters (``w`` and, for LayerNorm, ``b``) over ``d_model``."""
    d = arch.d_model
    return {"w": (d,), "b": (d,)} if arch.norm_kind == "layernorm" else {"w": (d,)}


def standard_block(bp: dict, arch: Architecture, resid_pre, attend) -> tuple:
    """The built-in block: pre-/post-/no norm, sequential or parallel, with or without MLP."""
    h = apply_norm(bp["ln1"], resid_pre, arch) if arch.norm == "pre" else resid_pre
    attn_out, record = attend(h)
    resid_mid = resid_pre + attn_out
    if arch.parallel:
        mlp_out = mlp(bp["mlp"], h, arch) if arch.d_mlp else jnp.zeros_like(resid_pre)
        resid_post = resid_mid + mlp_out
    else:
        if arch.norm == "post":
            resid_mid = apply_norm(bp["ln1"], resid_mid, arch)
        if arch.d_mlp:
            mlp_in = apply_norm(bp["ln2"], resid_mid, arch) if arch.norm == "pre" else resid_mid
            mlp_out = mlp(bp["mlp"], mlp_in, arch)
            resid_post = resid_mid + mlp_out
            if arch.norm == "post":
                resid_post = apply_norm(bp["ln2"], resid_post, arch)
        else:
            mlp_out = jnp.zeros_like(resid_pre)
            resid_post = resid_mid
    record.update({act_name("resid_mid"): resid_mid, act_name("mlp_out"): mlp_out})
    return resid_post, record


def _sandwich_block(bp: dict, arch: Architecture, resid_pre, attend) -> tuple:
    """Gemma-2 style: norm before AND after each sublayer, ``x + norm(f(norm(x)))``."""
    attn_out, record = attend(apply_norm(bp["ln1"], resid_pre, arch))
    resid_mid = resid_pre + apply_norm(bp["ln1_post"], attn_out, arch)
    mlp_in = apply_norm(bp["ln2"], resid_mid, arch)
    mlp_out = apply_norm(bp["ln2_post"], mlp(bp["mlp"], mlp_in, arch), arch)
    record.update({act_name("resid_mid"): resid_mid, act_name("mlp_out"): mlp_out})
    return resid_mid + mlp_out, record


def block_forward(
    bp: dict,
    arch: Architecture,
    resid_pre: Float[Array, "N d_model"],
    positions: Int[Array, " N"],
    mask: Bool[Array, "N Nk"],
    virtual: Bool[Array, " Nk"],
    kv: tuple | None = None,
    past: tuple | None = None,
) -> tuple[Float[Array, "N d_model"], dict]:
    """One transformer block ``[N, d_model] -> [N, d_model]``; returns (resid_post, record).

    ``mask`` is the ``[N, N]`` visibility matrix, ``virtual`` ``[N]`` marks prefix positions,
    ``kv`` this layer's part of a per-layer context (a KV-prefix's keys and values, an initial
    state, a latent prefix) or None. Running this on the content activations alone
    (``virtual`` all False) is the no-prefix layer of the deeper-layer theorems.

    ``past``: keys and values computed earlier, which the attention puts in front of the
    block's own (:func:`theory.attention.attention_layer`; ``mask`` is then ``[N, n_past + N]``
    and ``virtual`` ``[n_past + N]``). Only blocks whose mixer is the standard attention
    (``BlockKind.mixer`` None) take it.
    """
    kind = BLOCK_KINDS[arch.block]

    def attend(h):
        if kind.mixer is None:
            out, record = attention_layer(bp["attn"], arch, h, positions, mask, virtual, kv, past)
        elif past is not None:
            raise ToolkitError(
                f"block kind {kind.name!r}: past keys and values need the standard attention "
                "mixer (BlockKind.mixer None)"
            )
        else:
            out, record = kind.mixer(bp, arch, h, positions, mask, virtual, kv)
        return out, dict(record, **{act_name("attn_out"): out})

    forward = standard_block if kind.forward is None else kind.forward
    resid_post, record = forward(bp, arch, resid_pre, attend)
    record.update({act_name("resid_pre"): resid_pre, act_name("resid_post"): resid_post})
    return resid_post, record


register_block(
    BlockKind(
        "standard",
        description=(
            "built-in block: pre-/post-/no norm, sequential or parallel, plain or gated MLP"
        ),
    )
)
register_block(
    BlockKind(
        "sandwich",
        forward=_sandwich_block,
        param_shapes=lambda arch: {"ln1_post": norm_shapes(arch), "ln2_post": norm_shapes(arch)},
        requires=lambda arch: (
            None
            if arch.norm == "pre" and arch.d_mlp and not arch.parallel
            else "norm='pre', d_mlp > 0 and parallel=False"
        ),
        description=(
            "sandwich norms (Gemma 2): x + norm(attn(norm(x))), then x + norm(mlp(norm(x)))"
        ),
    )
)
