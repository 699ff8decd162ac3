"""A tuned initial state can be strictly wider than a prefix of virtual inputs
(docs/theory.md §5.1.4).

Witness theorem: the check measures how far the REFUTED claim "every initial state is the state
some ``n_p`` virtual inputs leave" misses, for ``n_p = n* - 1`` virtual inputs, one fewer than
the recurrence's reach bound ``n*``:

* LTI SSM (``n* = d_state``): ``n_p`` virtual inputs leave ``sum_p abar^(n_p-1-p) * B * u_p`` (one
  scalar ``u_p`` per channel), so each channel's state lies in the Krylov space
  ``span{abar^k * B : k < n_p}`` of dimension ``<= n_p < d_state``; a generic state does not.
  With ``n_p = d_state`` inputs, distinct decays and ``B != 0`` (and an input map onto the
  channels) the Krylov matrix is an invertible Vandermonde matrix times ``diag(B)``: every state is
  reachable, and the two methods coincide.
* Retention (``n* = d_head``): ``n_p`` virtual inputs leave ``sum_p gamma^(n_p-1-p) k_p v_p^T``,
  of rank ``<= n_p`` per head; a generic state has rank ``d_head``.

The residual is a lower bound of the relative distance from the random initial state to every
reachable state (Krylov least squares; Eckart-Young), so a positive value proves unreachability.
"""

import jax
import jax.numpy as jnp
import sympy as sp

from theory.context import InitialState, Prefix
from theory.hooks import act_name
from theory.model import forward
from theory.recurrence import recurrence_of
from theory.symbolic import Derivation, Step
from theory.theorem import Control, CoqProof, Theorem

S, n_p = sp.symbols("S n_p", integer=True, positive=True)
m = sp.Symbol("m", integer=True, nonnegative=True)  # how many more inputs than n_p would reach
dim_reach, dim_state = sp.symbols("dim_reach dim_state")
a1, a2, B1, B2 = sp.symbols("abar_1 abar_2 B_1 B_2")
B2p = sp.Symbol("B_2", real=True)  # B = (B_1, B_2) != 0: B_1 > 0 without loss of generality
B1 = sp.Symbol("B_1", positive=True)
det2 = sp.Symbol("det_K")


def derivation() -> Derivation:
    return Derivation(
        title="Initial state vs virtual inputs: n_p inputs reach an n_p-dimensional subspace of "
        "each channel's d_state-dimensional state",
        definitions=(
            (S, n_p + 1 + m, "a state size d_state = S larger than the number of inputs n_p"),
            (dim_reach, n_p, "the Krylov space span{abar^k B : k < n_p} of one channel"),
            (dim_state, S, "the channel's state space"),
            (
                det2,
                sp.Matrix([[B1, a1 * B1], [B2, a2 * B2]]).det(),
                "d_state = 2, two inputs: det [B, abar B] (Vandermonde times diag B)",
            ),
        ),
        steps=(
            Step(dim_state - dim_reach, 1 + m, "the reachable space misses 1 + m dimensions"),
            Step(dim_state - dim_reach, 0, "a proper subspace: some state is missed", ">"),
            Step(
                det2,
                B1 * B2 * (a2 - a1),
                "with n_p = d_state inputs the Krylov matrix is nonsingular when the decays are "
                "distinct and B has no zero: every state is reached (d_state = 2 written out)",
            ),
            Step(
                -sp.Matrix([[B1, B2p], [B2p, -B1]]).det(),
                0,
                "one input, d_state = 2: the reachable states u B are the multiples of B; the "
                "state (B_2, -B_1) is independent of B (nonzero determinant): no input reaches it",
                ">",
            ),
        ),
        notes=(
            "The count is general in d_state and n_p; the Vandermonde determinant is written out "
            "for d_state = 2 (the general determinant prod_{i<j} (abar_j - abar_i) prod_c B_c is "
            "the classical one; the Coq proof covers the general rank statement). For retention "
            "the same count applies to the rank of a head's d_head x d_head state: n_p outer "
            "products have rank <= n_p.",
        ),
    )


