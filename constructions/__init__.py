"""Explicit weight constructions (capacity results, docs/theory.md §2) with exact certificates.

Every construction is an ``Architecture`` plus a params pytree of the toolkit's one
transformer (:func:`theory.model.forward`), with its virtual token(s) passed as a
:class:`theory.context.SoftPrompt`; so ``compare``/``verify`` apply to them as to any
model.  The architectures are NOT registered globally (they would slow ``verify``).

API (small and stable; used by the capacity-counting code)::

    c = unconditional_model(V, N, T=None, dtype=float64)     # Theorem 1 (BOS = V)
    ctx = virtual_token(c, sequence)                          # SoftPrompt [1, d_model]
    greedy_generate(c, ctx).tokens                            # == sequence (jitted)
    hard_token_ceiling(c)                                     # distinct completions, hard tokens

    c = conditional_model(V, N0=1)                            # Theorem 2 (+ longer responses)
    greedy_generate(c, map_tokens(c, table), [x]).tokens      # == table[x]

    c = two_token_model(V, k=None, exact=False)               # maps [V]^2 -> [V], MLP decoder
    greedy_generate(c, pair_token(c, table), [x1, x2])        # float path
    exact_two_token_table(c, table)                           # exact mode (any V)

    c.certificate.certified / .T_min / .V_max / .N_max        # proof-checked correctness
    scalar_certificate(kind, V, n, T, dtype), two_token_certificate(V, k, T, dtype, exact_mode)
    derivation(kind)                                          # sympy derivation of the condition
    section3_residuals(c, ctx, tokens)                        # the §3 checks on a construction

``prefix-theory construct ...`` is the command line (see :mod:`cli.construct`).
"""

from constructions.ceiling import Ceiling, hard_token_ceiling
from constructions.certificates import (
    Certificate,
    derivation,
    scalar_certificate,
    two_token_certificate,
)
from constructions.checks import construction_trial, section3_residuals
from constructions.common import Construction
from constructions.conditional import conditional_model, map_tokens, worst_table
from constructions.generate import Generation, greedy_generate, greedy_generate_batch
from constructions.two_token import all_pairs, exact_two_token_table, pair_token, two_token_model
from constructions.unconditional import (
    unconditional_model,
    virtual_token,
    virtual_tokens,
    worst_sequence,
)
from constructions.vocab import ASCII, Vocabulary

__all__ = [
    "ASCII",
    "Ceiling",
    "Certificate",
    "Construction",
    "Generation",
    "Vocabulary",
    "all_pairs",
    "conditional_model",
    "construction_trial",
    "derivation",
    "exact_two_token_table",
    "greedy_generate",
    "greedy_generate_batch",
    "hard_token_ceiling",
    "map_tokens",
    "pair_token",
    "scalar_certificate",
    "section3_residuals",
    "two_token_certificate",
    "two_token_model",
    "unconditional_model",
    "virtual_token",
    "virtual_tokens",
    "worst_sequence",
    "worst_table",
]
