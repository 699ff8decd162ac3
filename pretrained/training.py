"""Optimise a prefix on the real model: push a sentence's embedding towards a target sentence.

The prefix is the paper's prefix-tuning (:class:`theory.context.Prefix`): a free
hidden state ``s^l_j`` for every layer ``l`` and virtual position ``j``, states
``[n_layers, n_p, d_model]``.  Objective (any simple one serves, docs/theory.md §3
holds for every prefix)::

    loss(s) = 1 - cos( emb(source; prefix s), emb(target) )

with ``emb`` the L2-normalised mean-pooled embedding (:func:`pretrained.minilm.sentence_embedding`;
the source content sits at positions ``n_p..``, the target is embedded without a prefix).
Adam (optax), all steps in one jitted ``lax.scan``, float32.

Initialisation: the target sentence's own hidden states at its first ``n_p``
positions (block inputs at every layer, so the start is in the model's
distribution), plus ``init_noise`` times a standard normal draw from ``seed``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pretrained.minilm import Pretrained, sentence_embedding, tokenize
from pretrained.optional import require
from theory.context import Prefix
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward
from theory.verify import FAST_COMPILE


class TrainedPrefix(NamedTuple):
    prefix: Prefix  # states [n_layers, n_p, d_model]
    losses: np.ndarray  # [steps] loss before each step
    cos_no_prefix: float  # cos(source without prefix (same positions), target)
    cos_init: float  # with the initial prefix
    cos_trained: float  # with the trained prefix
    source: str
    target: str


def _loss(states, params, arch, ids, mask, target):
    return 1.0 - sentence_embedding(params, arch, ids, mask, Prefix(states)) @ target


def _optimise(states, params, arch, ids, mask, target, steps: int, lr: float):
    optax = require("optax")
    optimiser = optax.adam(lr)

    def step(carry, _):
        s, opt_state = carry
        loss, grad = jax.value_and_grad(_loss)(s, params, arch, ids, mask, target)
        updates, opt_state = optimiser.update(grad, opt_state, s)
        return (optax.apply_updates(s, updates), opt_state), loss

    (states, _), losses = jax.lax.scan(step, (states, optimiser.init(states)), None, length=steps)
    return states, losses


def train_prefix(
    model: Pretrained,
    source: str,
    target: str,
    n_p: int = 1,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
    init_noise: float = 0.1,
    fast_compile: bool = False,
) -> TrainedPrefix:
    """Train a prefix of ``n_p`` positions for ``steps`` Adam steps (float32 model expected).

    ``fast_compile`` compiles with XLA's backend optimisation off (as ``verify`` does):
    several times quicker to compile, about ten times slower per step, so only worth it
    for a few steps (tests).
    """
    require("optax")
    if not isinstance(n_p, int) or n_p < 1:
        raise ToolkitError(f"n_p: expected an int >= 1, got {n_p!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ToolkitError(f"steps: expected an int >= 1, got {steps!r}")
    arch, params = model.arch, model.params
    dtype = params["embed"]["W_E"].dtype
    src_ids, src_mask = (jnp.asarray(a[0]) for a in tokenize(model.tokenizer, [source]))
    tgt_ids, tgt_mask = (jnp.asarray(a[0]) for a in tokenize(model.tokenizer, [target]))
    if tgt_ids.shape[0] < n_p:
        raise ToolkitError(f"target sentence has {tgt_ids.shape[0]} tokens, fewer than n_p={n_p}")
    with jax.default_matmul_precision("highest"):
        target_emb = sentence_embedding(params, arch, tgt_ids, tgt_mask)
        _, cache = forward(params, arch, tgt_ids, validate=False)
        start = jnp.stack([cache[act_name("resid_pre", l)][:n_p] for l in range(arch.n_layers)])
        noise = jax.random.normal(jax.random.PRNGKey(seed), start.shape, dtype)
        states0 = (start + init_noise * noise).astype(dtype)
        args = (states0, params, src_ids, src_mask, target_emb)
        lowered = jax.jit(_optimise, static_argnames=("arch", "steps", "lr")).lower(
            states0, params, arch, src_ids, src_mask, target_emb, steps=steps, lr=float(lr)
        )
        states, losses = lowered.compile(compiler_options=FAST_COMPILE if fast_compile else None)(
            *args
        )

        def cos(ctx, offset=None):
            return float(
                sentence_embedding(params, arch, src_ids, src_mask, ctx, position_offset=offset)
                @ target_emb
            )

        return TrainedPrefix(
            Prefix(states),
            np.asarray(losses),
            cos(None, n_p),
            cos(Prefix(states0)),
            cos(Prefix(states)),
            source,
            target,
        )
