"""Shared pieces of the weight constructions (docs/theory.md §2).

Every construction is an :class:`theory.architecture.Architecture` plus a params
pytree of the toolkit's one transformer (:func:`theory.model.forward`): one
attention layer (no LayerNorm, learned one-hot positions, ReLU MLP), with the
virtual token passed as a :class:`theory.context.SoftPrompt`.  Weights are
written into named blocks of residual coordinates (:class:`Layout`).

Notation: ``V`` vocabulary size (tokens ``0..V-1``, plus a start token ``BOS = V``
where a construction needs one), ``T`` the inverse temperature
(``Architecture.temperature``), ``e = exp(T)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from theory.architecture import Architecture
from theory.errors import ToolkitError
from theory.params import param_shapes


class Layout:
    """Named blocks of residual-stream coordinates: ``Layout(val=N, pos=N+1, out=1)``.

    ``layout.val`` is a ``slice``; ``layout["val"][i]`` the index of coordinate ``i``.
    """

    def __init__(self, **sizes: int):
        self.sizes = dict(sizes)
        self._start, start = {}, 0
        for name, size in sizes.items():
            self._start[name] = start
            start += size
        self.d = start

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._start:
            raise AttributeError(name)
        return slice(self._start[name], self._start[name] + self.sizes[name])

    def __getitem__(self, name) -> np.ndarray:
        return np.arange(self._start[name], self._start[name] + self.sizes[name])


def _is_shape(x) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(arch: Architecture) -> None:
    """Refuse a construction whose weights cannot fit: they are built in float64 with numpy,
    then copied to JAX (16 bytes per parameter at the peak), and must stay below 3/4 of the
    machine's physical memory (ToolkitError naming the size, before anything is allocated)."""
    count = sum(math.prod(s) for s in jax.tree_util.tree_leaves(param_shapes(arch), _is_shape))
    need, total = 16 * count, physical_memory()
    if total is not None and need > 0.75 * total:
        raise ToolkitError(
            f"{arch.name}: {count:,} weights (d_model={arch.d_model}) need about "
            f"{need / 2**30:.1f} GiB while they are built; this machine has "
            f"{total / 2**30:.1f} GiB; expected a smaller vocabulary or length"
        )


def zero_params(arch: Architecture) -> dict:
    """A numpy float64 params pytree of zeros with the shapes ``arch`` needs (ToolkitError when
    it cannot fit in memory, see :func:`check_memory`)."""
    check_memory(arch)

    def build(shape):
        return np.zeros(shape, np.float64)

    return jax.tree_util.tree_map(build, param_shapes(arch), is_leaf=_is_shape)


def to_jax(params: dict, dtype) -> dict:
    """Cast a numpy params pytree to JAX arrays of ``dtype``."""
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)


def scalar_decoder(V: int) -> tuple[np.ndarray, np.ndarray]:
    """Unembedding rows that decode a scalar ``z`` to the token ``k`` nearest to ``z * V``.

    logit_k = (2k/V - 1) z + 1/4 - (k/V)^2 = (z - 1/2)^2 - (z - k/V)^2, so
    argmax_k logit_k = argmin_k |z - k/V|; the decision is correct when
    ``|z - k/V| < 1/(2V)`` (the decoding margin).  Returns (W_U row [V], b_U [V]).
    """
    k = np.arange(V, dtype=np.float64)
    return 2.0 * k / V - 1.0, 0.25 - (k / V) ** 2


# Largest inverse temperature accepted. The certificates bound e^T in exact rational arithmetic,
# whose size grows with T (e^T at T = 1e6 is a 1.4-million-bit number, still milliseconds);
# far beyond it they stall, and nothing changes there: the certified temperatures of these
# constructions are below a few thousand, and float64's rounding slack (8 u T) already exceeds
# every decoding margin near T = 1e12.
T_MAX = 1e6


def check_temperature(T) -> float:
    if (
        not isinstance(T, (int, float))
        or isinstance(T, bool)
        or not np.isfinite(T)
        or not 0 < T <= T_MAX
    ):
        raise ToolkitError(f"temperature T: expected a number in (0, {T_MAX:g}], got {T!r}")
    return float(T)


def check_size(name: str, value, low: int, high: int | None = None, remedy: str = "") -> int:
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ToolkitError(
            f"{name}: expected an int {bound}, got {value!r}{'; ' + remedy if remedy else ''}"
        )
    return int(value)


@dataclass(frozen=True, eq=False)
class Construction:
    """A constructed model: ``arch`` and ``params`` of the toolkit's transformer, plus metadata.

    kind      "unconditional" | "conditional" | "two_token"
    V         vocabulary size (ordinary tokens 0..V-1)
    bos       id of the start token (``V``) or None
    n_prompt  content tokens given before the first generated token (1: BOS or the user token)
    n_out     tokens generated (N, N0 or 1)
    n_virtual virtual tokens the construction reads
    certificate  the :class:`constructions.certificates.Certificate` of this model
    """

    kind: str
    arch: Architecture
    params: Any
    V: int
    T: float
    n_prompt: int
    n_out: int
    n_virtual: int
    bos: int | None = None
    extra: dict = field(default_factory=dict)
    certificate: Any = None

    @property
    def dtype(self):
        return self.params["embed"]["W_E"].dtype
