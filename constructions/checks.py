"""Run the §3 theorem checks on a construction (its virtual token is an ordinary context).

trial = construction_trial(c, virtual_token(c, seq), [c.bos] + seq[:-1])
theory.compare.compare(c.arch, trial)          # per-layer residuals of the §3 identities
section3_residuals(c, context, tokens)         # {theorem id: residual} for registered theorems
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from constructions.common import Construction
from theory.context import n_virtual, validate_context
from theory.errors import ToolkitError
from theory.registry import THEOREMS
from theory.trials import Trial

CORE = ("relative_attention", "convex_output")


def construction_trial(construction: Construction, context, tokens) -> Trial:
    """A :class:`theory.trials.Trial` of the construction
    (base = adapted params: a context method)."""
    c = construction
    validate_context(context, c.arch)
    tokens = jnp.asarray(np.asarray(tokens, np.int32))
    if tokens.ndim != 1 or tokens.shape[0] < 1:
        raise ToolkitError(
            f"tokens: expected a 1-D list of at least one token id, got shape {tokens.shape}"
        )
    n = n_virtual(context) + tokens.shape[0]
    if n > c.arch.n_ctx:
        raise ToolkitError(f"tokens: {n} positions exceed this construction's n_ctx={c.arch.n_ctx}")
    return Trial(c.params, c.params, tokens, context, jnp.ones(n, bool))


def section3_residuals(construction: Construction, context, tokens, theorem_ids=CORE) -> dict:
    """Residual of each registered theorem's numeric
    check on the construction (<= TOL_F64: holds)."""
    trial = construction_trial(construction, context, tokens)
    out = {}
    for tid in theorem_ids:
        if tid not in THEOREMS:
            raise ToolkitError(f"unknown theorem {tid!r}; expected one of: {', '.join(THEOREMS)}")
        check = jax.jit(THEOREMS[tid].check, static_argnums=0)
        out[tid] = float(check(construction.arch, trial))
    return out
