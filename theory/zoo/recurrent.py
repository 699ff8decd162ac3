"""Recurrent and state-space blocks (docs/theory.md §5.1) and their atlas architectures.

Four diagonal linear recurrences ``s_t = a_t * s_{t-1} + b_t`` (:mod:`theory.recurrence`), each
with ``D = n_heads * d_head`` channels and the input map ``u_t = x_t W_in``:

* ``lti_ssm`` (S4D-style linear time-invariant SSM): state ``[D, d_state]``,
  ``a = sigmoid(theta + kappa)`` fixed (``kappa_s`` spread over [-2, 2] so the state coordinates
  of a channel decay at distinct rates), ``b_t = B * u_t``, ``y_t = sum_s C s_t + D u_t``;
* ``selective_ssm`` (Mamba-style, without the short convolution): ``Delta_t = softplus(x_t W_dt
  + b_dt)``, ``a_t = exp(-Delta_t lambda)``, ``b_t = Delta_t u_t (x_t W_B)``, ``y_t = ((x_t W_C)
  . s_t + D u_t) * silu(x_t W_gate)``;
* ``gated_recurrence`` (Hawk/Griffin RG-LRU): state ``[D]``, ``a_t = sigmoid(lambda + 2)^(8
  r_t)`` with the recurrence gate ``r_t = sigmoid(x_t W_r + b_r)``, ``b_t = sqrt(1 - a_t^2) i_t
  u_t`` with the input gate ``i_t``, ``y_t = s_t * gelu(x_t W_gate)``;
* ``retention`` (RetNet-style decayed linear attention, no group norm): per head a
  ``[d_head, d_head]`` state, ``a = gamma_h = 1 - 2^(-2-h)`` fixed, ``b_t = k_t v_t^T``, ``y_t =
  q_t s_t / sqrt(d_head)``.

``broken_recurrence`` is a NEGATIVE CONTROL, not a model: an LTI SSM whose decay also reads the
first position of the sequence, i.e. a transition that reads the prefix. No architecture uses it;
the theorems' controls put it into ``s4d`` (``Control.changes``).

Every readout ends with the output map ``W_O [D, d_model]`` (``[H, d_head, d_model]`` for
retention). The architectures run only when named (``default_run=False``: ``make atlas``,
``verify --architecture``), so the default ``verify`` is unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from theory.architecture import Architecture, register_architecture
from theory.blocks import register_block
from theory.recurrence import Recurrence, recurrent_block

GATE_POWER = 8.0  # Griffin's constant c in a_t = a^(c r_t)


def _channels(arch) -> int:
    return arch.n_heads * arch.d_head


def _spread(arch):
    """Per-state-coordinate offsets kappa_s in [-2, 2] (distinct decay rates within a channel)."""
    return jnp.linspace(-2.0, 2.0, arch.d_state) if arch.d_state > 1 else jnp.zeros(1)


# ------------------------------------------------------------------ LTI SSM (S4D-style)


def _lti_shapes(arch):
    D, S, d = _channels(arch), arch.d_state, arch.d_model
    return {
        "W_in": (d, D),
        "theta": (D, S),
        "W_B": (D, S),
        "W_C": (D, S),
        "D_skip": (D,),
        "W_O": (D, d),
    }


def _lti_decay(mp, arch):
    return jax.nn.sigmoid(mp["theta"] + _spread(arch).astype(mp["theta"].dtype))


def _lti_transition(mp, arch, x):
    u = x @ mp["W_in"]  # [N, D]
    decay = jnp.broadcast_to(_lti_decay(mp, arch), (x.shape[0], *mp["theta"].shape))
    return decay, mp["W_B"][None] * u[:, :, None]


def _lti_readout(mp, arch, x, state):
    y = jnp.einsum("cs,ncs->nc", mp["W_C"], state) + mp["D_skip"] * (x @ mp["W_in"])
    return y @ mp["W_O"]


def _krylov_distance(mp, arch, state, n_p):
    """Relative distance from ``state [D, S]`` to span{decay^k * B : k < n_p} per channel: the
    states n_p virtual inputs leave are sum_p decay^(n_p-1-p) * B * u_p (one scalar u_p per
    channel), so they lie in that span."""
    if n_p == 0:
        return jnp.ones((), state.dtype)
    decay = _lti_decay(mp, arch)
    powers = decay[..., None] ** jnp.arange(n_p).astype(decay.dtype)  # [D, S, n_p]
    krylov = powers * mp["W_B"][..., None]

    def residual(K, s):
        coeff = jnp.linalg.lstsq(K, s)[0]
        return s - K @ coeff

    gap = jax.vmap(residual)(krylov, state)
    return jnp.linalg.norm(gap) / jnp.linalg.norm(state)


LTI_SSM = Recurrence(
    "lti_ssm",
    state_shape=lambda arch: (_channels(arch), arch.d_state),
    param_shapes=_lti_shapes,
    transition=_lti_transition,
    readout=_lti_readout,
    fixed_decay=_lti_decay,
    input_free_readout=True,
    reachable_distance=_krylov_distance,
    reach_bound=lambda arch: arch.d_state,
)


# ------------------------------------------------------------------ selective SSM (Mamba-style)


def _selective_shapes(arch):
    D, S, d = _channels(arch), arch.d_state, arch.d_model
    return {
        "W_in": (d, D),
        "W_dt": (d, D),
        "b_dt": (D,),
        "A_log": (D, S),
        "W_B": (d, S),
        "W_C": (d, S),
        "D_skip": (D,),
        "W_gate": (d, D),
        "W_O": (D, d),
    }


def _selective_transition(mp, arch, x):
    u = x @ mp["W_in"]
    step = jax.nn.softplus(x @ mp["W_dt"] + mp["b_dt"])  # Delta_t [N, D]
    rates = jnp.exp(mp["A_log"]) * jnp.arange(1, arch.d_state + 1).astype(x.dtype)  # [D, S]
    decay = jnp.exp(-step[:, :, None] * rates[None])
    drive = (step * u)[:, :, None] * (x @ mp["W_B"])[:, None, :]
    return decay, drive


def _selective_readout(mp, arch, x, state):
    y = jnp.einsum("ns,ncs->nc", x @ mp["W_C"], state) + mp["D_skip"] * (x @ mp["W_in"])
    return (y * jax.nn.silu(x @ mp["W_gate"])) @ mp["W_O"]


SELECTIVE_SSM = Recurrence(
    "selective_ssm",
    state_shape=lambda arch: (_channels(arch), arch.d_state),
    param_shapes=_selective_shapes,
    transition=_selective_transition,
    readout=_selective_readout,
)


# ------------------------------------------------------------------ gated linear recurrence (Hawk)


def _gated_shapes(arch):
    D, d = _channels(arch), arch.d_model
    return {
        "W_in": (d, D),
        "W_r": (d, D),
        "b_r": (D,),
        "W_i": (d, D),
        "b_i": (D,),
        "lam": (D,),
        "W_gate": (d, D),
        "W_O": (D, d),
    }


def _gated_transition(mp, arch, x):
    gate = jax.nn.sigmoid(x @ mp["W_r"] + mp["b_r"])  # recurrence gate r_t
    decay = jnp.exp(GATE_POWER * gate * jax.nn.log_sigmoid(mp["lam"] + 2.0))
    inputs = jax.nn.sigmoid(x @ mp["W_i"] + mp["b_i"]) * (x @ mp["W_in"])
    return decay, jnp.sqrt(1.0 - decay**2) * inputs


def _gated_readout(mp, arch, x, state):
    return (state * jax.nn.gelu(x @ mp["W_gate"])) @ mp["W_O"]


GATED = Recurrence(
    "gated_recurrence",
    state_shape=lambda arch: (_channels(arch),),
    param_shapes=_gated_shapes,
    transition=_gated_transition,
    readout=_gated_readout,
)


# ------------------------------------------------------------------ retention (RetNet-style)


def retention_decays(arch):
    """Per-head decays gamma_h = 1 - 2^(-2-h) (RetNet's 1 - 2^(-5-h), shifted so that the
    decay shows within the test sequences)."""
    return 1.0 - 2.0 ** (-2.0 - jnp.arange(arch.n_heads))


def _retention_shapes(arch):
    H, k, d = arch.n_heads, arch.d_head, arch.d_model
    return {"W_Q": (H, d, k), "W_K": (H, d, k), "W_in": (d, H * k), "W_O": (H, k, d)}


def _retention_decay(mp, arch):
    gamma = retention_decays(arch).astype(mp["W_Q"].dtype)
    return jnp.broadcast_to(gamma[:, None, None], (arch.n_heads, arch.d_head, arch.d_head))


def _retention_transition(mp, arch, x):
    k = jnp.einsum("nd,hdk->nhk", x, mp["W_K"])
    v = (x @ mp["W_in"]).reshape(x.shape[0], arch.n_heads, arch.d_head)
    decay = jnp.broadcast_to(_retention_decay(mp, arch), (x.shape[0], *k.shape[1:], k.shape[-1]))
    return decay, k[..., :, None] * v[..., None, :]


def _retention_readout(mp, arch, x, state):
    q = jnp.einsum("nd,hdk->nhk", x, mp["W_Q"]) / jnp.sqrt(arch.d_head).astype(x.dtype)
    return jnp.einsum("nhk,nhke,hem->nm", q, state, mp["W_O"])


def _rank_distance(mp, arch, state, n_p):
    """Relative distance from ``state [H, k, k]`` to the states of rank <= n_p per head (the
    states n_p virtual inputs leave are sums of n_p outer products k_p v_p^T): the singular
    values beyond the n_p-th (Eckart-Young)."""
    singular = jnp.linalg.svd(state, compute_uv=False)  # [H, k], descending
    return jnp.linalg.norm(singular[:, n_p:]) / jnp.linalg.norm(state)


RETENTION = Recurrence(
    "retention",
    state_shape=lambda arch: (arch.n_heads, arch.d_head, arch.d_head),
    param_shapes=_retention_shapes,
    transition=_retention_transition,
    readout=_retention_readout,
    fixed_decay=_retention_decay,
    reachable_distance=_rank_distance,
    reach_bound=lambda arch: arch.d_head,
)


# ------------------------------------------------------------------ negative control


def _leaky_shapes(arch):
    return {**_lti_shapes(arch), "W_r": (arch.d_model, _channels(arch))}


def _leaky_transition(mp, arch, x):
    """NEGATIVE CONTROL: the decay at every position also reads x_0, the sequence's first
    position (a virtual position when there is a prefix)."""
    shift = (x[:1] @ mp["W_r"])[:, :, None]  # [1, D, 1]
    decay = jax.nn.sigmoid(mp["theta"] + _spread(arch).astype(x.dtype) + shift)
    decay = jnp.broadcast_to(decay, (x.shape[0], *mp["theta"].shape))
    return decay, mp["W_B"][None] * (x @ mp["W_in"])[:, :, None]


BROKEN = Recurrence(
    "broken_recurrence",
    state_shape=lambda arch: (_channels(arch), arch.d_state),
    param_shapes=_leaky_shapes,
    transition=_leaky_transition,
    readout=_lti_readout,
)


def _needs_state(arch):
    return None if arch.d_state >= 1 else "d_state >= 1"


register_block(
    recurrent_block(LTI_SSM, "linear time-invariant diagonal SSM (S4D-style)", _needs_state)
)
register_block(
    recurrent_block(SELECTIVE_SSM, "selective diagonal SSM (Mamba-style, no conv)", _needs_state)
)
register_block(recurrent_block(GATED, "gated linear recurrence (Hawk/Griffin RG-LRU)"))
register_block(recurrent_block(RETENTION, "decayed linear attention (RetNet-style retention)"))
register_block(
    recurrent_block(
        BROKEN, "NEGATIVE CONTROL: an LTI SSM whose decay reads the first position", _needs_state
    )
)

# ------------------------------------------------------------------ architectures

RECURRENT_METHODS = ("prefix", "initial_state", "finetune_rank1_recurrence")
SIZES = dict(
    n_heads=4,
    d_model=16,
    d_head=4,
    d_vocab=11,
    n_ctx=32,
    positional="none",
    norm="pre",
    default_methods=RECURRENT_METHODS,
    default_run=False,
)


def recurrent(name, block, description, **fields):
    return register_architecture(
        Architecture(name=name, block=block, description=description, **{**SIZES, **fields})
    )


recurrent(
    "s4d",
    "lti_ssm",
    "S4D-style LTI diagonal SSM (d_state 4), pre-LN, GELU MLP",
    n_layers=2,
    d_state=4,
    d_mlp=32,
)
recurrent(
    "mamba",
    "selective_ssm",
    "Mamba-style selective SSM (d_state 4), RMSNorm, no MLP",
    n_layers=2,
    d_state=4,
    d_mlp=0,
    norm_kind="rmsnorm",
)
recurrent(
    "hawk",
    "gated_recurrence",
    "Hawk-style gated linear recurrence (RG-LRU), RMSNorm, GeGLU MLP",
    n_layers=2,
    d_mlp=32,
    norm_kind="rmsnorm",
    mlp_act="gated_gelu",
)
recurrent(
    "retnet",
    "retention",
    "RetNet-style retention: decayed linear attention, fixed per-head decays, GELU MLP",
    n_layers=2,
    d_mlp=32,
)
