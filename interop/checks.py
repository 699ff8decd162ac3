"""docs/theory.md §3 on a real (loaded) model: every layer and head, for any context.

For each input and context a :class:`theory.trials.Trial` is built from the loaded
parameters and passed to :func:`theory.compare.compare`, which gives per layer the maximum
over heads, content queries and keys of

* the attention residual ``max |A^pt_ij - (1 - m_i) A_ij|`` (relative attention),
* the output residual ``max |t^pt_i - (sum_p A^pt_ip v_p + (1 - m_i) t_i)|`` (convex output),

where ``A``, ``t`` come from the base layer run on the prefixed model's content inputs at
that layer ("given its inputs", the conditional statement).

The unconditional comparison runs the whole model WITHOUT the context (content at the same
positions) and measures, per layer, ``max |A^pt_ij - (1 - m_i) A^{no prefix}_ij|``.  At
layer 0 the inputs coincide, so it holds; deeper, the context has already moved the content
activations, so attention changes: the largest change is the witness.

Negative control: a rank-1 update of ``W_Q`` in every layer (:func:`theory.methods.rank1_update`),
compared by the same ``compare``: it changes relative attention.

Targets: float32 residuals at most the paper's LLaMA-7B figures (docs/theory.md §3:
4.88e-4 attention, 9.16e-5 outputs); float64 at most ``TOL_F64``.

:func:`run_model_checks` runs all of it for a model loaded from a Hugging Face folder, with
random hidden-state prefixes and, when given, the user's PEFT adapter; the all-MiniLM-L6-v2
sweep (``pretrained.checks``) uses the same pieces.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from theory import sharding
from theory.compare import compare
from theory.context import Prefix, n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.methods import rank1_update
from theory.model import forward
from theory.tolerances import EFFECT_FLOOR, TOL_F64
from theory.trials import Trial
from theory.verify import FAST_COMPILE

# docs/theory.md §3 [paper]: LLaMA-7B fp16, layer 0, head 12, one-token prefix trained on DART.
PAPER_LLAMA_ATTENTION = 4.88e-4
PAPER_LLAMA_OUTPUT = 9.16e-5
TARGETS = {"float32": (PAPER_LLAMA_ATTENTION, PAPER_LLAMA_OUTPUT), "float64": (TOL_F64, TOL_F64)}
THEOREM_IDS = ("relative_attention", "convex_output")


def model_trial(params, ids, mask, context) -> Trial:
    """A Trial of a real model: base = adapted = ``params``,
    content ``ids [n]``, padding ``mask [n]``."""
    key_mask = jnp.concatenate([jnp.ones(n_virtual(context), bool), mask])
    return Trial(params, params, ids, context, key_mask)


def unconditional_residual(arch, trial: Trial):
    """Per layer ``max |A^pt_ij - (1 - m_i) A^{no prefix}_ij|``
    against the whole model run without prefix."""
    n_p = n_virtual(trial.context)
    _, with_prefix = forward(
        trial.params,
        arch,
        trial.tokens,
        trial.context,
        attention_mask=trial.key_mask,
        validate=False,
    )
    _, without = forward(
        trial.params,
        arch,
        trial.tokens,
        None,
        position_offset=n_p,
        attention_mask=trial.key_mask[n_p:],
        validate=False,
    )
    out = []
    for l in range(arch.n_layers):
        pattern = with_prefix[act_name("pattern", l)][:, n_p:, :]
        c = 1.0 - pattern[:, :, :n_p].sum(-1)
        out.append(
            jnp.max(jnp.abs(pattern[:, :, n_p:] - c[..., None] * without[act_name("pattern", l)]))
        )
    return jnp.stack(out)


def context_residuals(arch, params, contexts, ids, mask):
    """``contexts`` (a context batched over B),
    ``ids``/``mask [B, n]`` -> dict of ``[B, n_layers]``."""

    def one(context, i, m):
        trial = model_trial(params, i, m, context)
        c = compare(arch, trial)
        return {
            "attention": c.attention_residual,
            "output": c.output_residual,
            "mass": c.prefix_mass,
            "unconditional": unconditional_residual(arch, trial),
        }

    return jax.vmap(one)(contexts, ids, mask)


def control_residuals(arch, params, adapted, ids, mask):
    def one(i, m):
        c = compare(arch, model_trial(params, i, m, None)._replace(adapted=adapted))
        return {"attention": c.attention_residual, "output": c.output_residual}

    return jax.vmap(one)(ids, mask)


def compiled(fn, arch, *args, mesh=None, n_params: int = 1):
    """``fn(arch, *args)`` compiled with the verifier's fast options and run.

    With a ``mesh``: ``args`` are ``n_params`` parameter trees, then arrays batched along their
    leading dimension; the parameters are split over the mesh's ``model`` axis and the batch
    over its ``batch`` axis; the outputs come back as host arrays (``[batch, ...]``).
    """
    n = None
    if mesh is not None:
        params, batched = args[:n_params], args[n_params:]
        n = jax.tree_util.tree_leaves(batched)[0].shape[0]
        args = tuple(sharding.ensure_params_on(p, mesh) for p in params) + tuple(
            sharding.place_batch(b, mesh, "batch") for b in batched
        )
    with jax.default_matmul_precision("highest"):
        out = (
            jax.jit(fn, static_argnums=0)
            .lower(arch, *args)
            .compile(compiler_options=FAST_COMPILE)(*args)
        )
    return out if mesh is None else sharding.to_host(out, n)


@dataclass
class Row:
    """Per-layer maxima (over heads, queries, keys, inputs
    and contexts) for one context kind and dtype."""

    prefix: str  # e.g. "random" | "optimised" | "adapter" | "rank1_WQ (negative control)"
    dtype: str
    attention: list  # [n_layers]
    output: list  # [n_layers]
    mass: list  # [n_layers] mean prefix mass (0 for the control)
    unconditional: list  # [n_layers] (empty for the control)
    target_attention: float
    target_output: float
    verdict: str  # conditional statement: "holds" | "fails" | "error" (no verdict: see reason)
    expected: str
    theorems: list  # theorem ids the verdict covers
    reason: str = ""  # why there is no verdict (a residual not finite, a context without effect)


@dataclass
class Report:
    model: str
    n_layers: int
    n_heads: int
    sentences: list
    n_p: int
    trials: int
    seed: int
    rows: list = field(default_factory=list)
    training: dict = field(default_factory=dict)  # the optimised prefix (MiniLM), if any
    witness: dict = field(default_factory=dict)  # largest deeper-layer unconditional change
    timings_s: dict = field(default_factory=dict)
    adapter: dict = field(default_factory=dict)  # the PEFT adapter checked, if any
    expect_witness: bool = True  # a deeper layer exists, so attention is expected to change

    @property
    def as_expected(self) -> bool:
        layer0_ok = all(
            r.unconditional[0] <= r.target_attention for r in self.rows if r.unconditional
        )
        witness_ok = bool(self.witness.get("changes")) or not self.expect_witness
        return all(r.verdict == r.expected for r in self.rows) and layer0_ok and witness_ok

    def to_json(self) -> dict:
        out = asdict(self)
        out["as_expected"] = self.as_expected
        return out


def make_row(prefix, dtype, res, expected, theorems, with_mass=True) -> Row:
    """One table row from residuals ``{quantity: [..., n_layers]}`` (maxima over the rest)."""
    tol_a, tol_o = TARGETS[dtype]
    att = np.asarray(res["attention"], np.float64).reshape(-1, res["attention"].shape[-1])
    out = np.asarray(res["output"], np.float64).reshape(att.shape)
    checked = [(att, tol_a)] * ("relative_attention" in theorems) + [(out, tol_o)] * (
        "convex_output" in theorems
    )
    holds = all(r.max() <= tol for r, tol in checked)
    mass = (
        np.asarray(res["mass"]).reshape(att.shape).mean(0).tolist()
        if with_mass
        else [0.0] * att.shape[1]
    )
    reason = ""
    if not all(np.isfinite(r).all() for r, _ in checked):
        reason = "a residual is not finite (NaN or inf)"
    elif with_mass and not np.nanmax(np.abs(mass)) > EFFECT_FLOOR:
        reason = (
            f"the context had no effect (prefix mass {np.nanmax(np.abs(mass)):.1e} <= "
            f"{EFFECT_FLOOR:.0e} in every layer): the checks hold vacuously"
        )
    unc = (
        np.asarray(res["unconditional"]).reshape(att.shape).max(0).tolist()
        if "unconditional" in res
        else []
    )
    return Row(
        prefix,
        dtype,
        att.max(0).tolist(),
        out.max(0).tolist(),
        mass,
        unc,
        tol_a,
        tol_o,
        "error" if reason else "holds" if holds else "fails",
        expected,
        list(theorems),
        reason,
    )


def check_theorems(theorems) -> tuple:
    """The theorem ids to check (all by default); ToolkitError naming an unknown one."""
    theorems = tuple(dict.fromkeys(theorems or THEOREM_IDS))
    for t in theorems:
        if t not in THEOREM_IDS:
            raise ToolkitError(
                f"theorem {t!r} is not checked on real weights; expected one of: "
                + ", ".join(THEOREM_IDS)
            )
    return theorems


def check_counts(**values) -> None:
    """Each ``name=(value, lowest)`` must be an int >= lowest (ToolkitError naming the bad one)."""
    for name, (value, low) in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ToolkitError(f"{name}: expected an int >= {low}, got {value!r}")


def update_witness(witness: dict, unc, kind: str, dtype: str, inputs, offset: int = 0) -> dict:
    """The largest deeper-layer unconditional change so far (``unc [contexts, B, n_layers]``)."""
    deep = unc[:, :, 1:]
    if not deep.size or deep.max() <= witness.get("residual", -1.0):
        return witness
    p, b, l = np.unravel_index(int(np.argmax(deep)), deep.shape)
    tol = TARGETS[dtype][0]
    return {
        "residual": float(deep.max()),
        "prefix": kind,
        "dtype": dtype,
        "trial": int(p) + offset,
        "sentence": inputs[int(b)],
        "layer": int(l) + 1,
        "layer0_residual": float(unc[:, :, 0].max()),
        "tolerance": tol,
        "changes": bool(deep.max() > tol),
    }


def rank1_control(params, key, dtype):
    """The rank-1 ``W_Q`` update, drawn in float64
    and rounded, so both dtypes check the same one."""
    wide = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
    return jax.tree_util.tree_map(lambda x: x.astype(dtype), rank1_update(wide, "W_Q", key))


def run_model_checks(
    models: dict,
    ids,
    mask,
    inputs: list,
    *,
    adapter=None,
    n_p: int = 1,
    trials: int = 8,
    seed: int = 0,
    theorems=THEOREM_IDS,
    name: str | None = None,
    mesh=None,
) -> Report:
    """The §3 checks on a loaded model in each dtype of ``models`` ({"float32": m, "float64": m}).

    Contexts: ``trials`` random hidden-state prefixes (states ~ N(0, 1) from ``seed``, ``n_p``
    positions) and, when given, the ``adapter`` (an :class:`interop.peft.Adapter`, its
    context widened to each dtype), each on every input ``ids``/``mask [B, n]``; then the
    rank-1 ``W_Q`` negative control.  ``inputs`` names the inputs in the report.

    ``mesh`` (:mod:`theory.sharding`): the parameters split over its ``model`` axis (placed
    there by ``load_hf(..., mesh=mesh)``, or here), inputs and contexts over its ``batch`` axis.
    """
    theorems = check_theorems(theorems)
    check_counts(n_p=(n_p, 1), trials=(trials, 1), seed=(seed, 0))
    if not models or any(d not in TARGETS for d in models):
        raise ToolkitError(f"models: expected a dict keyed by float32/float64, got {list(models)}")
    first = next(iter(models.values()))
    arch = first.arch
    ids, mask = jnp.asarray(ids), jnp.asarray(mask)
    B = ids.shape[0]
    longest = max(n_p, adapter.n_virtual if adapter is not None else 0) + ids.shape[1]
    if longest > arch.n_ctx:
        raise ToolkitError(
            f"inputs too long for {arch.name}: {ids.shape[1]} tokens after up to "
            f"{longest - ids.shape[1]} virtual positions need {longest} positions, "
            f"the model has {arch.n_ctx}"
        )
    key_random, key_control = jax.random.split(jax.random.PRNGKey(seed))
    states = jax.random.normal(key_random, (trials, arch.n_layers, n_p, arch.d_model), jnp.float64)
    report = Report(
        name or arch.name,
        arch.n_layers,
        arch.n_heads,
        list(inputs),
        n_p,
        trials,
        seed,
        expect_witness=arch.n_layers > 1,
    )
    if adapter is not None:
        report.adapter = {
            "folder": str(adapter.adapter_dir),
            "peft_type": adapter.peft_type,
            "n_virtual": adapter.n_virtual,
            "context": type(adapter.context).__name__,
        }
    witness: dict = {"residual": -1.0}
    flat_ids, flat_mask = jnp.tile(ids, (trials, 1)), jnp.tile(mask, (trials, 1))
    for d, model in models.items():
        t0 = time.perf_counter()
        batch = Prefix(jnp.repeat(states, B, axis=0).astype(d))
        res = compiled(context_residuals, arch, model.params, batch, flat_ids, flat_mask, mesh=mesh)
        res = {k: np.asarray(v).reshape(trials, B, arch.n_layers) for k, v in res.items()}
        report.rows.append(make_row("random", d, res, "holds", theorems))
        witness = update_witness(witness, res["unconditional"], "random", d, inputs)
        if adapter is not None:
            context = jax.tree_util.tree_map(
                lambda x, d=d: jnp.broadcast_to(jnp.asarray(x, d), (B,) + x.shape),
                adapter.context,
            )
            res = compiled(context_residuals, arch, model.params, context, ids, mask, mesh=mesh)
            res = {k: np.asarray(v).reshape(1, B, arch.n_layers) for k, v in res.items()}
            report.rows.append(make_row("adapter", d, res, "holds", theorems))
            witness = update_witness(witness, res["unconditional"], "adapter", d, inputs)
        if mesh is None:
            adapted = rank1_control(model.params, key_control, d)
        else:  # one SPMD computation on the split parameters (and the same draw)
            adapted = jax.jit(rank1_control, static_argnums=2)(
                model.params, np.asarray(key_control), d
            )
        ctrl = compiled(
            control_residuals, arch, model.params, adapted, ids, mask, mesh=mesh, n_params=2
        )
        report.rows.append(
            make_row("rank1_WQ (negative control)", d, ctrl, "fails", theorems, with_mass=False)
        )
        report.timings_s[f"checks_{d}"] = time.perf_counter() - t0
    report.witness = witness if witness.get("residual", -1.0) >= 0 else {}
    return report


def format_report(report: Report) -> str:
    """Plain-text table: per layer, the maximum residuals of each context kind and dtype."""
    L = report.n_layers
    kinds = "random prefixes" + (" + 1 optimised" if report.training else "")
    if report.adapter:
        kinds += (
            f" + the adapter ({report.adapter['peft_type']}, n_p={report.adapter['n_virtual']})"
        )
    lines = [
        (
            f"{report.model}: {L} layers x {report.n_heads} heads, {len(report.sentences)} "
            f"sentences, n_p={report.n_p}, {report.trials} {kinds} (seed {report.seed})"
        ),
        "",
    ]
    header = (
        ["prefix", "dtype", "quantity"] + [f"layer {l}" for l in range(L)] + ["target", "verdict"]
    )
    rows = [header]
    for r in report.rows:
        verdict = (
            f"{r.verdict} (expected "
            f"{r.expected}){'' if r.verdict == r.expected else '  UNEXPECTED'}"
        )
        if r.verdict == "error":
            verdict = f"ERROR ({r.reason})"
        lead = [r.prefix, r.dtype]
        if "relative_attention" in r.theorems:
            rows.append(
                lead
                + ["attention"]
                + [f"{x:.2e}" for x in r.attention]
                + [f"{r.target_attention:.2e}", verdict]
            )
            lead, verdict = ["", ""], ""
        if "convex_output" in r.theorems:
            rows.append(
                lead
                + ["output"]
                + [f"{x:.2e}" for x in r.output]
                + [f"{r.target_output:.2e}", verdict]
            )
        if r.unconditional:
            rows.append(["", "", "prefix mass"] + [f"{x:.2e}" for x in r.mass] + ["", ""])
            rows.append(
                ["", "", "unconditional"]
                + [f"{x:.2e}" for x in r.unconditional]
                + ["", "layer 0 holds, deeper changes"]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    table.insert(1, "  ".join("-" * w for w in widths))
    lines += table
    t, w = report.training, report.witness
    lines.append("")
    if t:
        lines.append(
            f"optimised prefix: {t['steps']} Adam steps, cos(emb({t['source']!r}), "
            f"emb({t['target']!r})): no prefix {t['cos_no_prefix']:.4f}, initial "
            f"prefix {t['cos_init']:.4f}, trained {t['cos_trained']:.4f}"
        )
    if w.get("changes") is not None:
        lines.append(
            f"deeper layers: attention changes unconditionally: witness {w['prefix']} prefix "
            f"(trial {w['trial']}), {w['dtype']}, layer {w['layer']}, sentence {w['sentence']!r}: "
            f"max |A^pt - (1-m) A^no-prefix| = {w['residual']:.3e} > {w['tolerance']:.1e} "
            f"(layer 0: {w['layer0_residual']:.2e})"
        )
    elif not report.expect_witness:
        lines.append("deeper layers: none (one layer), so no unconditional change is expected")
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings_s.items()))
    lines.append("all verdicts as expected" if report.as_expected else "SOME VERDICT UNEXPECTED")
    return "\n".join(lines)
