"""Recurrent token mixers: diagonal linear recurrences (docs/theory.md §5.1).

A :class:`Recurrence` is the token mixer of a block (``BlockKind.mixer``) of the form

    s_t = a_t * s_{t-1} + b_t        elementwise over the state, t = 0..N-1
    y_t = readout(x_t, s_t)          affine in the state for a fixed input

where the decay ``a_t`` and the drive ``b_t`` are functions of the position's own input ``x_t``
(the block input after its norm) and nothing else. Linear time-invariant and selective
state-space models, gated linear recurrences and decayed linear attention all have this form;
they differ in the shape of the state ``S`` and in how ``a_t``, ``b_t`` and the readout are
computed (theory/zoo/recurrent.py). The recurrence starts from ``s_{-1} = 0``, or from the
layer's part of an :class:`theory.context.InitialState`. A padded position (a masked key)
passes the state on unchanged: ``a_t = 1``, ``b_t = 0``.

Virtual positions come first, so a prefix enters the content only through the state it leaves
behind: that is what the theorems of docs/theory.md §5.1 state and check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from theory.architecture import Architecture
from theory.blocks import BlockKind
from theory.hooks import act_name
from theory.registry import BLOCK_KINDS


@dataclass(frozen=True)
class Recurrence:
    """A diagonal linear recurrence; called as a block's mixer (module doc).

    * ``state_shape(arch) -> tuple``: the shape ``S`` of one layer's state;
    * ``param_shapes(arch) -> {leaf: shape}``: its parameters, ``params["blocks"][l]["mixer"]``
      (``W_in`` is the map from the block input to the recurrence's channels);
    * ``transition(mp, arch, x [N, d_model]) -> (decay, drive)``, both ``[N, *S]``, position by
      position;
    * ``readout(mp, arch, x [N, d_model], state [N, *S]) -> [N, d_model]``, affine in the state;
    * ``fixed_decay(mp, arch) -> [*S]`` (time-invariant kinds only): the decay, the same for
      every input;
    * ``input_free_readout``: the readout's linear part in the state does not depend on the input;
    * ``reachable_distance(mp, arch, state [*S], n_p) -> scalar`` (time-invariant kinds): a lower
      bound of the relative distance from ``state`` to every state that ``n_p`` virtual inputs
      can leave (0 when the state is among them); ``reach_bound(arch)``: the number of virtual
      inputs below which some states are unreachable.
    """

    name: str
    state_shape: Callable
    param_shapes: Callable
    transition: Callable
    readout: Callable
    fixed_decay: Callable | None = None
    input_free_readout: bool = False
    reachable_distance: Callable | None = None
    reach_bound: Callable | None = None

    @property
    def time_invariant(self) -> bool:
        return self.fixed_decay is not None

    def __call__(
        self,
        bp: dict,
        arch: Architecture,
        x: Float[Array, "N d_model"],
        positions: Int[Array, " N"],
        mask: Bool[Array, "N N"],
        virtual: Bool[Array, " N"],
        layer_context=None,
    ) -> tuple[Float[Array, "N d_model"], dict]:
        mp = bp["mixer"]
        decay, drive = self.transition(mp, arch, x)
        live = jnp.diagonal(mask).reshape((-1,) + (1,) * (decay.ndim - 1))
        decay = jnp.where(live, decay, 1.0)
        drive = jnp.where(live, drive, 0.0)
        if layer_context is None:
            init = jnp.zeros(self.state_shape(arch), x.dtype)
        else:
            init = layer_context.state.astype(x.dtype)
        state = run_recurrence(init, decay, drive)
        record = {
            act_name("mixer_in"): x,
            act_name("state_init"): init,
            act_name("decay"): decay,
            act_name("drive"): drive,
            act_name("state"): state,
        }
        return self.readout(mp, arch, x, state), record


def run_recurrence(init: Array, decay: Array, drive: Array) -> Array:
    """``s_t = decay_t * s_{t-1} + drive_t`` from ``s_{-1} = init``, one position after another;
    returns every ``s_t`` (``[N, *S]``)."""

    def step(s, a_b):
        a, b = a_b
        s = a * s + b
        return s, s

    return jax.lax.scan(step, init, (decay, drive))[1]


def entering_state(record: dict, n_p: int) -> Array:
    """The state a layer carries into the first content position: after the last virtual
    position, or the initial state when there is none (``record``: one block's activations)."""
    if n_p:
        return record[act_name("state")][n_p - 1]
    return record[act_name("state_init")]


def propagator(decay: Float[Array, "n ..."]) -> Float[Array, "n ..."]:
    """``Phi_t = a_0 a_1 ... a_t`` (elementwise): how much of the entering state is left at t."""
    return jnp.cumprod(decay, axis=0)


def recurrence_of(arch: Architecture) -> Recurrence | None:
    """The architecture's recurrence (None for blocks whose mixer is not a recurrence)."""
    mixer = BLOCK_KINDS[arch.block].mixer
    return mixer if isinstance(mixer, Recurrence) else None


def recurrent_block(recurrence: Recurrence, description: str, requires=None) -> BlockKind:
    """A block kind with the standard wiring (norms, residual, MLP) and ``recurrence`` as its
    token mixer; its features say it is a recurrence (and whether time-invariant)."""

    def needs(arch):
        extra = requires(arch) if requires is not None else None
        if not arch.causal or arch.window is not None or extra:
            return "causal=True, window=None" + (f", {extra}" if extra else "")
        return None

    features = ("recurrence",) + (("time_invariant",) if recurrence.time_invariant else ())
    return BlockKind(
        recurrence.name,
        description,
        param_shapes=lambda arch: {"mixer": recurrence.param_shapes(arch)},
        requires=needs,
        mixer=recurrence,
        features=features,
    )
