"""Greedy decoding with the toolkit's transformer, jitted once per (architecture, lengths).

The model is causal, so the content buffer has a fixed length ``n_prompt + n_new - 1``
(the last generated token is never fed back) and never recompiles per step.

Two exact algorithms:

* ``"sequential"``: ``lax.fori_loop`` over the ``n_new`` steps, one forward pass per
  step (the textbook loop; cost ``n_new`` forward passes).
* ``"jacobi"`` (default): fixed-point iteration.  Run the model on the current buffer,
  write every position's argmax into the next slot, repeat until nothing changes.
  After iteration ``t`` the first ``t`` generated tokens equal the greedy ones (each
  depends only on earlier ones, which are already final), so the loop ends after at
  most ``n_new + 1`` passes and its fixed point IS the greedy output.  When the
  output does not depend on earlier outputs (as in these constructions), it takes
  2 passes instead of ``n_new``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from constructions.common import Construction
from theory.context import validate_context
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward

METHODS = ("jacobi", "sequential")


class Generation(NamedTuple):
    tokens: jax.Array  # [n_new] generated token ids
    passes: jax.Array  # forward passes used
    logits: jax.Array  # [n_new, d_vocab] logits that chose each token (final pass)
    virtual_mass: (
        jax.Array
    )  # [n_new] attention share of the decoding query on the virtual token(s), head 0


def _forward_logits(params, arch, buf, context):
    logits, cache = forward(params, arch, buf, context, validate=False)
    return logits, cache


@partial(jax.jit, static_argnames=("arch", "n_new", "method"))
def _generate(params, arch, context, prompt, n_new: int, method: str) -> Generation:
    n_prompt = prompt.shape[0]
    n = n_prompt + n_new - 1
    n_p = (
        jax.tree_util.tree_leaves(context)[0].shape[-2]
        if not hasattr(context, "tokens")
        else context.tokens.shape[0]
    )
    buf = jnp.zeros(n, jnp.int32).at[:n_prompt].set(prompt.astype(jnp.int32))
    out_slots = n_prompt - 1 + jnp.arange(n_new)  # content index whose logits pick token i

    def outputs(buf):
        logits, cache = _forward_logits(params, arch, buf, context)
        chosen = logits[out_slots]
        pattern = cache[act_name("pattern", 0)][0]  # [N, N], head 0
        mass = pattern[n_p + out_slots, :n_p].sum(-1)
        return jnp.argmax(chosen, axis=-1).astype(jnp.int32), chosen, mass

    d_vocab = arch.d_vocab
    dtype = params["unembed"]["W_U"].dtype
    if method == "sequential":

        def step(i, state):
            buf, chosen, mass = state
            tokens, logits, m = outputs(buf)  # position n_prompt-1+i only depends on buf[:..+i]
            token = tokens[i]
            chosen = chosen.at[i].set(logits[i])
            mass = mass.at[i].set(m[i])
            return buf.at[n_prompt + i].set(token, mode="drop"), chosen, mass

        init = (buf, jnp.zeros((n_new, d_vocab), dtype), jnp.zeros(n_new, dtype))
        buf, chosen, mass = jax.lax.fori_loop(0, n_new, step, init)
        tokens = jnp.argmax(chosen, axis=-1).astype(jnp.int32)
        return Generation(tokens, jnp.asarray(n_new), chosen, mass)

    def cond(state):
        return state[1] & (state[2] <= n_new)

    def body(state):
        buf, _, it, _, _, _ = state
        tokens, chosen, mass = outputs(buf)
        new = buf.at[n_prompt:].set(tokens[:-1]) if n_new > 1 else buf
        return new, jnp.any(new != buf), it + 1, tokens, chosen, mass

    init = (
        buf,
        jnp.asarray(True),
        jnp.asarray(0),
        jnp.zeros(n_new, jnp.int32),
        jnp.zeros((n_new, d_vocab), dtype),
        jnp.zeros(n_new, dtype),
    )
    _, _, passes, tokens, chosen, mass = jax.lax.while_loop(cond, body, init)
    return Generation(tokens, passes, chosen, mass)


def greedy_generate(
    construction: Construction,
    context,
    prompt=None,
    n_new: int | None = None,
    method: str = "jacobi",
    params=None,
) -> Generation:
    """Greedy decoding of ``construction`` from ``context`` (SoftPrompt / HardPrompt / Prefix ...).

    ``prompt``: content tokens before the first output (default: ``[BOS]`` for the
    unconditional model); ``n_new``: tokens to generate (default: the construction's
    ``n_out``).  ``params`` overrides the construction's weights (negative controls).
    """
    c = construction
    if method not in METHODS:
        raise ToolkitError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if prompt is None:
        if c.bos is None:
            raise ToolkitError(
                f"prompt: the {c.kind} construction needs {c.n_prompt} user token(s)"
            )
        prompt = [c.bos]
    prompt = jnp.asarray(np.asarray(prompt, np.int32))
    n_new = c.n_out if n_new is None else n_new
    if not isinstance(n_new, int) or n_new < 1:
        raise ToolkitError(f"n_new: expected an int >= 1, got {n_new!r}")
    if prompt.ndim != 1 or prompt.shape[0] != c.n_prompt:
        raise ToolkitError(
            f"prompt: the {c.kind} construction reads {c.n_prompt} content token(s) before its "
            f"output, got shape {tuple(prompt.shape)}"
        )
    validate_context(context, c.arch)
    n_p = context.n_virtual
    if n_p + prompt.shape[0] + n_new - 1 > c.arch.n_ctx:
        raise ToolkitError(
            f"n_new: {n_new} tokens after {prompt.shape[0]} prompt token(s) need "
            f"{n_p + prompt.shape[0] + n_new - 1} positions; this model has n_ctx={c.arch.n_ctx}"
        )
    if int(prompt.min()) < 0 or int(prompt.max()) >= c.arch.d_vocab:
        raise ToolkitError(
            "prompt: token ids must lie in [0, "
            f"{c.arch.d_vocab}), got {np.asarray(prompt).tolist()}"
        )
    return _generate(c.params if params is None else params, c.arch, context, prompt, n_new, method)


@partial(jax.jit, static_argnames=("arch", "n_new", "method"))
def _generate_batch(params, arch, contexts, prompts, n_new, method):
    return jax.vmap(lambda ctx, pr: _generate(params, arch, ctx, pr, n_new, method))(
        contexts, prompts
    )


def greedy_generate_batch(
    construction: Construction, contexts, prompts, n_new: int | None = None, method: str = "jacobi"
) -> Generation:
    """vmapped :func:`greedy_generate`: contexts with
    a leading batch axis, prompts ``[B, n_prompt]``."""
    c = construction
    prompts = np.asarray(prompts)
    if (
        prompts.ndim != 2
        or prompts.shape[1] != c.n_prompt
        or not np.issubdtype(prompts.dtype, np.integer)
    ):
        raise ToolkitError(
            f"prompts: expected integer token ids of shape [batch, n_prompt={c.n_prompt}], "
            f"got shape {prompts.shape} and dtype {prompts.dtype}"
        )
    if prompts.size and (prompts.min() < 0 or prompts.max() >= c.arch.d_vocab):
        raise ToolkitError(
            f"prompts: token ids must lie in [0, {c.arch.d_vocab}), "
            f"got {prompts.min()}..{prompts.max()}"
        )
    prompts = jnp.asarray(prompts.astype(np.int32))
    n_new = c.n_out if n_new is None else n_new
    if (
        not isinstance(n_new, int)
        or n_new < 1
        or c.n_virtual + c.n_prompt + n_new - 1 > c.arch.n_ctx
    ):
        raise ToolkitError(
            f"n_new: expected an int in [1, {c.arch.n_ctx - c.n_virtual - c.n_prompt + 1}], "
            f"got {n_new!r}"
        )
    return _generate_batch(c.params, c.arch, contexts, prompts, n_new, method)


BATCH_BYTES = 256 * 2**20  # activations of one batch of generations (an estimate, see below)


def batch_size(construction: Construction, sequences: int) -> int:
    """Generations per batch in :func:`generate_in_batches`: as many as fit :data:`BATCH_BYTES`,
    at least one.

    One forward pass of ``n`` positions holds about ``6 n d_model + 10 n^2 H`` numbers at once
    (residual stream, queries, keys, values, scores, pattern, MLP activations)."""
    c, a = construction, construction.arch
    n = c.n_virtual + c.n_prompt + c.n_out
    per_sequence = np.dtype(c.dtype).itemsize * (6 * n * a.d_model + 10 * n * n * a.n_heads)
    return int(max(1, min(sequences, BATCH_BYTES // per_sequence)))


def generate_in_batches(
    construction: Construction,
    contexts: Callable,
    prompts,
    progress: Callable[[str], None] | None = None,
    what: str = "generations",
) -> np.ndarray:
    """Greedy outputs ``[S, n_out]`` of :func:`greedy_generate_batch` on ``prompts [S, n_prompt]``,
    :func:`batch_size` sequences at a time, so memory stays bounded whatever ``S``.

    ``contexts(rows)`` returns the batched context of the sequences ``rows`` (an index array);
    the last batch is padded with its last row, so one compilation serves every batch.
    ``progress(message)`` is told after each batch."""
    prompts = np.asarray(prompts)
    total = prompts.shape[0]
    size = batch_size(construction, total)
    outputs = []
    for start in range(0, total, size):
        stop = min(start + size, total)
        rows = np.minimum(np.arange(start, start + size), total - 1)
        gen = greedy_generate_batch(construction, contexts(rows), prompts[rows])
        outputs.append(np.asarray(gen.tokens)[: stop - start])
        if progress is not None:
            progress(f"{what}: {stop}/{total} ({size} per batch)")
    return np.concatenate(outputs)
