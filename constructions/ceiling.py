"""The hard-prompt ceiling (docs/theory.md §2): what ONE hard token can do vs ONE virtual token.

Enumerate every single hard token ``t`` (``HardPrompt([t])`` in place of the virtual
token), run the same model greedily on every input, and count the distinct
behaviours (completions, or whole input->output tables for the map constructions).
A hard token is a row of ``W_E``, so there are at most ``d_vocab`` of them; a
certified construction reaches every one of ``V^N`` sequences (``V^V`` maps,
``V^(V^2)`` two-token maps) with virtual tokens.

The generations run in batches whose activations fit :data:`BATCH_BYTES` (one hard token at a
time for the long unconditional models: N = 2,048 has d_model = 4,099), so memory stays bounded
whatever N; ``progress`` is told after each batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from constructions.common import Construction
from constructions.generate import greedy_generate_batch
from constructions.two_token import all_pairs
from theory.context import HardPrompt
from theory.errors import ToolkitError


class Ceiling(NamedTuple):
    hard_tokens: int  # hard tokens enumerated (every id of the vocabulary)
    hard_distinct: int  # distinct behaviours they produce (<= hard_tokens)
    virtual_reachable: (
        int  # behaviours one virtual token reaches (all of them, if certified; else 0)
    )
    behaviours: np.ndarray  # [hard_tokens, ...] the behaviour of each hard token

    def summary(self, construction: Construction) -> str:
        c = construction
        what = {
            "unconditional": f"completions of {c.n_out} tokens",
            "conditional": "maps [V] -> [V]^N0",
            "two_token": "maps [V]^2 -> [V]",
        }[c.kind]
        exponent = {
            "unconditional": f"V^N = {c.V}^{c.n_out}",
            "conditional": f"V^(V N0) = {c.V}^{c.V * c.n_out}",
            "two_token": f"V^(V^2) = {c.V}^{c.V**2}",
        }[c.kind]
        digits = len(str(self.virtual_reachable)) if self.virtual_reachable else 0
        reach = (
            f"one virtual token reaches all {exponent} (~1e{digits - 1}), certified"
            if self.virtual_reachable
            else "virtual tokens: not certified at this temperature"
        )
        return (
            f"hard-prompt ceiling: {self.hard_tokens} single hard tokens give "
            f"{self.hard_distinct} distinct {what} (at most {c.arch.d_vocab}); {reach}"
        )


BATCH_BYTES = 256 * 2**20  # activations of one batch of generations (an estimate, see below)


def batch_size(construction: Construction, sequences: int) -> int:
    """Generations per batch: as many as fit :data:`BATCH_BYTES`, at least one.

    One forward pass of ``n`` positions holds about ``6 n d_model + 10 n^2 H`` numbers at once
    (residual stream, queries, keys, values, scores, pattern, MLP activations)."""
    c, a = construction, construction.arch
    n = c.n_virtual + c.n_prompt + c.n_out
    per_sequence = np.dtype(c.dtype).itemsize * (6 * n * a.d_model + 10 * n * n * a.n_heads)
    return int(max(1, min(sequences, BATCH_BYTES // per_sequence)))


def _generate_in_batches(c: Construction, tokens, prompts, progress) -> np.ndarray:
    """Greedy outputs ``[S, n_out]`` of hard tokens ``tokens [S]`` on ``prompts [S, n_prompt]``,
    :func:`batch_size` at a time (the last batch padded, so one compilation serves all)."""
    total = tokens.shape[0]
    size = batch_size(c, total)
    outputs = []
    for start in range(0, total, size):
        stop = min(start + size, total)
        take = np.minimum(np.arange(start, start + size), total - 1)  # pad with the last one
        gen = greedy_generate_batch(
            c, HardPrompt(jnp.asarray(tokens[take])[:, None]), prompts[take]
        )
        outputs.append(np.asarray(gen.tokens)[: stop - start])
        progress(f"hard-prompt ceiling: {stop}/{total} generations ({size} per batch)")
    return np.concatenate(outputs)


def hard_token_ceiling(
    construction: Construction, progress: Callable[[str], None] | None = None
) -> Ceiling:
    """Enumerate every single hard token and count the distinct greedy behaviours."""
    c = construction
    if c.n_virtual != 1:
        raise ToolkitError(
            "hard_token_ceiling: enumerates single hard tokens, but this "
            f"{c.kind} construction reads {c.n_virtual} virtual tokens; use N0 = 1"
        )
    say = progress or (lambda message: None)
    ids = np.arange(c.arch.d_vocab, dtype=np.int32)
    if c.kind == "unconditional":
        prompts = np.full((ids.shape[0], 1), c.bos)
        behaviours = _generate_in_batches(c, ids, prompts, say)
        reach = c.V**c.n_out
    else:
        inputs = np.arange(c.V)[:, None] if c.kind == "conditional" else all_pairs(c.V)
        n_in = inputs.shape[0]
        tok = np.repeat(ids, n_in)
        prompts = np.tile(inputs, (ids.shape[0], 1))
        behaviours = _generate_in_batches(c, tok, prompts, say).reshape(ids.shape[0], n_in, -1)
        reach = c.V ** (c.V * c.n_out) if c.kind == "conditional" else c.V ** (c.V**2)
    distinct = len({b.tobytes() for b in behaviours})
    certified = c.certificate is not None and c.certificate.certified
    return Ceiling(int(ids.shape[0]), distinct, reach if certified else 0, behaviours)
