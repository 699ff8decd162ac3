"""The numeric core of docs/theory.md §3: compare
an adapted run with the base model, layer by layer.

For every layer ``l`` the adapted model (prefix or changed weights) is run on
the whole sequence; then the BASE block ``l`` is run without any prefix on the
adapted run's content activations at layer ``l`` (same positions).  At layer 0
the inputs coincide, so this is the unconditional statement; deeper, it is the
statement "given its inputs" (docs/theory.md §3.7).

Per layer, head ``h``, content query ``i`` and content key ``j``::

    m_i   = sum_{p prefix} A^pt_ip                (prefix mass)
    c_i   = 1 - m_i     (normalised attention kinds; 1 for unnormalised kinds)
    attention residual = max |A^pt_ij - c_i A_ij|
    output residual    = max |t^pt_i - (sum_p A^pt_ip v_p + c_i t_i)|

where ``v_p`` are the virtual positions' value vectors and ``t`` = ``hook_z``. The context's
effect is reported beside them (the mean prefix mass and the displacement ``max |t^pt_i - t_i|``),
so that a check on a context that does nothing is seen to be vacuous.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from theory.architecture import Architecture
from theory.attention import mask_matrix
from theory.blocks import block_forward
from theory.context import n_virtual
from theory.hooks import act_name, block_record
from theory.model import forward
from theory.registry import ATTENTION_KINDS
from theory.trials import Trial

PATTERN, Z, V = act_name("pattern"), act_name("z"), act_name("v")
OUT = act_name("attn_out")


class Comparison(NamedTuple):
    attention_residual: Float[Array, " n_layers"]  # max |A^pt_ij - c_i A_ij|
    output_residual: Float[Array, " n_layers"]  # max |t^pt - (bias + c t)|
    prefix_mass: Float[Array, " n_layers"]  # mean prefix mass m_i (shows a check is not vacuous)
    displacement: Float[Array, " n_layers"]  # max |t^pt - t|: how far the context moved a head


class LayerPair(NamedTuple):
    """Layer ``l`` of the adapted run next to the base block run on its content inputs.

    ``adapted``: the adapted run's activations of layer ``l`` (block-record keys), all ``N``
    positions; ``base``: base block ``l`` without any prefix on the adapted run's content inputs
    (``n`` positions); ``positions`` ``[n]`` and ``content_mask`` ``[n, n]`` are shared by both.
    """

    adapted: dict
    base: dict
    positions: Array
    content_mask: Array


_SHARED = threading.local()  # .memo: {(arch, id(trial)): (trial, result)} inside shared_runs()


@contextmanager
def shared_runs():
    """Within this block :func:`layer_pairs` runs once per (architecture, trial object).

    Several theorems of one trial need the same adapted run and per-layer base runs; the
    verifier checks them all in one traced function, and this memo traces those runs once
    (about 10% of a default run's tracing time). The memo holds the trial itself (so ids
    cannot be reused) and is dropped when the block ends, so no tracer outlives its trace.
    """
    outer = getattr(_SHARED, "memo", None)
    _SHARED.memo = {}
    try:
        yield
    finally:
        _SHARED.memo = outer


def layer_pairs(arch: Architecture, trial: Trial) -> tuple[list, dict]:
    """Per layer a :class:`LayerPair`; also the adapted run's full cache.

    This is the "given its inputs" comparison of docs/theory.md §3 (exact at layer 0)."""
    memo = getattr(_SHARED, "memo", None)
    if memo is None:
        return _layer_pairs(arch, trial)
    key = (arch, id(trial))
    if key not in memo:
        memo[key] = (trial, _layer_pairs(arch, trial))
    return memo[key][1]


def _layer_pairs(arch: Architecture, trial: Trial) -> tuple[list, dict]:
    n_p = n_virtual(trial.context)
    n = trial.tokens.shape[0]
    _, cache = forward(
        trial.adapted,
        arch,
        trial.tokens,
        trial.context,
        attention_mask=trial.key_mask,
        validate=False,
    )
    positions = n_p + jnp.arange(n)
    content_mask = mask_matrix(arch, trial.key_mask[n_p:])
    no_virtual = jnp.zeros(n, bool)
    pairs = []
    for l in range(arch.n_layers):
        adapted = block_record(cache, l)
        _, base = block_forward(
            trial.params["blocks"][l],
            arch,
            adapted[act_name("resid_pre")][n_p:],
            positions,
            content_mask,
            no_virtual,
        )
        pairs.append(LayerPair(adapted, base, positions, content_mask))
    return pairs, cache


def compare(arch: Architecture, trial: Trial) -> Comparison:
    """Per-layer residuals of the two §3 identities for one trial (pure, jittable)."""
    n_p = n_virtual(trial.context)
    normalised = ATTENTION_KINDS[arch.attention].normalised
    group = arch.n_heads // arch.kv_heads
    attn_res, out_res, masses, moved = [], [], [], []
    for layer in layer_pairs(arch, trial)[0]:
        adapted, base = layer.adapted, layer.base
        pattern = adapted[PATTERN][:, n_p:, :]  # [H, n, n_p + n]
        to_prefix, to_content = pattern[:, :, :n_p], pattern[:, :, n_p:]
        mass = to_prefix.sum(-1)  # [H, n]
        c = 1.0 - mass if normalised else jnp.ones_like(mass)
        attn_res.append(jnp.max(jnp.abs(to_content - c[..., None] * base[PATTERN])))
        v_prefix = jnp.repeat(adapted[V][:n_p], group, axis=1)  # [n_p, H, d_head]
        bias = jnp.einsum("hqp,phd->qhd", to_prefix, v_prefix)
        predicted = bias + c.T[..., None] * base[Z]
        out_res.append(jnp.max(jnp.abs(adapted[Z][n_p:] - predicted)))
        masses.append(jnp.mean(mass))
        moved.append(jnp.max(jnp.abs(adapted[Z][n_p:] - base[Z])))
    return Comparison(*(jnp.stack(x) for x in (attn_res, out_res, masses, moved)))


def context_effect(arch: Architecture, trial: Trial) -> dict[str, Float[Array, ""]]:
    """What the trial's context changes, each the largest over the layers: ``displacement``, how
    far it moved a head's output (``hook_z``; for a mixer without attention heads, the mixer's
    output ``hook_attn_out``), and, where the mixer attends, the ``prefix_mass`` on the virtual
    positions. A check on a context that changes nothing holds vacuously
    (:data:`theory.tolerances.EFFECT_FLOOR`)."""
    pairs = layer_pairs(arch, trial)[0]
    if all(PATTERN in layer.adapted for layer in pairs):
        c = compare(arch, trial)
        return {
            "prefix_mass": jnp.max(jnp.abs(c.prefix_mass)),
            "displacement": jnp.max(c.displacement),
        }
    n_p = n_virtual(trial.context)
    moved = [jnp.max(jnp.abs(layer.adapted[OUT][n_p:] - layer.base[OUT])) for layer in pairs]
    return {"displacement": jnp.max(jnp.stack(moved))}
