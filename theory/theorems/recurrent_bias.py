"""The form of the term a prefix adds to a recurrent layer, and where its output bias lies
(docs/theory.md §5.1.2).

The propagated entering state is ``Phi_t * sigma`` with ``Phi_t = exp(sum_{r <= t} log a_r)``:
each coordinate of ``sigma`` keeps its direction and is scaled by a factor in (0, 1] that never
grows with ``t``.

* Time-invariant recurrences (``lti_ssm``, ``retention``): ``a_r = abar`` for every input, so
  ``Phi_t = abar^(t+1)``: a fixed direction per coordinate, decaying geometrically with the
  distance from the prefix, whatever the content. If the readout's linear part does not depend
  on the input either (``lti_ssm``: ``y_t = C s_t + D u_t``), the output bias
  ``b_t = W_O C (abar^(t+1) * sigma)`` is the same for every content: a prefix adds a fixed
  signal, in the span of the ``D d_state`` sequences ``t -> abar_cs^(t+1)``. (For retention
  ``b_t = gamma_h^(t+1) q_t sigma_h`` lies in the row space of ``sigma_h``: see §5.1.2.)
* Selective recurrences (``selective_ssm``, ``gated_recurrence``): ``log a_r`` is a function of
  the content's input ``x_r`` (``-Delta(x_r) lambda``, ``8 r(x_r) log sigmoid(lambda + 2)``), so
  the content gates how fast the prefix is forgotten.
"""

import jax.numpy as jnp
import sympy as sp

from theory.compare import layer_pairs
from theory.context import n_virtual
from theory.hooks import act_name
from theory.recurrence import entering_state, recurrence_of
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem
from theory.theorems.common import max_abs

BROKEN = (("block", "broken_recurrence"),)  # a transition that reads the prefix (control)

STATE, MIXER_IN, OUT = act_name("state"), act_name("mixer_in"), act_name("attn_out")
N_CONTENTS = (
    2  # contents per trial compared for the input-free bias (the trial's and a shifted one)
)

t = sp.Symbol("t", integer=True, nonnegative=True)
abar = sp.Symbol("abar", positive=True)
Phi_t = sp.Symbol("Phi_t", positive=True)  # a product of any number of positive decays
rho = sp.Symbol("rho", positive=True)
a_next, Phi_next = sp.symbols("a_{t+1} Phi_{t+1}")


def derivation() -> Derivation:
    return Derivation(
        title="The propagated state: a product of decays in (0, 1), positive and non-increasing; "
        "geometric when time-invariant, content-gated when selective",
        definitions=(
            (
                a_next,
                1 / (1 + rho),
                "a decay in (0, 1) written as 1/(1 + rho), rho > 0 (selective SSM: rho = "
                "exp(lambda Delta(x_{t+1})) - 1; gated: exp(-8 r log sigmoid(.)) - 1)",
            ),
            (Phi_next, a_next * Phi_t, "Phi_{t+1} = a_{t+1} Phi_t: one more decay"),
        ),
        steps=(
            Step(
                sp.log(Phi_next),
                sp.log(Phi_t) - sp.log(1 + rho),
                "log Phi adds the log-decays: Phi_t = exp(sum_{r<=t} log a_r), each log a_r set "
                "by the content's own input x_r (the content gates the prefix)",
            ),
            Step(Phi_next, 0, "the factor stays positive: sigma keeps its direction", ">"),
            Step(Phi_t - Phi_next, 0, "and shrinks at every content position", ">"),
            Step(
                sp.exp(t * sp.log(abar)),
                abar**t,
                "time-invariant: every log a_r = log abar, so Phi = abar^t: a geometric decay "
                "with the distance, the same for every content",
            ),
        ),
        notes=(
            "Phi_t stands for a product of any length (a positive symbol), so the steps hold at "
            "every position t. With an input-free readout (y = C s + D u) the output bias "
            "C (Phi_t sigma) involves no input at all: a prefix adds the same signal to every "
            "content.",
        ),
    )


def closed_form_propagator(recurrence, mixer, arch, x, live):
    """Phi_t from the closed form: abar^(k_t) from the parameters (time-invariant kinds; k_t the
    number of visible content positions up to t) or exp(sum_{r<=t} log a(x_r)) from the
    content's own inputs (selective kinds)."""
    if recurrence.time_invariant:
        abar = recurrence.fixed_decay(mixer, arch)
        steps = jnp.cumsum(live).astype(abar.dtype)
        return abar[None] ** steps.reshape((-1,) + (1,) * abar.ndim)
    decay, _ = recurrence.transition(mixer, arch, x)
    live = live.reshape((-1,) + (1,) * (decay.ndim - 1))
    return jnp.exp(jnp.cumsum(jnp.where(live, jnp.log(decay), 0.0), axis=0))