def reach_inputs(arch) -> int:
    """The number of virtual inputs the witness allows: one fewer than the reach bound."""
    return recurrence_of(arch).reach_bound(arch) - 1


def residual(arch, trial, n_inputs=None):
    """max over layers of the relative distance lower bound (module doc)."""
    recurrence = recurrence_of(arch)
    n = reach_inputs(arch) if n_inputs is None else n_inputs
    gaps = [
        recurrence.reachable_distance(bp["mixer"], arch, state, n)
        for bp, state in zip(trial.params["blocks"], trial.context.state, strict=True)
    ]
    return jnp.max(jnp.stack(gaps))


def check(arch, trial):
    return residual(arch, trial)


def enough_inputs_check(arch, trial):
    """The distance to the states d_state virtual inputs reach (LTI): 0 (a control)."""
    return residual(arch, trial, recurrence_of(arch).reach_bound(arch))


def state_of_a_prefix(arch, trial):
    """The initial state left by a real prefix of n* - 1 virtual inputs: no witness (a control)."""
    n = reach_inputs(arch)
    key = jax.random.PRNGKey(7)
    states = jax.random.normal(key, (arch.n_layers, n, arch.d_model), trial.context.state.dtype)
    _, cache = forward(trial.params, arch, trial.tokens, Prefix(states), validate=False)
    left = jnp.stack([cache[act_name("state", l)][n - 1] for l in range(arch.n_layers)])
    return trial._replace(context=InitialState(left))


def expect(arch, method):
    bound = recurrence_of(arch).reach_bound(arch)
    return "fails", (
        f"witness: {bound - 1} virtual inputs reach a proper subset of the states (reach bound "
        f"{bound}): a tuned initial state is strictly wider"
    )


MEASURES = """\
initial_state method, every layer: a lower bound of the relative distance from the random initial
state to the states that n* - 1 virtual inputs can leave (LTI SSM, n* = d_state: the per-channel
least-squares residual against the Krylov space span{abar^k B : k < n* - 1}; retention, n* =
d_head: the singular values of each head's state beyond the (n* - 1)-th). It measures how far the
REFUTED claim "every initial state is some prefix's state" misses: a positive value is the
witness."""

THEOREM = Theorem(
    id="initial_state_strict",
    statement="Witness (refuted claim: 'every initial state is the state of n* - 1 virtual "
    "inputs'): fewer virtual inputs than the reach bound (d_state, d_head) reach a proper subset "
    "of the states, so a tuned initial state is strictly wider.",
    section="§5.1.4",
    assumptions=(
        "time-invariant recurrence: LTI SSM (drive B u, Krylov spaces) or retention (drive k v^T, "
        "rank)",
        "the virtual inputs start from the zero state, as a prefix does",
        "the residual is a lower bound of the distance, so a positive value is a proof",
    ),
    derivation=derivation,
    check=check,
    measures=MEASURES,
    requires=("recurrence", "time_invariant"),
    methods=("initial_state",),
    expect=expect,
    controls=(
        Control(
            "state left by a prefix",
            "an initial state that n* - 1 real virtual inputs leave: the witness disappears",
            "retnet",
            "initial_state",
            outcome="holds",
            transform=state_of_a_prefix,
        ),
        Control(
            "d_state virtual inputs",
            "with as many inputs as state coordinates the Krylov space is everything: every "
            "initial state is reachable (the witness disappears)",
            "s4d",
            "initial_state",
            outcome="holds",
            check=enough_inputs_check,
        ),
    ),
    coq=CoqProof(
        names=(
            "Recurrent.initial_state_strict",
            "Recurrent.lti_reachable_span",
            "Recurrent.outside_span",
            "Recurrent.retention_rank_bound",
        ),
        general_in=(
            "every state size S and number of virtual inputs n_p < S (a state no combination of "
            "n_p vectors reaches); retention: every head dimension and n_p"
        ),
        gap=(
            "The converse (d_state inputs reach every state when the decays of a channel differ, "
            "B has no zero and W_in is onto: an invertible Vandermonde matrix) is checked "
            "numerically (the control 'd_state virtual inputs'), not proved in Coq; for the "
            "selective kinds no witness is claimed (the theorem does not apply to them)."
        ),
    ),
)
