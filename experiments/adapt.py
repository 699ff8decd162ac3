"""What a training run optimises: the trainable pytree of each method and how it
turns the frozen base model into ``(params, context)`` for :func:`theory.model.forward`.

Methods (``Adaptation.kind``):

  pretrain   all weights, from a random init; context: ``n_p`` zero tokens
  finetune   all weights, from the pretrained model; context: ``n_p`` zero tokens
  prefix     ``Prefix`` states ``[n_layers, n_p, d_model]`` (the hidden state of each
             virtual position at each block input); the model is frozen
  kv_prefix  ``KVPrefix`` keys and values ``[n_layers, n_kv_heads, n_p, d_head]``; frozen model
  lora       ``W + A B`` with ``A [d_in, r]``, ``B [r, d_out]`` (``B = 0`` at init) on the chosen
             matrices of every layer; no context change (zero tokens). ``A`` starts random
             (``init="random"``) or along the full weight gradient (``init="gradient"``, see
             :func:`gradient_aligned`)

"Prefix slots are zero tokens in the no-prefix model" (docs/theory.md §4): the base model
always sees ``n_p`` virtual positions holding token 0, so a prefix replaces exactly
those states and the content sits at the same positions.  Prefixes are initialised
to the base model's own states of those zero tokens (the adapted model starts equal
to the base model).

LoRA matrices (attention matrices are fused over heads, as a LoRA of the fused
projection would be): ``W_in [d_model, d_mlp]``, ``W_out [d_mlp, d_model]``,
``W_Q/W_K/W_V [d_model, n_heads*d_head]``, ``W_O [n_heads*d_head, d_model]``.
Aliases: ``mlp`` = W_in, W_out; ``attn`` = W_Q, W_K, W_V, W_O.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from experiments.tasks import MODEL_LEN
from theory.architecture import Architecture
from theory.context import HardPrompt, KVPrefix, Prefix
from theory.errors import ToolkitError, unknown_name
from theory.hooks import act_name
from theory.model import forward

KINDS = ("pretrain", "finetune", "prefix", "kv_prefix", "lora")
LORA_MATRICES = ("W_in", "W_out", "W_Q", "W_K", "W_V", "W_O")
LORA_ALIASES = {"mlp": ("W_in", "W_out"), "attn": ("W_Q", "W_K", "W_V", "W_O")}
LORA_INITS = ("random", "gradient")


@dataclass(frozen=True)
class Adaptation:
    kind: str
    n_p: int  # virtual positions (zero tokens in the base model)
    rank: int = 0  # LoRA rank
    targets: tuple = ()  # LoRA matrices (names or aliases)
    scale: float = 1.0  # LoRA: the update is scale * A B (alpha / r; rsLoRA: alpha / sqrt(r))
    init_scale: float = 1.0  # LoRA: the norm of each column of A at init (see init_trainable)
    init: str = "random"  # LoRA: how A starts, one of LORA_INITS

    @property
    def matrices(self) -> tuple:
        out = []
        for t in self.targets:
            for m in LORA_ALIASES.get(t, (t,)):
                if m not in out:
                    out.append(m)
        return tuple(out)

    def label(self) -> str:
        if self.kind == "lora":
            return f"lora r={self.rank} on {'+'.join(self.targets)}"
        if self.kind in ("prefix", "kv_prefix"):
            return f"{self.kind} n_p={self.n_p}"
        return self.kind


def lora_shape(arch: Architecture, matrix: str) -> tuple[int, int]:
    """(d_in, d_out) of a LoRA target matrix."""
    d, hk = arch.d_model, arch.n_heads * arch.d_head
    return {
        "W_in": (d, arch.d_mlp),
        "W_out": (arch.d_mlp, d),
        "W_Q": (d, hk),
        "W_K": (d, arch.kv_heads * arch.d_head),
        "W_V": (d, arch.kv_heads * arch.d_head),
        "W_O": (hk, d),
    }[matrix]


def validate(adapt: Adaptation, arch: Architecture) -> Adaptation:
    """Raise ToolkitError for impossible settings (unknown kind, prefix too long, rank too
    large)."""
    if adapt.kind not in KINDS:
        raise unknown_name("adaptation method", adapt.kind, KINDS)
    if not isinstance(adapt.n_p, int) or adapt.n_p < 0:
        raise ToolkitError(f"n_p must be an int >= 0, got {adapt.n_p!r}")
    if adapt.kind in ("prefix", "kv_prefix") and adapt.n_p < 1:
        raise ToolkitError(
            f"{adapt.kind}: n_p must be >= 1 (a prefix needs at least one position), "
            f"got {adapt.n_p}"
        )
    if adapt.n_p + MODEL_LEN > arch.n_ctx:
        raise ToolkitError(
            f"prefix longer than the context: n_p={adapt.n_p} virtual + {MODEL_LEN} content "
            "positions "
            f"need {adapt.n_p + MODEL_LEN}, model {arch.name!r} has n_ctx={arch.n_ctx} "
            f"(n_p <= {arch.n_ctx - MODEL_LEN})"
        )
    if adapt.kind == "lora":
        if adapt.init not in LORA_INITS:
            raise unknown_name("LoRA initialisation", adapt.init, LORA_INITS)
        if not adapt.targets:
            raise ToolkitError(
                f"lora needs target matrices; expected some of {LORA_MATRICES} or "
                f"{tuple(LORA_ALIASES)}"
            )
        for t in adapt.targets:
            if t not in LORA_MATRICES and t not in LORA_ALIASES:
                raise unknown_name("LoRA target", t, LORA_MATRICES + tuple(LORA_ALIASES))
        for m in adapt.matrices:
            if m in ("W_in", "W_out") and not arch.d_mlp:
                raise ToolkitError(f"LoRA target {m}: model {arch.name!r} has no MLP")
            d_in, d_out = lora_shape(arch, m)
            if not isinstance(adapt.rank, int) or not 1 <= adapt.rank <= min(d_in, d_out):
                raise ToolkitError(
                    f"LoRA rank must be an int in [1, {min(d_in, d_out)}] for {m} "
                    f"[{d_in} x {d_out}], got {adapt.rank!r}"
                )
    return adapt


def zero_prompt(n_p: int) -> HardPrompt:
    return HardPrompt(jnp.zeros((n_p,), jnp.int32))


def base_context(adapt: Adaptation):
    return zero_prompt(adapt.n_p) if adapt.n_p else None


def init_trainable(adapt: Adaptation, arch: Architecture, base, key):
    """The initial trainable pytree (``base``: pretrained params, or fresh ones for pretrain).

    LoRA: ``B = 0`` and ``A`` with entries of std ``init_scale / sqrt(d_in)`` (columns of norm
    about ``init_scale``); ``init="gradient"`` then needs :func:`gradient_aligned`, which
    :func:`experiments.train.train` applies."""
    validate(adapt, arch)
    if adapt.kind in ("pretrain", "finetune"):
        return base
    if adapt.kind == "lora":
        dtype = base["embed"]["W_E"].dtype
        layers = []
        for l in range(arch.n_layers):
            layer = {}
            for i, m in enumerate(adapt.matrices):
                d_in, d_out = lora_shape(arch, m)
                k = jax.random.fold_in(key, l * len(LORA_MATRICES) + i)
                # the scale is cast first: a NumPy float64 scalar would promote A to float64
                scale = jnp.asarray(adapt.init_scale / np.sqrt(d_in), dtype)
                layer[m] = {
                    "A": jax.random.normal(k, (d_in, adapt.rank), dtype) * scale,
                    "B": jnp.zeros((adapt.rank, d_out), dtype),
                }
            layers.append(layer)
        return layers
    # prefixes start at the base model's own states of its zero tokens
    dummy = jnp.zeros((MODEL_LEN,), jnp.int32)
    _, cache = forward(base, arch, dummy, zero_prompt(adapt.n_p), validate=False)
    n_p = adapt.n_p
    if adapt.kind == "prefix":
        return {
            "states": jnp.stack(
                [cache[act_name("resid_pre", l)][:n_p] for l in range(arch.n_layers)]
            )
        }
    keys = jnp.stack(
        [jnp.swapaxes(cache[act_name("k", l)][:n_p], 0, 1) for l in range(arch.n_layers)]
    )
    values = jnp.stack(
        [jnp.swapaxes(cache[act_name("v", l)][:n_p], 0, 1) for l in range(arch.n_layers)]
    )
    return {"keys": keys, "values": values}


def heads_fused(W: Float[Array, "heads d k"]) -> Float[Array, "d heads_k"]:
    """A per-head projection ``W_Q/W_K/W_V [heads, d, k]`` as the one matrix LoRA adapts,
    ``[d, heads * k]`` (head-major columns); NumPy or JAX arrays."""
    return W.transpose(1, 0, 2).reshape(W.shape[1], -1)


def heads_split(M: Float[Array, "d heads_k"], shape: tuple) -> Float[Array, "heads d k"]:
    """The inverse of :func:`heads_fused`: ``M [d, heads * k]`` back to ``shape``
    ``(heads, d, k)``."""
    heads, d, k = shape
    return M.reshape(d, heads, k).transpose(1, 0, 2)


def lora_gradient(grads, matrix: str, layer: int) -> np.ndarray:
    """The gradient of one LoRA target matrix as ``[d_in, d_out]`` (float64), from the gradient
    pytree of the full parameters (``W_O [heads, d_head, d]`` flattened over the heads, as
    LoRA adapts it)."""
    sub = "mlp" if matrix in ("W_in", "W_out") else "attn"
    g = np.asarray(grads["blocks"][layer][sub][matrix], np.float64)
    if matrix in ("W_Q", "W_K", "W_V"):
        return heads_fused(g)
    return g.reshape(-1, g.shape[-1])


def gradient_aligned(adapt: Adaptation, trainable, grads):
    """LoRA factors whose ``A`` spans the top-r left singular vectors of each target's full
    weight gradient ``G`` (``B`` stays 0, so the adapted model still equals the base model).

    With ``B = 0`` the gradient of ``B`` is ``A^T G``: this ``A`` makes ``B``'s first steps the
    best rank-r approximation of the full fine-tuning step (``u_i sigma_i v_i^T``) instead of a
    random projection of it. LoRA-GA (Wang et al., 2024) aligns both factors with ``G`` and
    subtracts their product from the frozen ``W``; this one-sided form leaves ``W`` alone.
    Each column of ``A`` has norm ``adapt.init_scale`` (a random ``A``'s columns have about
    that norm). ``grads``: the gradient pytree of the full parameters on the task's data.
    """
    out = []
    for l, layer in enumerate(trainable):
        new = {}
        for m, ab in layer.items():
            u, _, _ = np.linalg.svd(lora_gradient(grads, m, l), full_matrices=False)
            A = adapt.init_scale * u[:, : adapt.rank]
            new[m] = {"A": jnp.asarray(A, ab["A"].dtype), "B": ab["B"]}
        out.append(new)
    return out


@jax.custom_vjp
def low_rank_product(x, A, B):
    """``(x @ A) @ B`` for ``x [..., d_in]``, ``A [d_in, r]``, ``B [r, d_out]``.

    Its gradients contract over the positions; each is computed with the rank-r factor as
    the transposed operand (see :func:`_outer_sum`), so no full-width activation is
    transposed.
    """
    return (x @ A) @ B


def _low_rank_fwd(x, A, B):
    u = x @ A
    return u @ B, (x, u, A, B)


def _outer_sum(a, b):
    """``sum_t a[t]^T b[t]`` over all leading axes: ``[..., m], [..., n] -> [m, n]``.

    As the matrix product ``a^T b`` (or ``(b^T a)^T``) with the narrower operand transposed:
    XLA CPU transposes a product's contracted operand before multiplying, and a rank-r
    ``[positions, r]`` factor is cheap to transpose (free when r = 1) where a
    ``[positions, d]`` activation is not.
    """
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    if a2.shape[1] <= b2.shape[1]:
        return a2.T @ b2
    return (b2.T @ a2).T


def _low_rank_bwd(res, dy):
    x, u, A, B = res
    g = dy @ B.T  # [..., r]
    return g @ A.T, _outer_sum(x, g), _outer_sum(u, dy)


low_rank_product.defvjp(_low_rank_fwd, _low_rank_bwd)


@jax.tree_util.register_pytree_node_class
class LowRankUpdated:
    """A frozen matrix with a low-rank update, ``W + s A B``, applied to inputs as
    ``x @ W + s (x @ A) @ B`` without forming ``W + s A B``.

    Training through the product never forms the full-size gradient ``x^T dy`` of the
    frozen ``W`` (which ``W + A B`` would, to pass it on to ``A`` and ``B``): the gradients
    of ``A`` and ``B`` come from the rank-r activations ``x @ A`` and ``dy @ B^T``.
    :func:`theory.model.mlp` multiplies its inputs by ``W_in`` and ``W_out`` with ``@``,
    so the update reaches it through ``__rmatmul__``.
    """

    def __init__(self, W, A, B, scale=1.0):
        self.W, self.A, self.B, self.scale = W, A, B, scale

    shape = property(lambda self: self.W.shape)
    dtype = property(lambda self: self.W.dtype)

    def __rmatmul__(self, x):
        low = low_rank_product(x, self.A, self.B)
        return x @ self.W + (low if self.scale == 1.0 else self.scale * low)

    def reshape(self, *shape):
        """The same update with ``W`` reshaped (``A``'s rows follow ``W``'s leading axes)."""
        return LowRankUpdated(self.W.reshape(*shape), self.A, self.B, self.scale)

    def materialise(self):
        """The updated matrix ``W + s A B`` itself."""
        return self.W + (self.scale * (self.A @ self.B)).reshape(self.W.shape)

    def tree_flatten(self):
        return (self.W, self.A, self.B), self.scale

    @classmethod
    def tree_unflatten(cls, scale, children):
        return cls(*children, scale=scale)


def materialise(params):
    """``params`` with every :class:`LowRankUpdated` matrix formed (plain arrays: what
    :func:`theory.params.validate_params` and the evidence code expect)."""
    return jax.tree_util.tree_map(
        lambda x: x.materialise() if isinstance(x, LowRankUpdated) else x,
        params,
        is_leaf=lambda x: isinstance(x, LowRankUpdated),
    )


def _lora_apply(arch, adapt, base, layers):
    blocks = []
    s = adapt.scale
    for bp, layer in zip(base["blocks"], layers, strict=False):
        attn, mlp = dict(bp["attn"]), dict(bp.get("mlp", {}))
        for m, ab in layer.items():
            if m in ("W_in", "W_out"):
                mlp[m] = LowRankUpdated(mlp[m], ab["A"], ab["B"], s)
                continue
            if m == "W_O":  # applied to the heads flattened, [N, H*d_head] (theory.model)
                attn[m] = LowRankUpdated(attn[m], ab["A"], ab["B"], s)
                continue
            delta = ab["A"] @ ab["B"]  # [d_in, d_out]
            delta = delta if s == 1.0 else s * delta
            attn[m] = attn[m] + heads_split(delta, attn[m].shape)  # W_Q, W_K, W_V
        new = dict(bp, attn=attn)
        if mlp:
            new["mlp"] = mlp
        blocks.append(new)
    return dict(base, blocks=blocks)


def apply(adapt: Adaptation, arch: Architecture, base, trainable):
    """``(params, context)`` of the adapted model (pure, jittable)."""
    if adapt.kind in ("pretrain", "finetune"):
        return trainable, base_context(adapt)
    if adapt.kind == "lora":
        return _lora_apply(arch, adapt, base, trainable), base_context(adapt)
    if adapt.kind == "prefix":
        return base, Prefix(trainable["states"])
    return base, KVPrefix(trainable["keys"], trainable["values"])


def n_trainable(trainable) -> int:
    """Number of trainable scalars (the parameter count reported for the method)."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(trainable)))
