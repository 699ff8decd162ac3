"""docs/theory.md §3 on real weights: every layer and head of all-MiniLM-L6-v2, random and optimised prefixes.

For each sentence and prefix a :class:`theory.trials.Trial` is built from the loaded
parameters and passed to :func:`theory.compare.compare`, which gives per layer the
maximum over heads, content queries and keys of

* the attention residual ``max |A^pt_ij - (1 - m_i) A_ij|`` (relative attention),
* the output residual ``max |t^pt_i - (sum_p A^pt_ip v_p + (1 - m_i) t_i)|`` (convex output),

where ``A``, ``t`` come from the base layer run on the prefixed model's content
inputs at that layer ("given its inputs", the conditional statement).

The unconditional comparison runs the whole model WITHOUT the prefix (content at
the same positions) and measures, per layer, ``max |A^pt_ij - (1 - m_i) A^{no prefix}_ij|``.
At layer 0 the inputs coincide, so it holds; deeper, the prefix has already moved
the content activations, so attention changes: :func:`unconditional_residual`
reports it and the largest one is the negative witness.

Negative control: a rank-1 update of ``W_Q`` in every layer (:func:`theory.methods.rank1_update`),
compared by the same ``compare``: it changes relative attention.

Targets: float32 residuals at most the paper's LLaMA-7B figures (docs/theory.md §3:
4.88e-4 attention, 9.16e-5 outputs); float64 at most ``TOL_F64``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from pretrained.minilm import load_minilm, tokenize
from pretrained.training import train_prefix
from theory.compare import compare
from theory.context import Prefix, n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.methods import rank1_update
from theory.model import forward
from theory.tolerances import TOL_F64
from theory.trials import Trial
from theory.verify import FAST_COMPILE

# docs/theory.md §3.11 [paper]: LLaMA-7B fp16, layer 0, head 12, one-token prefix trained on DART.
PAPER_LLAMA_ATTENTION = 4.88e-4
PAPER_LLAMA_OUTPUT = 9.16e-5
TARGETS = {"float32": (PAPER_LLAMA_ATTENTION, PAPER_LLAMA_OUTPUT), "float64": (TOL_F64, TOL_F64)}

SENTENCES = (
    "The cat sits on the mat.",
    "A man is playing a guitar.",
    "Prefix-tuning can only bias the output of an attention head!",
    "Paris is the capital of France.",
)
SOURCE, TARGET = "The cat sits on the mat.", "Paris is the capital of France."
THEOREM_IDS = ("relative_attention", "convex_output")


def model_trial(params, ids, mask, context) -> Trial:
    """A Trial of the real model: base = adapted = ``params``, content ``ids [n]``, padding ``mask [n]``."""
    key_mask = jnp.concatenate([jnp.ones(n_virtual(context), bool), mask])
    return Trial(params, params, ids, context, key_mask)


def unconditional_residual(arch, trial: Trial):
    """Per layer ``max |A^pt_ij - (1 - m_i) A^{no prefix}_ij|`` against the whole model run without prefix."""
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
            jnp.max(
                jnp.abs(
                    pattern[:, :, n_p:] - c[..., None] * without[act_name("pattern", l)]
                )
            )
        )
    return jnp.stack(out)


def _prefix_residuals(arch, params, states, ids, mask):
    """``states [B, n_layers, n_p, d]``, ``ids``/``mask [B, n]`` -> dict of ``[B, n_layers]`` arrays."""

    def one(s, i, m):
        trial = model_trial(params, i, m, Prefix(s))
        c = compare(arch, trial)
        return {
            "attention": c.attention_residual,
            "output": c.output_residual,
            "mass": c.prefix_mass,
            "unconditional": unconditional_residual(arch, trial),
        }

    return jax.vmap(one)(states, ids, mask)


def _control_residuals(arch, params, adapted, ids, mask):
    def one(i, m):
        c = compare(arch, model_trial(params, i, m, None)._replace(adapted=adapted))
        return {"attention": c.attention_residual, "output": c.output_residual}

    return jax.vmap(one)(ids, mask)


def _compiled(fn, arch, *args):
    with jax.default_matmul_precision("highest"):
        return (
            jax.jit(fn, static_argnums=0)
            .lower(arch, *args)
            .compile(compiler_options=FAST_COMPILE)(*args)
        )


@dataclass
class Row:
    """Per-layer maxima (over heads, queries, keys, sentences and prefixes) for one prefix kind and dtype."""

    prefix: str  # "random" | "optimised" | "rank1_WQ (negative control)"
    dtype: str
    attention: list  # [n_layers]
    output: list  # [n_layers]
    mass: list  # [n_layers] mean prefix mass (0 for the control)
    unconditional: list  # [n_layers] (empty for the control)
    target_attention: float
    target_output: float
    verdict: str  # conditional statement: "holds" | "fails"
    expected: str
    theorems: list  # theorem ids the verdict covers


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
    training: dict = field(default_factory=dict)
    witness: dict = field(default_factory=dict)  # largest deeper-layer unconditional change
    timings_s: dict = field(default_factory=dict)

    @property
    def as_expected(self) -> bool:
        layer0_ok = all(
            r.unconditional[0] <= r.target_attention for r in self.rows if r.unconditional
        )
        return (
            all(r.verdict == r.expected for r in self.rows)
            and layer0_ok
            and bool(self.witness.get("changes"))
        )

    def to_json(self) -> dict:
        out = asdict(self)
        out["as_expected"] = self.as_expected
        return out


def _row(prefix, dtype, res, expected, theorems, with_mass=True):
    tol_a, tol_o = TARGETS[dtype]
    att = np.asarray(res["attention"], np.float64).reshape(-1, res["attention"].shape[-1])
    out = np.asarray(res["output"], np.float64).reshape(att.shape)
    checked = [(att, tol_a)] * ("relative_attention" in theorems) + [(out, tol_o)] * (
        "convex_output" in theorems
    )
    holds = all(np.isfinite(r).all() and r.max() <= tol for r, tol in checked)
    mass = (
        np.asarray(res["mass"]).reshape(att.shape).mean(0).tolist()
        if with_mass
        else [0.0] * att.shape[1]
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
        "holds" if holds else "fails",
        expected,
        list(theorems),
    )


def check_options(n_p: int, trials: int, steps: int, seed: int, theorems) -> tuple:
    """Validate the options of :func:`run_checks` (ToolkitError naming the bad one); returns the theorem ids."""
    for name, value, low in (
        ("n_p", n_p, 1),
        ("trials", trials, 1),
        ("steps", steps, 1),
        ("seed", seed, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ToolkitError(f"{name}: expected an int >= {low}, got {value!r}")
    theorems = tuple(dict.fromkeys(theorems or THEOREM_IDS))
    for t in theorems:
        if t not in THEOREM_IDS:
            raise ToolkitError(
                f"theorem {t!r} is not checked on real weights; expected one of: "
                + ", ".join(THEOREM_IDS)
            )
    return theorems


def run_checks(
    sentences=SENTENCES,
    n_p: int = 1,
    trials: int = 8,
    steps: int = 300,
    seed: int = 0,
    source: str = SOURCE,
    target: str = TARGET,
    dtypes=("float32", "float64"),
    control_dtypes=("float32", "float64"),
    theorems=THEOREM_IDS,
    fast_compile: bool = False,
) -> tuple[Report, dict]:
    """Run the §3 checks on all-MiniLM-L6-v2.

    ``trials`` random prefixes (states ~ N(0, 1), from ``seed``) and one prefix optimised for
    ``steps`` Adam steps (source -> target, float32) are each checked on every sentence, in
    each of ``dtypes``.  Returns ``(report, extras)``; ``extras`` holds the trained prefix and
    the float32 model for the figures.  The rank-1 ``W_Q`` negative control runs in each of
    ``control_dtypes``.  ``fast_compile`` is passed to :func:`train_prefix`.
    """
    theorems = check_options(n_p, trials, steps, seed, theorems)
    if any(d not in TARGETS for d in dtypes) or not dtypes:
        raise ToolkitError(
            f"dtypes: expected a non-empty subset of {tuple(TARGETS)}, got {dtypes!r}"
        )
    timings = {}
    t0 = time.perf_counter()
    models = {d: load_minilm(d) for d in dtypes}
    f32 = load_minilm("float32")
    timings["load"] = time.perf_counter() - t0
    arch = f32.arch
    ids, mask = tokenize(f32.tokenizer, list(sentences))
    B = ids.shape[0]

    t0 = time.perf_counter()
    trained = train_prefix(
        f32, source, target, n_p=n_p, steps=steps, seed=seed, fast_compile=fast_compile
    )
    timings["train_prefix"] = time.perf_counter() - t0

    key_random, key_control = jax.random.split(jax.random.PRNGKey(seed))
    random_states = jax.random.normal(
        key_random, (trials, arch.n_layers, n_p, arch.d_model), jnp.float64
    )
    report = Report(
        arch.name,
        arch.n_layers,
        arch.n_heads,
        list(sentences),
        n_p,
        trials,
        seed,
        training={
            "source": source,
            "target": target,
            "steps": steps,
            "lr": 1e-2,
            "cos_no_prefix": trained.cos_no_prefix,
            "cos_init": trained.cos_init,
            "cos_trained": trained.cos_trained,
            "loss_first": float(trained.losses[0]),
            "loss_last": float(trained.losses[-1]),
        },
    )
    # one batch: the trials random prefixes, then the optimised one, each on every sentence
    all_states = jnp.concatenate([random_states, trained.prefix.states[None].astype(jnp.float64)])
    P = trials + 1
    flat_states = jnp.repeat(all_states, B, axis=0)
    flat_ids, flat_mask = jnp.tile(jnp.asarray(ids), (P, 1)), jnp.tile(jnp.asarray(mask), (P, 1))
    witness = {"residual": -1.0}
    for d, model in models.items():
        t0 = time.perf_counter()
        res = _compiled(
            _prefix_residuals, arch, model.params, flat_states.astype(d), flat_ids, flat_mask
        )
        res = {k: np.asarray(v).reshape(P, B, arch.n_layers) for k, v in res.items()}
        timings[f"checks_{d}"] = time.perf_counter() - t0
        for kind, sl in (("random", slice(0, trials)), ("optimised", slice(trials, P))):
            report.rows.append(_row(kind, d, {k: v[sl] for k, v in res.items()}, "holds", theorems))
            unc = res["unconditional"][sl]
            deep = unc[:, :, 1:]
            if deep.size and deep.max() > witness["residual"]:
                p, b, l = np.unravel_index(int(np.argmax(deep)), deep.shape)
                tol = TARGETS[d][0]
                witness = {
                    "residual": float(deep.max()),
                    "prefix": kind,
                    "dtype": d,
                    "trial": int(p) + (sl.start or 0),
                    "sentence": sentences[int(b)],
                    "layer": int(l) + 1,
                    "layer0_residual": float(unc[:, :, 0].max()),
                    "tolerance": tol,
                    "changes": bool(deep.max() > tol),
                }
        if d in control_dtypes:
            t0 = time.perf_counter()
            # drawn in float64 and rounded, so both dtypes check the same update
            wide = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), model.params)
            adapted = jax.tree_util.tree_map(
                lambda x: x.astype(d), rank1_update(wide, "W_Q", key_control)
            )
            ctrl = _compiled(
                _control_residuals, arch, model.params, adapted, jnp.asarray(ids), jnp.asarray(mask)
            )
            timings[f"control_{d}"] = time.perf_counter() - t0
            report.rows.append(
                _row("rank1_WQ (negative control)", d, ctrl, "fails", theorems, with_mass=False)
            )
    report.witness = witness
    report.timings_s = timings
    return report, {"trained": trained, "model": f32}


def format_report(report: Report) -> str:
    """Plain-text table: per layer, the maximum residuals of each prefix kind and dtype."""
    L = report.n_layers
    lines = [
        f"{report.model}: {L} layers x {report.n_heads} heads, {len(report.sentences)} sentences, "
        f"n_p={report.n_p}, {report.trials} random prefixes + 1 optimised (seed {report.seed})",
        "",
    ]
    header = (
        ["prefix", "dtype", "quantity"] + [f"layer {l}" for l in range(L)] + ["target", "verdict"]
    )
    rows = [header]
    for r in report.rows:
        verdict = f"{r.verdict} (expected {r.expected}){'' if r.verdict == r.expected else '  UNEXPECTED'}"
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
    table = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    table.insert(1, "  ".join("-" * w for w in widths))
    lines += table
    t, w = report.training, report.witness
    lines += [
        "",
        f"optimised prefix: {t['steps']} Adam steps, cos(emb({t['source']!r}), emb({t['target']!r})): "
        f"no prefix {t['cos_no_prefix']:.4f}, initial prefix {t['cos_init']:.4f}, "
        f"trained {t['cos_trained']:.4f}",
    ]
    if w.get("changes") is not None:
        lines.append(
            f"deeper layers: attention changes unconditionally: witness {w['prefix']} prefix "
            f"(trial {w['trial']}), {w['dtype']}, layer {w['layer']}, sentence {w['sentence']!r}: "
            f"max |A^pt - (1-m) A^no-prefix| = {w['residual']:.3e} > {w['tolerance']:.1e} "
            f"(layer 0: {w['layer0_residual']:.2e})"
        )
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.timings_s.items()))
    lines.append("all verdicts as expected" if report.as_expected else "SOME VERDICT UNEXPECTED")
    return "\n".join(lines)
