"""Checks spread over several devices with JAX's own machinery: a :class:`jax.sharding.Mesh`
with two named axes and :class:`jax.sharding.NamedSharding` placements.

``batch``
    independent work: the random trials of a sweep (each trial draws its own model, so a
    sweep spreads its trials over every device of the mesh, whatever the axis names), or the
    inputs and contexts checked on a loaded model.
``model``
    the parameters of a loaded model (:func:`param_specs`): attention weights split over
    heads, MLP weights over the hidden dimension, embedding and unembedding over the
    vocabulary; XLA's SPMD partitioner inserts the collectives.  A dimension that the axis
    size does not divide is replicated instead.

Trials run through :func:`over_trials` (``jax.shard_map``): every device runs the same
vmapped check on its slice of the trial keys, with no communication, so a trial's residual is
computed exactly as on one device.  Across processes (:mod:`theory.distributed`) the mesh
holds every process's devices, arrays are assembled from host data with
``jax.make_array_from_callback`` and results are gathered with
``multihost_utils.process_allgather``; every process ends with the same host arrays.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from theory.errors import ToolkitError

AXES = ("batch", "model")
EVERY_AXIS = P(AXES)  # a leading dimension spread over every device of the mesh
REPLICATED = P()

# Leaf name -> dimension split over the ``model`` axis (theory.params layout): heads of the
# attention weights, the MLP's hidden units, the vocabulary of the (un)embedding.  Leaves not
# named here (norms, output biases, learned positions, a plug-in block's own leaves) replicate.
MODEL_DIM = {
    "W_Q": 0,
    "b_Q": 0,
    "W_K": 0,
    "b_K": 0,
    "W_V": 0,
    "b_V": 0,
    "W_O": 0,
    "W_in": -1,
    "b_in": -1,
    "W_gate": -1,
    "W_out": 0,
    "W_hidden": -1,
    "b_hidden": -1,
    "W_E": 0,
    "W_U": -1,
    "b_U": -1,
}


def parse_mesh(spec: str) -> dict[str, int]:
    """``"batch=2,model=4"`` -> ``{"batch": 2, "model": 4}`` (an axis left out has size 1)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ToolkitError(
            f"--mesh: expected AXIS=SIZE[,AXIS=SIZE] with AXIS one of {', '.join(AXES)}, "
            f"got {spec!r}"
        )
    sizes: dict[str, int] = {}
    for part in spec.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name not in AXES:
            raise ToolkitError(
                f"--mesh: expected AXIS=SIZE[,AXIS=SIZE] with AXIS one of {', '.join(AXES)}, "
                f"got {part.strip()!r} in {spec!r}"
            )
        if name in sizes:
            raise ToolkitError(f"--mesh: axis {name!r} given twice in {spec!r}")
        if not value.strip().isdigit() or int(value) < 1:
            raise ToolkitError(f"--mesh: expected a size >= 1 for axis {name!r}, got {value!r}")
        sizes[name] = int(value)
    return sizes


def mesh_size(sizes: dict[str, int]) -> int:
    return math.prod(sizes.values())


def make_mesh(sizes: dict[str, int], devices=None) -> Mesh:
    """A ``(batch, model)`` mesh of ``prod(sizes)`` devices (the first of ``jax.devices()``).

    Across several processes the mesh must hold every device of every process.
    """
    for name, size in sizes.items():
        if name not in AXES or not isinstance(size, int) or size < 1:
            raise ToolkitError(f"mesh: expected sizes >= 1 for axes {AXES}, got {sizes}")
    available = list(jax.devices()) if devices is None else list(devices)
    n = mesh_size(sizes)
    described = ", ".join(f"{a}={sizes.get(a, 1)}" for a in AXES)
    if n > len(available):
        raise ToolkitError(
            f"mesh {described} needs {n} devices; JAX sees {len(available)} "
            f"({available[0].platform}{' in all processes' if jax.process_count() > 1 else ''})"
        )
    if jax.process_count() > 1 and n != len(available):
        raise ToolkitError(
            f"mesh {described} has {n} devices; across {jax.process_count()} processes it must "
            f"use all {len(available)} of them"
        )
    shape = tuple(sizes.get(a, 1) for a in AXES)
    # Mesh's default axis type: shardings propagate through the computation as XLA's SPMD
    # partitioner chooses (jax.make_mesh would make them part of every array's type).
    return Mesh(np.array(available[:n], dtype=object).reshape(shape), AXES)


