"""Virtual inputs are a tuned initial state (docs/theory.md §5.1.3).

In a recurrent model (every token mixer a recurrence of :mod:`theory.recurrence`), a context of
``n_p`` virtual inputs (a hard or soft prompt, or a hidden-state prefix) gives the same logits on
every content as the :class:`theory.context.InitialState` made of the states it leaves behind in
every layer: the recurrent analogue of "a prefix is the KV-prefix of the keys and values it
produces" (docs/theory.md §1.5). So hard prompt ⊆ soft prompt ⊆ prefix ⊆ initial state; the last
inclusion is strict when fewer virtual inputs cannot reach every state (``initial_state_strict``).
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import InitialState, n_virtual
from theory.hooks import act_name
from theory.model import forward
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

BROKEN = (("block", "broken_recurrence"),)  # a transition that reads the prefix (control)

sigma = sp.Symbol("sigma")
a1, b1, L, c = sp.symbols("a_{t+1} b_{t+1} L c")
pt_start, init_start = sp.symbols("s^pt_{n_p-1} s^sigma_{-1}")
pt_t, init_t, pt_next, init_next = sp.symbols("s^pt_{n_p+t} s^sigma_t s^pt_{n_p+t+1} s^sigma_{t+1}")
y_pt, y_init = sp.symbols("y^pt_{n_p+t} y^sigma_t")


def derivation() -> Derivation:
    return Derivation(
        title="A prefix of virtual inputs is the initial state it leaves (induction over the "
        "content position, in every layer)",
        definitions=(
            (pt_start, sigma, "the prefixed run's state after its last virtual input: sigma"),
            (init_start, sigma, "the other run starts from the initial state sigma"),
            (init_t, pt_t, "induction hypothesis: the two runs agree at content position t"),
            (pt_next, a1 * pt_t + b1, "prefixed run: a, b read x_{t+1} only"),
            (init_next, a1 * init_t + b1, "initial-state run: the same input x_{t+1}"),
            (y_pt, L * pt_t + c, "readout (affine in the state) of the prefixed run"),
            (y_init, L * init_t + c, "readout of the initial-state run, same input"),
        ),
        steps=(
            Step(pt_start, init_start, "base case: both runs enter the content with sigma"),
            Step(pt_next, init_next, "induction step: they agree at t + 1, so at every t"),
            Step(y_pt, y_init, "so the layer's outputs agree at every content position"),
        ),
        notes=(
            "The decays and drives of a content position are functions of its own input x_t, the "
            "same in both runs (by induction over the layers: a layer's content inputs are the "
            "previous layer's outputs), and a layer reads its virtual positions only through the "
            "state they leave. This is the mechanism of the KV-prefix inclusion of §1.5 (a layer "
            "reads a virtual position only through its key and value). A transition that reads "
            "any other position (a convolution over the last w inputs, as in Mamba's short "
            "convolution, or the first position) breaks the base case: the prefix then acts "
            "beyond the state it leaves.",
        ),
    )


def initial_state_of(arch, cache, n_p):
    """The InitialState of the states a run leaves after its n_p virtual positions."""
    return InitialState(
        jnp.stack([cache[act_name("state", l)][n_p - 1] for l in range(arch.n_layers)])
    )


def replay_residual(arch, trial, build=initial_state_of):
    n_p = n_virtual(trial.context)
    logits, cache = forward(
        trial.params, arch, trial.tokens, trial.context, attention_mask=trial.key_mask,
        validate=False,
    )  # fmt: skip
    state = build(arch, cache, n_p)
    replayed, _ = forward(
        trial.params, arch, trial.tokens, state, position_offset=n_p,
        attention_mask=trial.key_mask[n_p:], validate=False,
    )  # fmt: skip
    return max_abs(logits - replayed)


def check(arch, trial):
    return replay_residual(arch, trial)


def slightly_wrong_check(arch, trial):
    """A deliberately wrong construction: the initial state off by 1e-3 (a control)."""

    def off(arch, cache, n_p):
        return jax.tree_util.tree_map(lambda x: x + 1e-3, initial_state_of(arch, cache, n_p))

    return replay_residual(arch, trial, off)


MEASURES = """\
The prefixed run's states after its last virtual position, every layer, become an InitialState;
the run from that initial state (no virtual positions, the content at the same positions) is
compared with the prefixed run: max |logits gap| over every content position."""

THEOREM = Theorem(
    id="initial_state",
    statement="Recurrent models: n_p virtual inputs (hard/soft prompt, prefix) give the same "
    "logits as the initial state they leave in every layer: prompt ⊆ soft ⊆ prefix ⊆ initial "
    "state.",
    section="§5.1.3",
    assumptions=(
        "every token mixer is a recurrence whose decay and drive read the position's own input",
        "content at the same positions in both runs",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("recurrence",),
    methods=("hard_prompt", "soft_prompt", "prefix"),
    controls=(
        Control(
            "wrong construction",
            "the initial state built slightly wrong (every entry off by 1e-3)",
            "hawk",
            "prefix",
            check=slightly_wrong_check,
        ),
        Control(
            "transition reads the prefix",
            "the decay also reads the sequence's first position: the prefix acts beyond the state "
            "it leaves",
            "s4d",
            "soft_prompt",
            changes=BROKEN,
        ),
    ),
    coq=CoqProof(
        names=(
            "Recurrent.prefix_is_initial_state",
            "Recurrent.deep_prefix_is_initial_state",
            "Recurrent.prefix_enters_as_state",
        ),
        general_in=(
            "every number of virtual inputs n_p and content length, state dimension, and decays "
            "and drives that depend on the position's input; deep models: every layer reads the "
            "previous layer's outputs position by position"
        ),
    ),
)
