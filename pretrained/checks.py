"""docs/theory.md §3 on real weights: every layer and
head of all-MiniLM-L6-v2, random and optimised prefixes.

For each sentence and prefix a :class:`theory.trials.Trial` is built from the loaded
parameters and passed to :func:`theory.compare.compare`, which gives per layer the
maximum over heads, content queries and keys of

* the attention residual ``max |A^pt_ij - (1 - m_i) A_ij|`` (relative attention),
* the output residual ``max |t^pt_i - (sum_p A^pt_ip v_p + (1 - m_i) t_i)|`` (convex output),

where ``A``, ``t`` come from the base layer run on the prefixed model's content
inputs at that layer ("given its inputs", the conditional statement).

The pieces shared with the checks of any loaded Hugging Face model (rows, report, table,
residual functions) live in :mod:`interop.checks`; this module adds the MiniLM specifics:
its sentences and the optimised prefix.

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

import jax
import jax.numpy as jnp
import numpy as np

from interop.checks import (  # noqa: F401  (the pieces shared with interop, re-exported)
    PAPER_LLAMA_ATTENTION,
    PAPER_LLAMA_OUTPUT,
    TARGETS,
    THEOREM_IDS,
    Report,
    Row,
    check_counts,
    check_theorems,
    compiled,
    context_residuals,
    control_residuals,
    format_report,
    make_row,
    model_trial,
    rank1_control,
    unconditional_residual,
    update_witness,
)
from pretrained.minilm import load_minilm, tokenize
from pretrained.training import train_prefix
from theory.context import Prefix
from theory.errors import ToolkitError

SENTENCES = (
    "The cat sits on the mat.",
    "A man is playing a guitar.",
    "Prefix-tuning can only bias the output of an attention head!",
    "Paris is the capital of France.",
)
SOURCE, TARGET = "The cat sits on the mat.", "Paris is the capital of France."


def check_options(n_p: int, trials: int, steps: int, seed: int, theorems) -> tuple:
    """Validate the options of :func:`run_checks` (ToolkitError
    naming the bad one); returns the theorem ids."""
    check_counts(n_p=(n_p, 1), trials=(trials, 1), steps=(steps, 1), seed=(seed, 0))
    return check_theorems(theorems)


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
        res = compiled(
            context_residuals,
            arch,
            model.params,
            Prefix(flat_states.astype(d)),
            flat_ids,
            flat_mask,
        )
        res = {k: np.asarray(v).reshape(P, B, arch.n_layers) for k, v in res.items()}
        timings[f"checks_{d}"] = time.perf_counter() - t0
        for kind, sl in (("random", slice(0, trials)), ("optimised", slice(trials, P))):
            part = {k: v[sl] for k, v in res.items()}
            report.rows.append(make_row(kind, d, part, "holds", theorems))
            witness = update_witness(
                witness, part["unconditional"], kind, d, list(sentences), offset=sl.start or 0
            )
        if d in control_dtypes:
            t0 = time.perf_counter()
            adapted = rank1_control(model.params, key_control, d)
            ctrl = compiled(
                control_residuals, arch, model.params, adapted, jnp.asarray(ids), jnp.asarray(mask)
            )
            timings[f"control_{d}"] = time.perf_counter() - t0
            report.rows.append(
                make_row("rank1_WQ (negative control)", d, ctrl, "fails", theorems, with_mass=False)
            )
    report.witness = witness
    report.timings_s = timings
    return report, {"trained": trained, "model": f32}
