"""THEORY.md §1, the hierarchy is strict: witnesses that the wider method reaches more.

The check measures how far the REFUTED claim misses, so a witness shows up as a residual far above
the tolerance and ``verify`` expects "fails":

* soft prompt ⊄ hard prompt: a one-position soft prompt ``e`` versus all ``V`` one-token hard prompts;
  residual = ``min_tok max_i |logits(e) - logits(tok)|`` (exhaustive, so a positive value proves that no
  hard prompt of that length reproduces ``e`` on this input);
* prefix ⊄ soft prompt: a soft prompt's state at layer ``l+1`` is what block ``l`` computes from its
  state at layer ``l`` (``F_l``); a prefix sets every layer freely. Residual =
  ``max_l |s^{l+1} - F_l(s^l)|`` (``F_l`` read from the prefixed run). A positive value proves that the
  prefix's states are no soft prompt's states. It is a statement about the states (the parameters),
  not an exhaustive search over soft prompts for equal logits. With ONE layer there is nothing to
  differ: a one-layer prefix is the soft prompt ``s^0 - p_0`` (no embedding norm), so "holds" is expected.
* KV-prefix ⊄ prefix: see ``kv_converse``.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import HardPrompt, Prefix, SoftPrompt, n_virtual
from theory.registry import Theorem, register_theorem
from theory.symbolic import Derivation, Step
from theory.theorems.common import (
    core_architecture,
    declared_or,
    logits_of,
    max_abs,
    single_virtual_trial,
)

V = sp.Symbol("V", positive=True, integer=True)
d = sp.Symbol("d", positive=True, integer=True)
L = sp.Symbol("L", positive=True, integer=True)
lam = sp.Symbol("lambda", positive=True, integer=True)
n_p = sp.Symbol("n_p", positive=True, integer=True)
dim_hard, dim_soft, dim_prefix = sp.symbols("dim_hard dim_soft dim_prefix")


def derivation() -> Derivation:
    return Derivation(
        title="Strict inclusions by counting what is free: finitely many hard prompts, d n_p soft "
        "parameters, L d n_p prefix parameters",
        definitions=(
            (L, 1 + lam, "number of layers of a model with lambda >= 1 deeper layers"),
            (dim_soft, n_p * d, "free real parameters of a soft prompt"),
            (dim_prefix, L * n_p * d, "free real parameters of a prefix (every layer)"),
        ),
        steps=(
            Step(
                dim_soft,
                0,
                "a soft prompt has a continuum of values; hard prompts are V^n_p points, so "
                "(for a continuous, non-constant model) some soft prompt is no hard prompt",
                ">",
            ),
            Step(
                dim_prefix - dim_soft,
                lam * n_p * d,
                "a prefix has (L-1) d n_p more free states than a "
                "soft prompt, whose deeper states are functions F_l of its layer-0 state",
            ),
            Step(
                dim_prefix,
                dim_soft,
                "with at least one deeper layer the prefix has strictly more free parameters",
                ">",
            ),
        ),
        notes=(
            "Counting parameters shows the parameterisations differ; the numeric check exhibits concrete "
            "witnesses: a soft prompt whose logits are at a positive distance from those of every one-token "
            "hard prompt (exhaustive over the vocabulary), and a prefix whose layer-(l+1) state is not "
            "F_l(layer-l state). For L = 1 the second witness cannot exist and the check expects 'holds'.",
        ),
    )


def residual(arch, trial):
    ctx = trial.context
    if isinstance(ctx, SoftPrompt):
        one = single_virtual_trial(trial)
        soft = logits_of(trial.params, arch, one, one.context)
        hard = jax.vmap(lambda tok: logits_of(trial.params, arch, one, HardPrompt(tok[None])))(
            jnp.arange(arch.d_vocab)
        )
        return jnp.min(jnp.max(jnp.abs(hard - soft[None]), axis=(1, 2)))
    if isinstance(ctx, Prefix):
        if arch.n_layers == 1:
            return jnp.zeros((), ctx.states.dtype)
        from theory.model import forward

        p = n_virtual(ctx)
        _, cache = forward(
            trial.params, arch, trial.tokens, ctx, attention_mask=trial.key_mask, validate=False
        )
        gaps = [
            max_abs(ctx.states[l + 1] - cache[f"blocks.{l}.hook_resid_post"][:p])
            for l in range(arch.n_layers - 1)
        ]
        return jnp.max(jnp.stack(gaps))
    raise TypeError(
        f"hierarchy_strict: expected a soft prompt or a prefix, got {type(ctx).__name__}"
    )


def check(arch, trial):
    return residual(arch, trial)


def expect(arch, method):
    def default(arch, method):
        if method.name == "prefix" and arch.n_layers == 1:
            return (
                "holds",
                "one layer: a prefix is the soft prompt of its layer-0 state (nothing deeper to differ)",
            )
        if method.name == "prefix":
            return "fails", "witness: prefix states that no soft prompt produces (strict inclusion)"
        return (
            "fails",
            "witness: a soft prompt at positive distance from every one-token hard prompt",
        )

    return declared_or("hierarchy_strict", arch, method, default)


THEOREM = register_theorem(
    Theorem(
        id="hierarchy_strict",
        statement="Witness (refuted claim: 'the wider method is no wider'): a soft prompt no hard prompt "
        "reproduces; a prefix no soft prompt's states equal.",
        section="§1",
        assumptions=(
            "one virtual position for the hard-prompt search (exhaustive over the vocabulary)",
            "prefix witness is about the states, not an optimisation over soft prompts for equal logits",
            "one-layer models: prefix = soft prompt (expected to hold)",
        ),
        derivation=derivation,
        check=check,
        default_run=core_architecture,
        methods=("soft_prompt", "prefix"),
        expect=expect,
    )
)