def padded(n: int, mesh: Mesh, axes=AXES) -> int:
    """``n`` rounded up to a multiple of the devices along ``axes`` (each gets an equal slice)."""
    k = math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))
    return -(-n // k) * k


def place(x, mesh: Mesh, spec: P = REPLICATED):
    """Host data ``x`` as a global array with ``NamedSharding(mesh, spec)``.

    Each process builds only the slices its own devices hold; every process must pass the same
    ``x``.  Never materialises the whole array on one device.
    """
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec), lambda idx: x[idx])


def place_tree(tree, mesh: Mesh, spec: P = REPLICATED):
    """:func:`place` on every leaf of a pytree (``None`` leaves stay ``None``)."""
    return jax.tree_util.tree_map(lambda x: place(x, mesh, spec), tree)


def pad_batch(tree, multiple: int):
    """Every leaf's leading dimension padded to a multiple of ``multiple`` with copies of its first
    row (real data, so the padding computes finite values; callers drop it)."""

    def pad(x):
        x = np.asarray(x)
        extra = -x.shape[0] % multiple
        return np.concatenate([x, np.repeat(x[:1], extra, axis=0)]) if extra else x

    return jax.tree_util.tree_map(pad, tree)


def place_batch(tree, mesh: Mesh, axes=AXES):
    """Host arrays with a leading batch dimension, padded (:func:`pad_batch`) and split along
    ``axes`` of the mesh (the rest replicated)."""
    multiple = padded(1, mesh, axes)
    return place_tree(pad_batch(tree, multiple), mesh, P(axes))


def to_host(tree, n: int | None = None):
    """Every leaf as a host numpy array, the first ``n`` rows of the leading dimension when given.

    Arrays spread over several processes are gathered (every process gets the whole array).
    """

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = multihost_utils.process_allgather(x, tiled=True)
        x = np.asarray(jax.device_get(x))
        return x if n is None else x[:n]

    return jax.tree_util.tree_map(get, tree)


def over_trials(fn, mesh: Mesh):
    """``fn`` (a vmapped ``keys [trials, ...] -> pytree of [trials, ...]``) run with its keys and
    outputs split over every device of ``mesh``; each device runs ``fn`` on its own slice."""
    return jax.shard_map(fn, mesh=mesh, in_specs=EVERY_AXIS, out_specs=EVERY_AXIS)


def _leaf_name(path) -> str:
    last = path[-1]
    return str(getattr(last, "key", getattr(last, "name", last)))


def param_specs(params, mesh: Mesh, axis: str = "model"):
    """A PartitionSpec per parameter leaf: :data:`MODEL_DIM`'s dimension over ``axis`` when the
    axis size divides it, else replicated."""
    size = mesh.shape[axis]

    def spec(path, x):
        dim = MODEL_DIM.get(_leaf_name(path))
        shape = np.shape(x)
        if size == 1 or dim is None or not shape or shape[dim] % size:
            return P()
        parts = [None] * len(shape)
        parts[dim] = axis
        return P(*parts)

    return jax.tree_util.tree_map_with_path(spec, params)


def shard_params(params, mesh: Mesh, axis: str = "model"):
    """Parameters (host or device arrays) placed on ``mesh`` as :func:`param_specs` says."""
    specs = param_specs(params, mesh, axis)
    return jax.tree_util.tree_map(lambda x, s: place(x, mesh, s), params, specs)


def bytes_per_device(tree) -> dict:
    """``{device: bytes}`` the arrays of ``tree`` occupy on each addressable device."""
    out: dict = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        for shard in leaf.addressable_shards:
            out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
    return out


def from_process0(x: np.ndarray) -> np.ndarray:
    """Process 0's value of ``x`` in every process (``x`` itself in a single process)."""
    if jax.process_count() == 1:
        return np.asarray(x)
    return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(x)))


def on_mesh(tree, mesh: Mesh) -> bool:
    """Whether every leaf of ``tree`` is already a global array laid out on ``mesh``."""
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(leaves) and all(
        isinstance(x, jax.Array)
        and isinstance(x.sharding, NamedSharding)
        and x.sharding.mesh == mesh
        for x in leaves
    )


def ensure_params_on(params, mesh: Mesh, axis: str = "model"):
    """``params`` as :func:`shard_params` places them, unless they are on ``mesh`` already."""
    return params if on_mesh(params, mesh) else shard_params(params, mesh, axis)
