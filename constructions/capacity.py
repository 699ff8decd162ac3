"""What the capacity theorem (docs/theory.md §2.3) counts, attained by the constructions.

:func:`counts` enumerates the Theorem 1 and Theorem 2 constructions for small ``V, N``: every one
of the ``V^N`` sequences and ``V^V`` maps is reached by one virtual token, while one hard token
reaches at most ``V``. The core's ``capacity`` theorem takes these counts in its numeric instance
(``prefix-theory derive capacity --substitute``).
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from constructions.ceiling import hard_token_ceiling
from constructions.conditional import conditional_model, map_tokens
from constructions.generate import greedy_generate_batch
from constructions.unconditional import unconditional_model, virtual_tokens
from theory.context import SoftPrompt


def counts(V: int = 3, N: int = 3) -> dict:
    """Distinct completions / maps reached by one virtual token and by one hard token."""
    unc = unconditional_model(V, N)
    sequences = np.array(list(itertools.product(range(V), repeat=N)))
    gen = greedy_generate_batch(
        unc, virtual_tokens(unc, sequences), np.full((len(sequences), 1), unc.bos)
    )
    out = np.asarray(gen.tokens)
    cond = conditional_model(V)
    tables = np.array(list(itertools.product(range(V), repeat=V)))
    embeddings = jnp.stack([map_tokens(cond, t).embeddings for t in tables])
    repeated = SoftPrompt(jnp.repeat(embeddings, V, axis=0))
    gen_c = greedy_generate_batch(cond, repeated, np.tile(np.arange(V), len(tables))[:, None])
    maps = np.asarray(gen_c.tokens).reshape(len(tables), V)
    return {
        "V": V,
        "N": N,
        "unconditional_distinct": len({row.tobytes() for row in out}),
        "V^N": V**N,
        "unconditional_exact": bool(np.array_equal(out, sequences)),
        "hard_token_completions": hard_token_ceiling(unc).hard_distinct,
        "conditional_distinct": len({row.tobytes() for row in maps}),
        "V^V": V**V,
        "conditional_exact": bool(np.array_equal(maps, tables)),
        "hard_token_maps": hard_token_ceiling(cond).hard_distinct,
    }
