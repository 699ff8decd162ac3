"""Parameters as pytrees: their shapes, random draws, and validation.

Weights follow TransformerLens's layout (documented in docs/conventions.md)::

    params["embed"]      W_E [d_vocab, d_model], W_pos [n_ctx, d_model] (learned positions),
                         W_type [n_token_types, d_model] (BERT)
    params["ln_embed"]   w, b [d_model]                      (embed_norm only)
    params["blocks"][l]  ln1, ln2: w [d_model] (+ b for LayerNorm)   (norm != "none")
                         attn (blocks with the "projections" feature):
                               W_Q [n_heads, d_model, d_head], b_Q [n_heads, d_head],
                               W_K, W_V [n_kv_heads, d_model, d_head],
                               b_K, b_V [n_kv_heads, d_head],
                               W_O [n_heads, d_head, d_model], b_O [d_model],
                               q_norm, k_norm: w [d_head]    (qk_norm only)
                         mlp:  W_in [d_model, d_mlp], b_in [d_mlp],
                               W_out [d_mlp, d_model], b_out [d_model],
                               W_gate [d_model, d_mlp] (gated), W_hidden [depth-1, d_mlp, d_mlp],
                               b_hidden [depth-1, d_mlp] (mlp_depth > 1)
                         + the block kind's own leaves (``BlockKind.param_shapes``: e.g.
                           ``mixer`` of a recurrent block, the latent maps, a key/value bias)
    params["ln_final"]   w (+ b)                              (norm == "pre" and final_norm)
    params["unembed"]    W_U [d_model, d_vocab], b_U [d_vocab]

The query of head h is ``q = x @ W_Q[h] + b_Q[h]``, so the paper's ``W_Q`` (k x d) is
``W_Q[h].T`` here, and ``H = W_Q[h] @ W_K[h].T / sqrt(d_head)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from theory.architecture import Architecture
from theory.blocks import norm_shapes
from theory.errors import ToolkitError
from theory.registry import BLOCK_KINDS, POSITIONAL_SCHEMES


def param_shapes(arch: Architecture) -> dict:
    """The nested dict of leaf shapes that parameters for ``arch`` must have."""
    d, H, G, k = arch.d_model, arch.n_heads, arch.kv_heads, arch.d_head
    embed = {"W_E": (arch.d_vocab, d)}
    scheme = POSITIONAL_SCHEMES[arch.positional]
    if scheme.learned_shapes is not None:
        embed.update(scheme.learned_shapes(arch))
    if arch.n_token_types:
        embed["W_type"] = (arch.n_token_types, d)
    shapes = {"embed": embed}
    if arch.embed_norm:
        shapes["ln_embed"] = norm_shapes(arch)
    blocks = []
    for _ in range(arch.n_layers):
        attn = {
            "W_Q": (H, d, k),
            "b_Q": (H, k),
            "W_K": (G, d, k),
            "b_K": (G, k),
            "W_V": (G, d, k),
            "b_V": (G, k),
            "W_O": (H, k, d),
            "b_O": (d,),
        }
        if arch.qk_norm:
            attn["q_norm"] = {"w": (k,)}
            attn["k_norm"] = {"w": (k,)}
        block_kind = BLOCK_KINDS[arch.block]
        block = {"attn": attn} if "projections" in block_kind.features else {}
        if arch.norm != "none":
            block["ln1"] = norm_shapes(arch)
            if not arch.parallel and arch.d_mlp:
                block["ln2"] = norm_shapes(arch)
        if arch.d_mlp:
            m = arch.d_mlp
            mlp = {"W_in": (d, m), "b_in": (m,), "W_out": (m, d), "b_out": (d,)}
            if arch.mlp_act.startswith("gated"):
                mlp["W_gate"] = (d, m)
            if arch.mlp_depth > 1:
                mlp["W_hidden"] = (arch.mlp_depth - 1, m, m)
                mlp["b_hidden"] = (arch.mlp_depth - 1, m)
            block["mlp"] = mlp
        if block_kind.param_shapes is not None:
            block.update(block_kind.param_shapes(arch))
        blocks.append(block)
    shapes["blocks"] = blocks
    if arch.norm == "pre" and arch.final_norm:
        shapes["ln_final"] = norm_shapes(arch)
    shapes["unembed"] = {"W_U": (d, arch.d_vocab), "b_U": (arch.d_vocab,)}
    return shapes


# maps from the block input (d_model wide) of the recurrent and latent blocks (docs/theory.md §5)
INPUT_MAPS = ("W_B", "W_C", "W_dt", "W_r", "W_i", "W_DKV", "W_KR")


def _leaf_scale(name: str, shape, arch: Architecture) -> tuple[float, float]:
    """(mean, std) of the random draw for a leaf, chosen so attention logits are O(1)."""
    if name in ("W_E", "W_pos", "W_type"):
        return 0.0, 1.0
    if name in ("W_Q", "W_K", "W_V", "W_in", "W_gate", "W_U"):
        return 0.0, 1.0 / np.sqrt(arch.d_model)
    if name == "W_O":
        return 0.0, 1.0 / np.sqrt(arch.n_heads * arch.d_head)
    if name in ("W_out", "W_hidden"):
        return 0.0, 1.0 / np.sqrt(max(arch.d_mlp, 1))
    if name in INPUT_MAPS:
        return 0.0, 1.0 / np.sqrt(arch.d_model)
    if name in ("W_UK", "W_UV"):
        return 0.0, 1.0 / np.sqrt(max(arch.d_latent, 1))
    if name in ("k_sink", "v_sink"):
        return 0.0, 1.0
    if name == "w":
        return 1.0, 0.1
    return 0.0, 0.1  # biases


def _is_shape(x) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def _fusion_barrier(x):
    """``x`` unchanged (bit for bit), computed once: XLA cannot fuse through a sort.

    Without it XLA's fusion pass copies the normal sampler's erf_inv polynomial into every
    leaf's slice (~10x the HLO, ~2x the compile time of every check).  Pairs are "sorted" by
    their position (stable, already in order), which costs O(size), unlike a full sort.
    """
    n = x.shape[0]
    pairs = jnp.pad(x, (0, n % 2)).reshape(-1, 2)
    order = jnp.broadcast_to(jnp.arange(2), pairs.shape)
    return jax.lax.sort((order, pairs), dimension=1, num_keys=1)[1].reshape(-1)[:n]


def init_params(arch: Architecture, key, dtype=jnp.float64) -> dict:
    """Random parameters for ``arch`` drawn from a PRNG key (pure, jittable, vmappable over keys).

    One standard-normal vector is drawn and cut into the leaves (a single RNG call
    keeps the compiled graph small); each leaf is then shifted and scaled.
    """
    shapes = param_shapes(arch)
    paths_and_shapes, treedef = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=_is_shape)
    sizes = [int(np.prod(shape)) for _, shape in paths_and_shapes]
    noise = jax.random.normal(key, (sum(sizes),), dtype)
    noise = _fusion_barrier(noise)
    leaves, start = [], 0
    for size, (path, shape) in zip(sizes, paths_and_shapes, strict=False):
        name = str(getattr(path[-1], "key", path[-1]))
        mean, std = _leaf_scale(name, shape, arch)
        # mean/std are numpy float64 scalars: cast back so ``dtype`` is honoured (float32 training)
        leaves.append((mean + std * noise[start : start + size].reshape(shape)).astype(dtype))
        start += size
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _path_name(path) -> str:
    parts = []
    for p in path:
        parts.append(str(getattr(p, "key", getattr(p, "idx", p))))
    return ".".join(parts)


def validate_params(params, arch: Architecture) -> None:
    """Raise ToolkitError naming the first missing, extra, misshapen, non-float or non-finite
    leaf."""
    expected = param_shapes(arch)
    exp_leaves = dict(
        (_path_name(p), s)
        for p, s in jax.tree_util.tree_flatten_with_path(expected, is_leaf=_is_shape)[0]
    )
    try:
        got_leaves = dict(
            (_path_name(p), x) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]
        )
    except Exception as exc:  # pragma: no cover - exotic containers
        raise ToolkitError(
            f"parameters must be a pytree of arrays, got {type(params).__name__}: {exc}"
        ) from exc
    missing = sorted(set(exp_leaves) - set(got_leaves))
    if missing:
        raise ToolkitError(
            f"parameters for architecture {arch.name!r} are missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    extra = sorted(set(got_leaves) - set(exp_leaves))
    if extra:
        raise ToolkitError(
            f"parameters for architecture {arch.name!r} have unexpected entries {extra[:5]}"
        )
    for name, shape in exp_leaves.items():
        leaf = got_leaves[name]
        got_shape = tuple(getattr(leaf, "shape", ()))
        if got_shape != tuple(shape):
            raise ToolkitError(f"parameter {name}: expected shape {tuple(shape)}, got {got_shape}")
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise ToolkitError(
                f"parameter {name}: expected a floating-point array, got dtype {dtype}"
            )
        if not isinstance(leaf, jax.core.Tracer) and not bool(
            np.all(np.isfinite(np.asarray(leaf)))
        ):
            raise ToolkitError(f"parameter {name}: expected finite values, got NaN or inf")