def _layers(arch, trial):
    """Per layer: (propagated term from the closed form, measured state change, output bias)."""
    recurrence = recurrence_of(arch)
    n_p = n_virtual(trial.context)
    live = trial.key_mask[n_p:]
    out = []
    for l, layer in enumerate(layer_pairs(arch, trial)[0]):
        adapted, base = layer.adapted, layer.base
        mixer = trial.params["blocks"][l]["mixer"]
        phi = closed_form_propagator(recurrence, mixer, arch, base[MIXER_IN], live)
        sigma = entering_state(adapted, n_p)
        out.append(
            (
                phi,
                phi * sigma[None],
                adapted[STATE][n_p:] - base[STATE],
                adapted[OUT][n_p:] - base[OUT],
            )
        )
    return out


def residuals(arch, trial):
    """[n_layers, 3]: closed form vs measured state change; (0, 1] and non-increasing; for an
    input-free readout, the output bias on another content minus this one."""
    recurrence = recurrence_of(arch)
    layers = _layers(arch, trial)
    if recurrence.input_free_readout:
        other = trial._replace(tokens=(trial.tokens + 5) % arch.d_vocab)
        others = [bias for *_, bias in _layers(arch, other)]
    out = []
    for l, (phi, carried, change, bias) in enumerate(layers):
        bounds = jnp.maximum(jnp.max(phi - 1.0), jnp.max(-phi))
        growth = jnp.max(jnp.diff(phi, axis=0), initial=0.0)
        free = max_abs(others[l] - bias) if recurrence.input_free_readout else 0.0
        out.append(
            jnp.stack([max_abs(change - carried), jnp.maximum(bounds, growth), jnp.asarray(free)])
        )
    return jnp.stack(out)


def check(arch, trial):
    return residuals(arch, trial).max()


def time_invariant_claimed(arch, trial):
    """A deliberately wrong closed form: the selective model's decays replaced by their mean
    over the content, as if the recurrence were time-invariant (a control)."""
    recurrence = recurrence_of(arch)
    n_p = n_virtual(trial.context)
    gaps = []
    for l, layer in enumerate(layer_pairs(arch, trial)[0]):
        mixer = trial.params["blocks"][l]["mixer"]
        decay, _ = recurrence.transition(mixer, arch, layer.base[MIXER_IN])
        abar = jnp.mean(decay, axis=0)
        phi = abar[None] ** jnp.arange(1, decay.shape[0] + 1).reshape((-1,) + (1,) * abar.ndim)
        sigma = entering_state(layer.adapted, n_p)
        change = layer.adapted[STATE][n_p:] - layer.base[STATE]
        gaps.append(max_abs(change - phi * sigma[None]))
    return jnp.max(jnp.stack(gaps))


MEASURES = """\
Every layer given its inputs: the measured state change s^pt_t - s_t against Phi_t sigma with
Phi_t from the closed form (time-invariant kinds: abar^(k_t), abar read from the parameters, k_t
the number of visible content positions up to t; selective kinds: exp of the summed log-decays
of the content's own inputs); the closed form's range (0, 1] and monotonicity in t; and, where
the readout's linear part is input-free (lti_ssm), the output bias on a second content (tokens
shifted by 5) minus the bias on the trial's content (0: the bias does not depend on the content)."""

THEOREM = Theorem(
    id="recurrent_bias",
    statement="The propagated term is Phi_t sigma, Phi_t = exp(sum log a_r) in (0, 1], "
    "non-increasing: abar^(t+1) (fixed, geometric) when time-invariant, gated by the content when "
    "selective; with an input-free readout the output bias is the same for every content.",
    section="§5.1.2",
    assumptions=(
        "as recurrent_state; decays in (0, 1) (positive, below 1)",
        "time-invariant: the decay is read from the parameters, not from the run",
        "input-free readout (lti_ssm): y_t = C s_t + D u_t, C fixed",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("recurrence",),
    methods=("prefix", "initial_state", "finetune_rank1_recurrence"),
    controls=(
        Control(
            "selective model claimed time-invariant",
            "the content-gated decays replaced by one fixed decay per coordinate: the closed form "
            "misses the state change",
            "mamba",
            "prefix",
            check=time_invariant_claimed,
        ),
        Control(
            "transition reads the prefix",
            "the decay also reads the sequence's first position: the closed form from the "
            "content's inputs misses",
            "s4d",
            "prefix",
            changes=BROKEN,
        ),
    ),
    coq=CoqProof(
        names=(
            "Recurrent.propagator_exp_sum",
            "Recurrent.propagator_time_invariant",
            "Recurrent.propagator_bounds",
            "Recurrent.propagator_non_increasing",
            "Recurrent.input_free_bias",
            "Recurrent.retention_bias_span",
        ),
        general_in=(
            "every position t and sequence length, state coordinate, decays in (0, 1] (any "
            "function of the input for the selective form); retention: every head dimension and "
            "number of virtual inputs n_p (the bias lies in the span of their values)"
        ),
        gap=(
            "The decays are taken as any numbers in (0, 1] (or exponentials of any log-decays): "
            "the parameterisations of theory/zoo/recurrent.py (sigmoid, exp(-softplus)) are not "
            "modelled; the input-free bias is proved for a readout that reads the state only."
        ),
    ),
)
