"""The hard-prompt ceiling (docs/theory.md §2): what ONE hard token can do vs ONE virtual token.

Enumerate every single hard token ``t`` (``HardPrompt([t])`` in place of the virtual
token), run the same model greedily on every input, and count the distinct
behaviours (completions, or whole input->output tables for the map constructions).
A hard token is a row of ``W_E``, so there are at most ``d_vocab`` of them; a
certified construction reaches every one of ``V^N`` sequences (``V^V`` maps,
``V^(V^2)`` two-token maps) with virtual tokens.

The generations run in batches whose activations fit
:data:`constructions.generate.BATCH_BYTES` (one hard token at a time for the long unconditional
models: N = 2,048 has d_model = 4,099), so memory stays bounded whatever N; ``progress`` is
told after each batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from constructions.common import Construction
from constructions.generate import generate_in_batches
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


def _generate(c: Construction, tokens, prompts, progress) -> np.ndarray:
    """Greedy outputs of single hard tokens ``tokens [S]`` on ``prompts [S, n_prompt]``."""
    return generate_in_batches(
        c,
        lambda rows: HardPrompt(jnp.asarray(tokens[rows])[:, None]),
        prompts,
        progress,
        "hard-prompt ceiling, generations",
    )


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
    ids = np.arange(c.arch.d_vocab, dtype=np.int32)
    if c.kind == "unconditional":
        prompts = np.full((ids.shape[0], 1), c.bos)
        behaviours = _generate(c, ids, prompts, progress)
        reach = c.V**c.n_out
    else:
        inputs = np.arange(c.V)[:, None] if c.kind == "conditional" else all_pairs(c.V)
        n_in = inputs.shape[0]
        tok = np.repeat(ids, n_in)
        prompts = np.tile(inputs, (ids.shape[0], 1))
        behaviours = _generate(c, tok, prompts, progress).reshape(ids.shape[0], n_in, -1)
        reach = c.V ** (c.V * c.n_out) if c.kind == "conditional" else c.V ** (c.V**2)
    distinct = len({b.tobytes() for b in behaviours})
    certified = c.certificate is not None and c.certificate.certified
    return Ceiling(int(ids.shape[0]), distinct, reach if certified else 0, behaviours)
