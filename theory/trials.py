"""Random trials: a base model, an adapted model, content, a context and a key mask.

Everything is drawn from one PRNG key, so ``jax.vmap(draw_trial)`` over keys gives
a batch of independent random models at once.  Shapes come from a static
:class:`TrialShape`, so one compilation serves every trial of that shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from theory.architecture import Architecture
from theory.context import n_virtual
from theory.errors import ToolkitError
from theory.methods import Method
from theory.params import init_params


class TrialShape(NamedTuple):
    """Static shape of a trial: ``n`` content tokens, ``n_p`` virtual positions,
    and whether content keys are randomly masked (padding), keeping the first one."""

    n: int = 8
    n_p: int = 3
    masked: bool = False


SEED_BOUND = 2**32  # seeds and trial indices are uint32 (jax.random.PRNGKey, fold_in)


def check_index(name: str, value) -> int:
    """A seed or trial index: an int in [0, 2^32) (ToolkitError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_BOUND:
        raise ToolkitError(f"{name}: expected an int in [0, 2^32), got {value!r}")
    return value


def check_shape(shape) -> TrialShape:
    """A :class:`TrialShape` with ``n >= 1`` content tokens and ``n_p >= 1`` virtual positions."""
    if not isinstance(shape, TrialShape):
        raise ToolkitError(f"shape: expected a TrialShape(n, n_p, masked), got {shape!r}")
    for name in ("n", "n_p"):
        value = getattr(shape, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ToolkitError(f"TrialShape.{name}: expected an int >= 1, got {value!r}")
    return shape


class Trial(NamedTuple):
    params: Any  # base parameters
    adapted: Any  # parameters of the adapted model (== params for context methods)
    tokens: jax.Array  # [n]
    context: Any  # None or a context with n_p virtual positions
    key_mask: jax.Array  # [n_virtual + n] bool, virtual keys first


def draw_trial(
    arch: Architecture, method: Method, key, shape: TrialShape = TrialShape(), dtype=jnp.float64
) -> Trial:
    """One random trial (pure; vmap over ``key`` for many)."""
    check_shape(shape)
    k_params, k_tokens, k_method, k_mask = jax.random.split(key, 4)
    params = init_params(arch, k_params, dtype)
    tokens = jax.random.randint(k_tokens, (shape.n,), 0, arch.d_vocab)
    adapted, context = method.draw(arch, params, k_method, shape.n_p)
    n_p = n_virtual(context)
    content_mask = jnp.ones(shape.n, bool)
    if shape.masked:
        content_mask = jax.random.bernoulli(k_mask, 0.7, (shape.n,)).at[0].set(True)
    key_mask = jnp.concatenate([jnp.ones(n_p, bool), content_mask])
    return Trial(params, adapted, tokens, context, key_mask)
