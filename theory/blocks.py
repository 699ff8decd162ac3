"""Block kinds: how a transformer block wires attention, MLP, norms and residuals.

``"standard"`` is the model's built-in block (:func:`theory.model.block_forward`),
configured by the architecture's fields: ``norm`` ("pre" | "post" | "none"),
``norm_kind`` (LayerNorm | RMSNorm), ``parallel`` (GPT-J: attention and MLP read
the same input), ``mlp_act`` (gated variants: SwiGLU, GeGLU), ``d_mlp = 0`` (no MLP).

Any other wiring is a registered :class:`BlockKind`:

* ``forward(bp, arch, resid_pre, attend) -> (resid_post, record)`` where
  ``resid_pre`` is ``[N, d_model]`` and ``attend(h) -> (attn_out [N, d_model],
  attention record)`` runs the layer's attention on normalised inputs ``h``
  (prefix, masks and positions are already bound; its record already holds
  ``hook_attn_out``).  ``record`` must contain that attention record (the checks
  read it); ``hook_resid_pre`` / ``hook_resid_post`` are added for you, and
  ``hook_resid_mid`` / ``hook_mlp_out`` are optional.
* ``param_shapes(arch) -> {name: shape or nested dict}``: extra parameters of
  each block, merged into ``params["blocks"][l]`` next to the standard ``attn``,
  ``ln1``, ``ln2`` and ``mlp`` (norm weights named ``w``/``b`` are drawn near 1/0).

The prefix theorems (THEORY.md §3) concern one attention layer *given its
inputs*, so they hold for every block kind whose attention is an attention
kind of :mod:`theory.attention`; the block only decides what those inputs are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from theory.errors import ToolkitError


@dataclass(frozen=True)
class BlockKind:
    name: str
    description: str
    forward: Optional[Callable] = None  # None: the built-in block of theory.model
    param_shapes: Optional[Callable] = None  # arch -> extra leaves of each block
    requires: Optional[Callable] = None  # arch -> None, or a message saying what is missing


BLOCK_KINDS: dict[str, BlockKind] = {}


def register_block(kind: BlockKind) -> BlockKind:
    """Register a block kind under ``kind.name`` (re-registering the same kind is a no-op)."""
    if kind.forward is not None and not callable(kind.forward):
        raise ToolkitError(
            f"block kind {kind.name!r}: forward must be callable, got {kind.forward!r}"
        )
    if kind.name in BLOCK_KINDS and BLOCK_KINDS[kind.name] != kind:
        raise ToolkitError(f"a block kind named {kind.name!r} is already registered")
    BLOCK_KINDS[kind.name] = kind
    return kind


def norm_shapes(arch) -> dict:
    """Shapes of one norm's parameters (``w`` and, for LayerNorm, ``b``) over ``d_model``."""
    d = arch.d_model
    return {"w": (d,), "b": (d,)} if arch.norm_kind == "layernorm" else {"w": (d,)}


def _sandwich_forward(bp, arch, resid_pre, attend):
    """Gemma-2 style: norm before AND after each sublayer, ``x + norm(f(norm(x)))``."""
    from theory.model import apply_norm, mlp

    attn_out, record = attend(apply_norm(bp["ln1"], resid_pre, arch))
    resid_mid = resid_pre + apply_norm(bp["ln1_post"], attn_out, arch)
    mlp_out = apply_norm(
        bp["ln2_post"], mlp(bp["mlp"], apply_norm(bp["ln2"], resid_mid, arch), arch), arch
    )
    record.update({"hook_resid_mid": resid_mid, "hook_mlp_out": mlp_out})
    return resid_mid + mlp_out, record


register_block(
    BlockKind(
        "standard",
        description="built-in block: pre-/post-/no norm, sequential or parallel, plain or gated MLP",
    )
)
register_block(
    BlockKind(
        "sandwich",
        forward=_sandwich_forward,
        param_shapes=lambda arch: {"ln1_post": norm_shapes(arch), "ln2_post": norm_shapes(arch)},
        requires=lambda arch: (
            None
            if arch.norm == "pre" and arch.d_mlp and not arch.parallel
            else "norm='pre', d_mlp > 0 and parallel=False"
        ),
        description="sandwich norms (Gemma 2): x + norm(attn(norm(x))), then x + norm(mlp(norm(x)))",
    )
)
