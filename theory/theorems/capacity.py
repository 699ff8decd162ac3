"""Counting what one token of context can select (docs/theory.md §2.1).

* One hard token: the model is a function of the token, so it has at most ``V`` greedy completions
  (unconditional) and at most ``V`` maps ``[V] -> [V]`` (conditional).
* One virtual token (a soft prompt) reaches ``V^N`` completions (Theorem 1) and ``V^V`` maps
  (Theorem 2) in the constructions of :mod:`constructions`.
* A hard prompt of ``n`` tokens selects among at most ``V^n`` behaviours, so reaching all ``V^V``
  maps needs ``n >= V``.

The constructions that attain V^N and V^V live in the ``constructions`` package, above this core:
``constructions.capacity`` enumerates them and passes its counts to :func:`instance`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from theory.context import HardPrompt, SoftPrompt
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture

N_SOFT = 64  # soft prompts per trial
SOFT_SCALE = 3.0  # their scale (combinations of the trial's soft-prompt vectors)
N_BASIS = 3  # directions the soft prompts combine (a norm after the embedding removes scale)
COEFFICIENTS = np.random.default_rng(20240).normal(size=(N_SOFT, N_BASIS))  # seeded, fixed
BASIS_SEED = 20241  # seeded directions when a trial has fewer than N_BASIS positions

a, b, c = sp.symbols("a b c", integer=True, nonnegative=True)
V, N, n = sp.symbols("V N n", integer=True, positive=True)
hard1, virt_u, virt_c, hard_n = sp.symbols("B_hard B_virtual^uncond B_virtual^cond B_hard(n)")


def derivation() -> Derivation:
    return Derivation(
        title=(
            "Counting: one hard token <= V behaviours; one virtual token "
            "V^N completions and V^V maps; a hard prompt needs n >= V tokens"
        ),
        definitions=(
            (V, 2 + a, "vocabulary size V >= 2"),
            (N, 2 + b, "completion length N >= 2"),
            (n, V - 1 - c, "a hard prompt length n <= V - 1 (c >= 0)"),
            (
                hard1,
                V,
                "behaviours of one hard token: at most the V tokens themselves (pigeonhole)",
            ),
            (
                virt_u,
                V**N,
                "completions one virtual token reaches (Theorem 1 construction: all sequences)",
            ),
            (
                virt_c,
                V**V,
                "maps [V] -> [V] one virtual token reaches (Theorem 2 construction: all maps)",
            ),
            (hard_n, V**n, "behaviours of a hard prompt of n tokens: at most V^n"),
        ),
        steps=(
            Step(
                sp.log(virt_u) - sp.log(hard1),
                (N - 1) * sp.log(V),
                "log-ratio of the unconditional counts",
            ),
            Step(
                sp.log(virt_u),
                sp.log(hard1),
                "V^N > V: one virtual token reaches more completions than any "
                "single hard token can",
                ">",
            ),
            Step(
                sp.log(virt_c) - sp.log(hard_n),
                (c + 1) * sp.log(V),
                "log-ratio of the conditional counts",
            ),
            Step(
                sp.log(virt_c),
                sp.log(hard_n),
                "V^V > V^n for every n <= V - 1: a hard prompt shorter than V "
                "tokens cannot reach every map, so it needs n >= V",
                ">",
            ),
        ),
        notes=(
            "Counts are compared through logarithms (log is increasing), which lets sympy "
            "prove the strict inequalities for every V >= 2, N >= 2 and n <= V - 1. The "
            "constructions (constructions package) attain V^N and V^V; their certificates "
            "are checked there, and constructions.capacity enumerates them for small V, N.",
        ),
    )


def distinct_rows(rows):
    """Number of distinct rows of an int array ``[m, k]`` (jittable)."""
    equal = jnp.all(rows[:, None, :] == rows[None, :, :], axis=-1)
    return jnp.sum(~jnp.any(jnp.tril(equal, k=-1), axis=1))


def conditional_maps(arch, params, contexts):
    """Greedy next token for every user token ``x`` after each one-position context: ``[m, V]``."""

    def one(ctx):
        return jax.vmap(
            lambda x: jnp.argmax(forward(params, arch, x[None], ctx, validate=False)[0][0])
        )(jnp.arange(arch.d_vocab))

    return jax.vmap(one)(contexts)


def counts(arch, trial, soft_from_rows: bool = False):
    """(distinct maps over the V hard tokens, distinct maps over N_SOFT soft prompts).

    ``soft_from_rows=True`` makes the "soft" prompts rows of W_E (the negative control)."""
    if soft_from_rows:
        soft = SoftPrompt(
            trial.params["embed"]["W_E"][jnp.arange(N_SOFT) % arch.d_vocab][:, None, :]
        )
    else:
        basis = trial.context.embeddings[:N_BASIS]
        if basis.shape[0] < N_BASIS:  # fewer virtual positions: seeded directions complete it
            key = jax.random.PRNGKey(BASIS_SEED)
            extra = jax.random.normal(key, (N_BASIS - basis.shape[0], arch.d_model))
            basis = jnp.concatenate([basis, extra.astype(basis.dtype)])
        coeff = jnp.asarray(COEFFICIENTS[:, : basis.shape[0]], basis.dtype)
        soft = SoftPrompt((SOFT_SCALE * coeff @ basis)[:, None, :])
    hard = HardPrompt(jnp.arange(arch.d_vocab)[:, None])
    return (
        distinct_rows(conditional_maps(arch, trial.params, hard)),
        distinct_rows(conditional_maps(arch, trial.params, soft)),
    )


def check(arch, trial):
    _, soft = counts(arch, trial)
    return jnp.maximum(soft - arch.d_vocab, 0).astype(trial.params["embed"]["W_E"].dtype)


def expect(arch, method):
    return (
        "fails",
        "witness: one-position soft prompts select more than V maps, more than any hard token can",
    )


def soft_prompts_from_rows_check(arch, trial):
    """The check with "soft" prompts that are rows of
    W_E: hard tokens, so no witness (a control)."""
    _, soft = counts(arch, trial, soft_from_rows=True)
    return jnp.maximum(soft - arch.d_vocab, 0).astype(trial.params["embed"]["W_E"].dtype)


def instance(arch, trial, construction_counts: dict | None = None):
    """The counts on the random model (witness: more than V maps) next to their bounds; with
    ``construction_counts`` (from ``constructions.capacity.counts``) the constructions' counts
    next to V^N and V^V."""
    hard, soft = counts(arch, trial)
    rows = [
        (
            f"maps of one hard token on {arch.name!r} (<= V = {arch.d_vocab})",
            float(arch.d_vocab),
            float(hard),
        ),
        (
            f"distinct maps of {N_SOFT} soft prompts on {arch.name!r} (witness: > V)",
            float(arch.d_vocab),
            float(soft),
        ),
    ]
    found = construction_counts
    if found is not None:
        V_, N_ = found["V"], found["N"]
        rows += [
            (
                f"completions of one virtual token, construction V={V_}, N={N_} (V^N)",
                float(V_**N_),
                float(found["unconditional_distinct"]),
            ),
            (
                f"maps of one virtual token, construction V={V_} (V^V)",
                float(V_**V_),
                float(found["conditional_distinct"]),
            ),
            (
                "completions of one hard token on that construction (<= V)",
                float(V_),
                float(found["hard_token_completions"]),
            ),
        ]
    return rows


MEASURES = """\
Any architecture, random weights: the number of distinct conditional maps x -> argmax logits
(context, x) over the V one-token hard prompts (at most V, by pigeonhole) and over 64
one-position soft prompts (seeded combinations of the trial's soft-prompt vectors). The residual
measures the REFUTED claim "a soft prompt selects no more maps than a hard token":
max(0, distinct_soft - V), so "fails" (>= 1) is the witness."""

THEOREM = Theorem(
    id="capacity",
    statement="Witness (refuted claim: 'one virtual token selects no more than one hard token'): "
    "hard token <= V behaviours, virtual token V^N / V^V; hard prompts need n >= V.",
    section="§2.1",
    assumptions=(
        "greedy decoding; behaviours = next-token maps x -> argmax (conditional) in the numeric "
        "witness",
        "random weights: the soft prompts are seeded combinations of the trial's soft-prompt "
        "vectors",
        "V^N and V^V are attained by the constructions (constructions.capacity enumerates them)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    instance=instance,
    default_run=core_architecture,
    methods=("soft_prompt",),
    expect=expect,
    controls=(
        Control(
            "soft prompts that are token rows",
            "'soft' prompts that are rows of W_E are hard tokens: at most V maps, no witness",
            "gpt",
            "soft_prompt",
            outcome="holds",
            check=soft_prompts_from_rows_check,
        ),
    ),
    requires=(),
    coq=CoqProof(
        names=(
            "Capacity.capacity",
            "Capacity.hard_token_at_most_V",
            "Capacity.hard_prompt_at_most_V_pow",
            "Capacity.hard_prompt_needs_V_tokens",
            "Capacity.virtual_token_any_sequence",
            "Capacity.capacity_maps",
            "Capacity.hard_token_not_V_plus_1",
        ),
        general_in=(
            "hard tokens: any model and behaviour type, every V and prompt length n; virtual "
            "token: every V >= 2, N >= 2 and T above the threshold (V^N completions, V^V maps)"
        ),
        gap=(
            "The virtual-token counts are proved for the constructions' decoding computation (see "
            "construction_thresholds), not for their weight matrices."
        ),
    ),
)
