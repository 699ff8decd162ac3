"""What an adapter does to each attention head (docs/theory.md §3), measured on given inputs.

Per layer ``l`` and head ``h``, over the inputs' real (unpadded) content queries ``i``:

``prefix_mass_mean``, ``prefix_mass_max``
    the share of attention the query gives to the virtual positions, ``m_i = sum_p A^pt_ip``:
    the strength of the head's bias.
``value_rank``
    the dimension of the span of the virtual positions' value vectors ``v_p`` (at most
    ``n_p``): the directions the head's bias can take (docs/theory.md §3: the bias lies in
    the cone of the ``v_p``).
``bias_rank``
    the dimension of the span of the biases the head actually adds, ``b_i = sum_p A^pt_ip v_p``
    over every query and input (at most ``value_rank``): a long prefix whose attention is
    far from uniform does not use its whole span.
``content_change``
    ``max |A^pt_ij / (1 - m_i) - A_ij|`` over real content keys ``j``, where ``A`` is the
    model run WITHOUT the adapter, content at the same positions: how much the adapter changed
    the distribution of attention over the content.  Zero at layer 0 by the theorem (the
    layer's inputs coincide); deeper layers see content activations that earlier biases
    moved, so it is measured.

Ranks are numerical: singular values above ``RANK_RTOL`` times the largest (and above
``RANK_ATOL``).  Everything runs in the model's dtype (float64 recommended).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from theory import sharding
from theory.context import n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward
from theory.verify import FAST_COMPILE

RANK_RTOL = 1e-6
RANK_ATOL = 1e-9
QUANTITIES = ("prefix_mass_mean", "prefix_mass_max", "value_rank", "bias_rank", "content_change")


@dataclass
class Inspection:
    """Per layer x head measurements of one adapter on some inputs (JSON-able)."""

    model: str
    adapter: dict
    inputs: list
    n_layers: int
    n_heads: int
    n_p: int
    prefix_mass_mean: list  # [n_layers][n_heads]
    prefix_mass_max: list
    value_rank: list
    bias_rank: list
    content_change: list
    notes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@partial(jax.jit, static_argnames=("arch",))
def _measure(params, arch, ids, mask, context):
    n_p = n_virtual(context)
    group = arch.n_heads // arch.kv_heads

    def one(tokens, content_mask):
        key_mask = jnp.concatenate([jnp.ones(n_p, bool), content_mask])
        _, cache = forward(params, arch, tokens, context, attention_mask=key_mask, validate=False)
        _, base = forward(
            params,
            arch,
            tokens,
            None,
            position_offset=n_p,
            attention_mask=content_mask,
            validate=False,
        )
        out = []
        for l in range(arch.n_layers):
            pattern = cache[act_name("pattern", l)][:, n_p:, :]  # [H, n, n_p + n]
            to_prefix = pattern[:, :, :n_p]
            mass = to_prefix.sum(-1)  # [H, n]
            values = jnp.repeat(cache[act_name("v", l)][:n_p], group, axis=1)
            bias = jnp.einsum("hqp,phd->hqd", to_prefix, values)  # [H, n, d_head]
            relative = pattern[:, :, n_p:] / (1.0 - mass)[..., None]
            change = jnp.abs(relative - base[act_name("pattern", l)])
            change = jnp.where(content_mask[None, :, None] & content_mask[None, None, :], change, 0)
            out.append((mass, jnp.swapaxes(values, 0, 1), bias, change.max(axis=(1, 2))))
        return out

    return jax.vmap(one)(ids, mask)


def numerical_rank(vectors: np.ndarray) -> int:
    """Number of singular values of ``vectors [m, k]`` above the RANK_RTOL/RANK_ATOL threshold."""
    if vectors.size == 0:
        return 0
    s = np.linalg.svd(vectors, compute_uv=False)
    return int(np.sum(s > max(RANK_RTOL * s[0], RANK_ATOL)))


def inspect_adapter(model, context, ids, mask, inputs, adapter_info: dict | None = None, mesh=None):
    """Measure ``context`` (a KVPrefix, SoftPrompt or Prefix) on ``model`` (an HFModel).

    ``ids``/``mask [B, n]`` are the inputs (right-padded), ``inputs`` their names (texts).
    ``mesh`` (:mod:`theory.sharding`): parameters split over its ``model`` axis, inputs over
    its ``batch`` axis, the context replicated.
    """
    arch = model.arch
    n_p = n_virtual(context)
    if n_p < 1:
        raise ToolkitError("context: expected an adapter with at least one virtual position")
    ids, mask = jnp.asarray(ids), jnp.asarray(mask, bool)
    args = (model.params, ids, mask, context)
    if mesh is not None:
        args = (
            sharding.ensure_params_on(model.params, mesh),
            *sharding.place_batch((ids, mask), mesh, "batch"),
            sharding.place_tree(context, mesh),
        )
    with jax.default_matmul_precision("highest"):
        lowered = _measure.lower(args[0], arch, *args[1:])
        layers = lowered.compile(compiler_options=FAST_COMPILE)(*args)
    if mesh is not None:
        layers = sharding.to_host(layers, ids.shape[0])
    real = np.asarray(mask)  # [B, n]
    H = arch.n_heads
    result = {q: [] for q in QUANTITIES}
    for mass, values, bias, change in layers:
        mass = np.asarray(mass)  # [B, H, n]
        values, bias = np.asarray(values), np.asarray(bias)  # [B, H, n_p, k], [B, H, n, k]
        real_mass = np.where(real[:, None, :], mass, np.nan)
        result["prefix_mass_mean"].append(np.nanmean(real_mass, axis=(0, 2)).tolist())
        result["prefix_mass_max"].append(np.nanmax(real_mass, axis=(0, 2)).tolist())
        result["value_rank"].append(
            [numerical_rank(values[:, h].reshape(-1, values.shape[-1])) for h in range(H)]
        )
        result["bias_rank"].append(
            [numerical_rank(bias[:, h][real].reshape(-1, bias.shape[-1])) for h in range(H)]
        )
        result["content_change"].append(np.asarray(change).max(0).tolist())
    return Inspection(
        model=arch.name,
        adapter=dict(adapter_info or {"context": type(context).__name__}),
        inputs=list(inputs),
        n_layers=arch.n_layers,
        n_heads=H,
        n_p=n_p,
        notes={
            "dtype": str(model.params["embed"]["W_E"].dtype),
            "rank_tolerance": {"rtol": RANK_RTOL, "atol": RANK_ATOL},
            "content_change": "max |A^pt_ij / (1 - m_i) - A_ij| against the model without the "
            "adapter, content at the same positions (0 at layer 0 by the theorem)",
        },
        **result,
    )


def format_inspection(result: Inspection) -> str:
    """One block per quantity: a row per layer, a column per head."""
    H = result.n_heads
    kind = result.adapter.get("peft_type", result.adapter.get("context"))
    lines = [
        (
            f"{result.model}: adapter {kind} (n_p={result.n_p}) on {len(result.inputs)} inputs, "
            f"{result.n_layers} layers x {H} heads"
        )
    ]
    formats = {
        "prefix_mass_mean": ("prefix attention mass, mean over queries and inputs", "{:.3f}"),
        "prefix_mass_max": ("prefix attention mass, max over queries and inputs", "{:.3f}"),
        "value_rank": (
            f"dimension of the span of the prefix values (<= n_p = {result.n_p} per input)",
            "{}",
        ),
        "bias_rank": ("dimension of the span of the biases actually added", "{}"),
        "content_change": ("largest change of content attention (0 at layer 0)", "{:.1e}"),
    }
    for q, (title, fmt) in formats.items():
        table = [["layer"] + [f"h{h}" for h in range(H)]]
        for l, row in enumerate(getattr(result, q)):
            table.append([str(l)] + [fmt.format(x) for x in row])
        widths = [max(len(r[i]) for r in table) for i in range(H + 1)]
        lines += ["", title]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(lines)
