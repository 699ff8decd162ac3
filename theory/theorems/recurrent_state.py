"""A prefix reaches a recurrent layer's content only through the state it leaves
(docs/theory.md §5.1.1).

For a diagonal linear recurrence ``s_t = a_t * s_{t-1} + b_t`` whose decay and drive depend on
the position's own input, a context that leaves the state ``sigma`` before the first content
position gives, at every content position ``t``,

    s^pt_t = s_t + Phi_t * sigma,        Phi_t = a_0 a_1 ... a_t   (elementwise)
    y^pt_t = y_t + L_t (Phi_t * sigma)                             (L_t: the readout's linear part)

where ``s_t``, ``y_t`` are the layer's state and output without the context (given the layer's
inputs). The content's own contribution is untouched; the context adds one term, the entering
state propagated by the content's decays.
"""

import jax.numpy as jnp
import sympy as sp

from theory.compare import layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.recurrence import entering_state, propagator, recurrence_of
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

BROKEN = (("block", "broken_recurrence"),)  # a transition that reads the prefix (control)

STATE, DECAY, MIXER_IN, OUT = (act_name(n) for n in ("state", "decay", "mixer_in", "attn_out"))

a1, b1, sigma, L, c = sp.symbols("a_{t+1} b_{t+1} sigma L c")
s_t, Phi_t = sp.symbols("s_t Phi_t")
s_next, Phi_next = sp.symbols("s_{t+1} Phi_{t+1}")
spt_t, spt_next = sp.symbols("s^pt_t s^pt_{t+1}")
y, ypt = sp.symbols("y_t y^pt_t")


def derivation() -> Derivation:
    return Derivation(
        title="Recurrent layer: the content's state plus the entering state propagated by the "
        "content's decays (induction over the position t)",
        definitions=(
            (Phi_next, a1 * Phi_t, "Phi_{t+1} = a_{t+1} Phi_t: the product of the decays so far"),
            (s_next, a1 * s_t + b1, "the recurrence without the context"),
            (spt_t, s_t + Phi_t * sigma, "induction hypothesis at position t"),
            (
                spt_next,
                a1 * spt_t + b1,
                "the recurrence with the context (same a, b: they "
                "depend on the position's own input only)",
            ),
            (y, L * s_t + c, "readout without the context: affine in the state"),
            (ypt, L * spt_t + c, "readout with the context, same input"),
        ),
        steps=(
            Step(
                sp.Integer(0) + 1 * sigma,
                sigma,
                "base case t = -1: s_{-1} = 0 without the context, sigma with it, Phi_{-1} = 1",
            ),
            Step(
                spt_next,
                s_next + Phi_next * sigma,
                "induction step: the hypothesis holds at t + 1, so at every position",
            ),
            Step(
                ypt - y,
                L * Phi_t * sigma,
                "the output moves by the readout's linear part applied to Phi_t sigma only",
            ),
        ),
        notes=(
            "Every operation is elementwise over the state (the recurrence is diagonal), so one "
            "coordinate proves every coordinate; L and c stand for the readout's linear and "
            "constant parts at position t (they may depend on the input x_t, not on the state). "
            "The induction covers every position t and sequence length n, and every context that "
            "leaves the state sigma: n_p virtual inputs (hard or soft prompt, hidden-state prefix) "
            "or a tuned initial state.",
        ),
    )


def residuals(arch, trial):
    """[n_layers, 2]: state gap and output gap, every layer given its inputs."""
    recurrence = recurrence_of(arch)
    n_p = n_virtual(trial.context)
    out = []
    for l, layer in enumerate(layer_pairs(arch, trial)[0]):
        adapted, base = layer.adapted, layer.base
        carried = propagator(base[DECAY]) * entering_state(adapted, n_p)[None]
        mixer = trial.params["blocks"][l]["mixer"]
        x = base[MIXER_IN]
        bias = recurrence.readout(mixer, arch, x, carried) - recurrence.readout(
            mixer, arch, x, jnp.zeros_like(carried)
        )
        out.append(
            jnp.stack(
                [
                    max_abs(adapted[STATE][n_p:] - (base[STATE] + carried)),
                    max_abs(adapted[OUT][n_p:] - (base[OUT] + bias)),
                ]
            )
        )
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


MEASURES = """\
Every layer, given its inputs (theory.compare.layer_pairs: the base block without context on the
adapted run's content inputs): with sigma the adapted run's state after the last virtual position
(or its initial state) and Phi_t the running product of the base run's decays over the content,
max |s^pt_t - (s_t + Phi_t sigma)| over the state, and max |y^pt_t - (y_t + L_t(Phi_t sigma))| over
the layer's mixer output, L_t(z) = readout(x_t, z) - readout(x_t, 0)."""

THEOREM = Theorem(
    id="recurrent_state",
    statement="Recurrent layer: s^pt_t = s_t + Phi_t sigma and y^pt_t = y_t + L_t(Phi_t sigma), "
    "Phi_t = a_0...a_t: the content's contribution is unchanged, the context adds the "
    "propagated entering state.",
    section="§5.1.1",
    assumptions=(
        "diagonal linear recurrence whose decay a_t and drive b_t depend on position t's own input",
        "the readout is affine in the state for a fixed input",
        "virtual positions come first; deeper layers: given the layer's inputs",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("recurrence",),
    methods=(
        "hard_prompt",
        "soft_prompt",
        "prefix",
        "initial_state",
        "finetune_rank1_recurrence",
    ),
    controls=(
        Control(
            "transition reads the prefix",
            "a decay that also reads the sequence's first position: the content's transitions "
            "change with the prefix",
            "s4d",
            "prefix",
            changes=BROKEN,
        ),
        Control(
            "rank-1 update of the input map",
            "a weight update changes the content's own contribution",
            "s4d",
            "finetune_rank1_recurrence",
        ),
    ),
    coq=CoqProof(
        names=(
            "Recurrent.state_decomposition",
            "Recurrent.output_decomposition",
            "Recurrent.prefix_enters_as_state",
        ),
        general_in=(
            "every sequence length, state dimension (each coordinate), decays and drives that "
            "depend on the position, initial state, and affine readout; any number of virtual "
            "inputs"
        ),
    ),
)
