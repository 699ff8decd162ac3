"""Trained weight matrices whose gradient is one product over every position of the batch.

The training loss runs the model per sequence under ``jax.vmap``. For ``y = x @ W``, JAX's
reverse mode computes ``dW`` as ``dot_general(dy, x)`` contracted over the positions, then
transposes the result. XLA CPU multiplies with the contracted axis of the left operand
innermost, so it copies ``dy [positions, d_out]`` into transposed order first. For the
matrices that write to the residual stream (``W_O``, ``W_out``), ``dy`` is the
residual-stream gradient, which XLA does not store: it recomputes the running sum of every
later sublayer's contribution inside each transposing copy (up to 15 inputs in the 4-layer
model), and those copies took about a sixth of a pretraining step (experiments/README.md,
"Speed").

:func:`batched_product` computes ``dW`` as ``x^T dy`` instead, with the activation ``x``
(stored for the backward pass anyway) as the transposed operand, and over the whole batch
at once: its batching rule (``jax.custom_batching.custom_vmap``) hands the batched ``x``
to one product rather than letting ``vmap`` form a gradient per sequence and sum them.

Reverse mode only: the product has a custom VJP, so forward-mode differentiation
(``jax.jvp``, ``jax.jacfwd``) of a model holding a :class:`TrainedMatrix` fails. Only the
training loss (:func:`experiments.train.loss_fn`, for ``pretrain`` and ``finetune``) wraps
matrices in it (:func:`with_batched_weight_gradients`); evaluation, checkpoints and the model's
parameters themselves stay plain arrays.
"""

from __future__ import annotations

import jax
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Float


@jax.custom_vjp
def _product(x: Float[Array, "... d_in"], W: Float[Array, "d_in d_out"]):
    return x @ W


def _product_fwd(x, W):
    return x @ W, (x, W)


def _product_bwd(res, dy):
    x, W = res
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ W.T, x2.T @ dy2


_product.defvjp(_product_fwd, _product_bwd)


@custom_vmap
def batched_product(
    x: Float[Array, "... d_in"], W: Float[Array, "d_in d_out"]
) -> Float[Array, "... d_out"]:
    """``x @ W`` with ``dW = x^T dy`` summed over all leading axes of ``x`` (and, under
    ``vmap``, over the mapped axis too)."""
    return _product(x, W)


@batched_product.def_vmap
def _batched_product_vmap(axis_size, in_batched, x, W):
    """``vmap`` hands over ``x`` with the mapped axis first: one product over the batch."""
    x_batched, W_batched = in_batched
    if W_batched:  # a matrix per example: an ordinary vmap, nothing to share
        return jax.vmap(_product, in_axes=(0 if x_batched else None, 0))(x, W), True
    return _product(x, W), x_batched


@jax.tree_util.register_pytree_node_class
class TrainedMatrix:
    """A trained matrix that :func:`theory.model.mlp` and the attention output multiply with
        ``x @ W`` (through ``__rmatmul__``), routed through :func:`batched_product`. Its forward
    value is ``x @ W`` itself."""

    def __init__(self, W):
        self.W = W

    shape = property(lambda self: self.W.shape)
    dtype = property(lambda self: self.W.dtype)

    def __rmatmul__(self, x):
        return batched_product(x, self.W)

    def reshape(self, *shape):
        return TrainedMatrix(self.W.reshape(*shape))

    def tree_flatten(self):
        return (self.W,), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)


def with_batched_weight_gradients(params):
    """``params`` with the matrices the model multiplies with ``@`` (``W_in``, ``W_gate``,
    ``W_out``, ``W_O``) wrapped in :class:`TrainedMatrix`: the same forward pass, and each of
    their gradients is one product over the whole batch."""
    blocks = []
    for bp in params["blocks"]:
        new = dict(bp, attn=dict(bp["attn"], W_O=TrainedMatrix(bp["attn"]["W_O"])))
        if "mlp" in bp:
            new["mlp"] = {
                k: TrainedMatrix(v) if k in ("W_in", "W_gate", "W_out") else v
                for k, v in bp["mlp"].items()
            }
        blocks.append(new)
    return dict(params, blocks=blocks)
