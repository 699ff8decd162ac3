"""The hierarchy: prompting ⊆ soft prompting ⊆ prefix-tuning ⊆ KV-prefix (docs/theory.md §1.5).

Each inclusion is constructive, and the numeric check builds the wider method's parameters from the
narrower one's and compares logits (float64, residual <= TOL_F64):

* a hard prompt ``tok`` is the soft prompt ``E[tok]``;
* a soft prompt is the prefix made of the hidden states it produces at every layer (the states
  ``resid_pre`` activations of its virtual positions) -- in a bidirectional encoder these states
  depend on the content, so this holds PER INPUT: the prefix that reproduces a soft prompt on one
  input is in general a different prefix on another input;
* a hidden-state prefix ``s`` is the KV-prefix of the keys and values it produces
  (``W_K LN_1(s) + b_K`` rotated by its position, ``W_V LN_1(s) + b_V``; see ``pre_ln``).

Strictness is the separate witness theorem
``hierarchy_strict`` (and ``kv_converse`` for the last step).
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import HardPrompt, KVPrefix, Prefix, SoftPrompt, n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import core_architecture, max_abs

E_tok, p0, e, x0 = sp.symbols("E_{tok} p_0 e x^0")
f1, s1, s0 = sp.Symbol("F_1"), sp.Symbol("s^1"), sp.Symbol("s^0")
W_K, W_V, b_K, b_V, h = sp.symbols("W_K W_V b_K b_V h")
k, v = sp.symbols("k v")
Fn = sp.Function("F")


def derivation() -> Derivation:
    return Derivation(
        title="Hierarchy: each narrower method is an instance of the next wider one (constructive)",
        definitions=(
            (e, E_tok, "the soft prompt chosen for hard prompt tok: its embedding row"),
            (x0, e + p0, "layer-0 state of a virtual position: embedding + position code"),
            (s0, x0, "the prefix chosen for a soft prompt: its own layer-0 state ..."),
            (s1, Fn(s0), "... and the state block 0 computes from it at layer 1 (F = block 0)"),
            (
                k,
                W_K * h + b_K,
                "the KV-prefix chosen for a prefix: the key its attention input h makes",
            ),
            (v, W_V * h + b_V, "... and the value"),
        ),
        steps=(
            Step(
                x0,
                E_tok + p0,
                "hard ⊆ soft: the soft prompt E[tok] gives the hard prompt's layer-0 state, "
                "and every later computation is the same function of it",
            ),
            Step(
                s1,
                Fn(E_tok + p0),
                "soft ⊆ prefix: setting every layer's state to what the "
                "soft prompt produces reproduces the run (per input in "
                "a bidirectional model, where F also reads the content)",
            ),
            Step(
                k - b_K,
                W_K * h,
                "prefix ⊆ KV: the KV-prefix (W_K h + b_K, W_V h + b_V) feeds attention the "
                "same keys ...",
            ),
            Step(
                v - b_V,
                W_V * h,
                "... and values; attention reads nothing else from a virtual position",
            ),
        ),
        notes=(
            "Scalars stand for vectors and maps (every step is an identity of the same "
            "shape). The numeric check replays the narrower run through the wider method and "
            "compares the logits of every content position: exact up to float64 rounding.",
        ),
    )


def _kv_of(cache, arch, n_p):
    keys = jnp.stack([cache[act_name("k", l)][:n_p] for l in range(arch.n_layers)])
    values = jnp.stack([cache[act_name("v", l)][:n_p] for l in range(arch.n_layers)])
    return KVPrefix(jnp.swapaxes(keys, 1, 2), jnp.swapaxes(values, 1, 2))  # [L, G, n_p, d_head]


def wider(arch, params, context, cache):
    """The next wider method's context reproducing ``context`` (given the narrower run's cache)."""
    n_p = n_virtual(context)
    if isinstance(context, HardPrompt):
        return SoftPrompt(params["embed"]["W_E"][context.tokens])
    if isinstance(context, SoftPrompt):
        return Prefix(
            jnp.stack([cache[act_name("resid_pre", l)][:n_p] for l in range(arch.n_layers)])
        )
    if isinstance(context, Prefix):
        return _kv_of(cache, arch, n_p)
    raise TypeError(
        f"hierarchy: expected a hard prompt, soft prompt or prefix, got {type(context).__name__}"
    )


def replay_residual(arch, trial, build_wider) -> jnp.ndarray:
    """max |logits(narrower) - logits(build_wider(...))| over the content positions."""
    n_p = n_virtual(trial.context)

    def run(ctx):
        return forward(
            trial.params,
            arch,
            trial.tokens,
            ctx,
            position_offset=n_p,
            attention_mask=trial.key_mask,
            validate=False,
        )

    logits, cache = run(trial.context)
    wide_logits, _ = run(build_wider(arch, trial.params, trial.context, cache))
    return max_abs(logits - wide_logits)


def check(arch, trial):
    return replay_residual(arch, trial, wider)


def slightly_wrong_check(arch, trial):
    """A deliberately wrong construction: the wider context off by 1e-3 (a control)."""

    def off_by_a_little(arch, params, context, cache):
        return jax.tree_util.tree_map(lambda x: x + 1e-3, wider(arch, params, context, cache))

    return replay_residual(arch, trial, off_by_a_little)


MEASURES = """\
The narrower run's context is turned into the next wider method's context (hard prompt -> soft
prompt E[tok]; soft prompt -> the prefix of the states it produces at every layer; prefix -> the
KV-prefix of the keys and values it produces) and both runs' logits are compared over every
content position (max abs gap; float64)."""

THEOREM = Theorem(
    id="hierarchy",
    statement="prompting ⊆ soft prompting ⊆ prefix-tuning ⊆ KV-prefix: the wider method built "
    "from the narrower one gives identical logits.",
    section="§1.5",
    assumptions=(
        "same weights, content at the same positions",
        "soft ⊆ prefix: the prefix is built from the soft prompt's states on THIS input (in a "
        "bidirectional encoder those states depend on the content, so it is per input only)",
        "prefix ⊆ KV: keys after the positional rotation of the virtual position",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    default_run=core_architecture,
    methods=("hard_prompt", "soft_prompt", "prefix"),
    controls=tuple(
        Control(
            f"wrong construction ({method})",
            "the wider context built slightly wrong (every entry off by 1e-3)",
            "paper",
            method,
            check=slightly_wrong_check,
            seed=1,
        )
        for method in ("hard_prompt", "prefix")
    ),
    coq=CoqProof(
        names=(
            "Layer.hard_as_soft",
            "Layer.soft_as_prefix",
            "Layer.prefix_as_kv",
            "Layer.soft_as_prefix_deep",
            "Layer.soft_prefix_universal_causal",
        ),
        general_in=(
            "one layer with any H and any query/key/value/norm/output maps (so any d, biases, "
            "RoPE/ALiBi, grouped keys/values, pre-LN), every n, n_p; soft prompt as prefix in a "
            "model of any depth whose blocks are arbitrary functions of the sequence"
        ),
        gap=(
            "The one-layer inclusions hold by the definitions of the context methods (the wider "
            "method's input is built from the narrower one's); the deep statement models a block "
            "as any pointwise function of the states, not as the toolkit's block."
        ),
    ),
)
