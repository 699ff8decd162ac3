"""Small helpers shared by the theorems' numeric checks (docs/theory.md §1-3).

Names follow the paper: ``n_p`` virtual (prefix) positions come first in the sequence, ``n``
content positions follow; ``m_i`` is the prefix mass a content query gives to the virtual
positions.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from theory.architecture import Architecture
from theory.context import HardPrompt, KVPrefix, Prefix, SoftPrompt, n_virtual
from theory.model import forward
from theory.trials import Trial


def first_virtual(context):
    """The same kind of context restricted to its first virtual position (``n_p = 1``)."""
    if isinstance(context, HardPrompt):
        return HardPrompt(context.tokens[:1])
    if isinstance(context, SoftPrompt):
        return SoftPrompt(context.embeddings[:1])
    if isinstance(context, Prefix):
        return Prefix(context.states[:, :1])
    if isinstance(context, KVPrefix):
        return KVPrefix(context.keys[:, :, :1], context.values[:, :, :1])
    raise TypeError(f"expected a context with virtual positions, got {type(context).__name__}")


def single_virtual_trial(trial: Trial) -> Trial:
    """The trial with only the first virtual position kept (key mask cut to match)."""
    n_p = n_virtual(trial.context)
    key_mask = jnp.concatenate([trial.key_mask[:1], trial.key_mask[n_p:]])
    return trial._replace(context=first_virtual(trial.context), key_mask=key_mask)


def logits_of(params, arch: Architecture, trial: Trial, context, key_mask=None):
    """Content logits ``[n, d_vocab]`` of ``params`` on the trial's tokens with ``context``
    (content at positions ``n_p..`` of the trial's context, the paper's convention)."""
    n_p = n_virtual(trial.context)
    mask = trial.key_mask if key_mask is None else key_mask
    logits, _ = forward(
        params,
        arch,
        trial.tokens,
        context,
        position_offset=n_p,
        attention_mask=mask,
        validate=False,
    )
    return logits


def base_run(arch: Architecture, trial: Trial):
    """The unadapted model without any context, content at the same positions: (logits, cache)."""
    n_p = n_virtual(trial.context)
    return forward(
        trial.params,
        arch,
        trial.tokens,
        None,
        position_offset=n_p,
        attention_mask=trial.key_mask[n_p:],
        validate=False,
    )


def max_abs(x: Array) -> Float[Array, ""]:
    return jnp.max(jnp.abs(x))


def relative_singular_tail(vectors: Float[Array, "m dim"], keep: int) -> Float[Array, ""]:
    """``sigma_{keep+1} / sigma_1`` of the rows of ``vectors`` (0 when there is no such value).

    It is 0 exactly when the rows span at most ``keep`` dimensions."""
    s = jnp.linalg.svd(vectors, compute_uv=False)
    if keep >= s.shape[0]:
        return jnp.zeros((), vectors.dtype)
    return s[keep] / jnp.maximum(s[0], jnp.finfo(vectors.dtype).tiny)


def core_architecture(arch: Architecture) -> bool:
    """Architectures whose default ``verify`` runs every method (not the atlas variants)."""
    return not arch.default_methods
