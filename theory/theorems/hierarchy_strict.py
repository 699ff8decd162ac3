"""The hierarchy is strict: witnesses that the wider method reaches more (docs/theory.md §1.6).

The check measures how far the REFUTED claim misses, so a witness shows up as a residual far above
the tolerance and ``verify`` expects "fails":

* soft prompt ⊄ hard prompt: a one-position soft prompt ``e`` versus all ``V`` one-token hard
  prompts; residual = ``min_tok max_i |logits(e) - logits(tok)|`` (exhaustive, so a positive value
  proves that no hard prompt of that length reproduces ``e`` on this input);
* prefix ⊄ soft prompt: a soft prompt's state at layer ``l+1`` is what block ``l`` computes from its
  state at layer ``l`` (``F_l``); a prefix sets every layer freely. Residual =
  ``max_l |s^{l+1} - F_l(s^l)|`` (``F_l`` read from the prefixed run). A positive value proves that
  the prefix's states are no soft prompt's states. It is a statement about the states (the
  parameters), not an exhaustive search over soft prompts for equal logits. With ONE layer there is
  no deeper state to differ and the residual is 0, so "holds" is expected. (Without an embedding
  norm a one-layer prefix is the soft prompt ``s^0 - p_p`` at each virtual position ``p``; with
  one, as in ``bloom``, a state outside the norm's image would be a further witness that this
  check does not measure.)
* KV-prefix ⊄ prefix: see ``kv_converse``.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import HardPrompt, Prefix, SoftPrompt, n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture, logits_of, max_abs, single_virtual_trial

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
            "Counting parameters shows the parameterisations differ; the numeric check "
            "exhibits concrete witnesses: a soft prompt whose logits are at a positive "
            "distance from those of every one-token hard prompt (exhaustive over the "
            "vocabulary), and a prefix whose layer-(l+1) state is not F_l(layer-l state). "
            "For L = 1 the second witness cannot exist and the check expects 'holds'.",
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
        p = n_virtual(ctx)
        _, cache = forward(
            trial.params, arch, trial.tokens, ctx, attention_mask=trial.key_mask, validate=False
        )
        gaps = [
            max_abs(ctx.states[l + 1] - cache[act_name("resid_post", l)][:p])
            for l in range(arch.n_layers - 1)
        ]
        return jnp.max(jnp.stack(gaps))
    raise TypeError(
        f"hierarchy_strict: expected a soft prompt or a prefix, got {type(ctx).__name__}"
    )


def check(arch, trial):
    return residual(arch, trial)


def expect(arch, method):
    if method.name == "prefix" and arch.n_layers == 1:
        return (
            "holds",
            "one layer: a prefix is the soft prompt of "
            "its layer-0 state (nothing deeper to differ)",
        )
    if method.name == "prefix":
        return "fails", "witness: prefix states that no soft prompt produces (strict inclusion)"
    return "fails", "witness: a soft prompt at positive distance from every one-token hard prompt"


def soft_prompt_is_a_row_of_W_E(arch, trial):
    """The "soft" prompt is the hard prompt of tokens 3, 1, 2: no witness left (a control)."""
    rows = trial.params["embed"]["W_E"][jnp.array([3, 1, 2])]
    return trial._replace(context=SoftPrompt(rows))


def prefix_of_a_soft_prompt(arch, trial):
    """A prefix whose states a soft prompt does produce: no witness left (a control)."""
    soft = SoftPrompt(trial.context.states[0])
    _, cache = forward(trial.params, arch, trial.tokens, soft, validate=False)
    n_p = n_virtual(trial.context)
    states = jnp.stack([cache[act_name("resid_pre", l)][:n_p] for l in range(arch.n_layers)])
    return trial._replace(context=Prefix(states))


MEASURES = """\
How far the REFUTED claim "the wider method is no wider" misses. Soft prompt: min over the V
one-token hard prompts of the max logit gap to a one-position soft prompt (exhaustive, so a
positive value proves no hard prompt of that length reproduces it on this input). Prefix:
max_l |s^{l+1} - F_l(s^l)|, the gap between the prefix's state at layer l+1 and what block l
computes from its state at layer l (0 with one layer)."""

THEOREM = Theorem(
    id="hierarchy_strict",
    statement="Witness (refuted claim: 'the wider method is no wider'): a soft prompt no hard "
    "prompt reproduces; a prefix no soft prompt's states equal.",
    section="§1.6",
    assumptions=(
        "one virtual position for the hard-prompt search (exhaustive over the vocabulary)",
        "prefix witness is about the states, not an optimisation over soft prompts for equal "
        "logits",
        "one-layer models: prefix = soft prompt (expected to hold)",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=core_architecture,
    methods=("soft_prompt", "prefix"),
    expect=expect,
    controls=(
        Control(
            "soft prompt made of W_E rows",
            "a soft prompt that is a hard prompt's embedding: the witness disappears",
            "paper",
            "soft_prompt",
            outcome="holds",
            transform=soft_prompt_is_a_row_of_W_E,
        ),
        Control(
            "prefix made of a soft prompt's states",
            "a prefix whose deeper states its layer-0 state produces: the witness disappears",
            "gpt",
            "prefix",
            outcome="holds",
            transform=prefix_of_a_soft_prompt,
        ),
    ),
    requires=(),
    coq=CoqProof(
        names=(
            "HierarchyStrict.soft_not_hard",
            "HierarchyStrict.prefix_not_soft",
            "KVConverse.kv_converse_witness",
        ),
        general_in=(
            "soft vs hard: every vocabulary size V, embedding, position codes and content; prefix "
            "vs soft: one two-layer causal residual model; KV vs prefix: every rank-deficient "
            "[W_K; W_V]"
        ),
    ),
)
