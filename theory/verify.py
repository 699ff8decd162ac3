"""Run every registered theorem on every registered architecture, batched over random trials.

For each (architecture, method) a function draws a trial from a key and
evaluates every applicable theorem's residual; it is vmapped over ``trials`` keys
(``fold_in(PRNGKey(seed), t)``), so all random models of a row are checked in one
call.  Compilation dominates at these sizes, so all methods of one architecture
are compiled as one function (their trials share the base model's draw), with
XLA's backend optimisation off, in worker threads while the main thread traces
the next architecture.

A row's verdict is "holds" when every trial's residual is finite and at most the
theorem's tolerance, else "fails" with the worst trial as the witness (replay it
with :func:`replay`).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from theory.architecture import ARCHITECTURES, Architecture, get_architecture
from theory.compare import shared_runs
from theory.errors import ToolkitError
from theory.methods import METHODS, get_method
from theory.registry import THEOREMS, get_theorem
from theory.trials import TrialShape, draw_trial

# Compile options of the checks: compilation dominates at these sizes (about 90% of a
# default run), so XLA's backend optimisation and its new CPU fusion emitters are off
# (together about 2x less compile CPU; the programs are tiny, so run time hardly matters).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


@dataclass
class Result:
    theorem: str
    architecture: str
    method: str
    expected: str  # "holds" | "fails"
    verdict: str  # "holds" | "fails" | "error" (the check raised; reason says why)
    max_residual: float
    trials: int
    tolerance: float
    seed: int
    witness_trial: int  # trial with the largest residual
    reason: str

    @property
    def as_expected(self) -> bool:
        return self.expected == self.verdict

    def to_json(self) -> dict:
        out = asdict(self)
        out["max_residual"] = (
            self.max_residual if math.isfinite(self.max_residual) else str(self.max_residual)
        )
        out["as_expected"] = self.as_expected
        return out


def trial_keys(seed: int, trials: int):
    """Keys ``fold_in(PRNGKey(seed), t)`` for t = 0..trials-1."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda t: jax.random.fold_in(base, t))(jnp.arange(trials))


def residual_function(arch: Architecture, method_name: str, theorem_ids: tuple, shape: TrialShape):
    """``keys [trials, 2] -> {theorem_id: residuals [trials]}`` (vmapped, not yet compiled)."""
    method = METHODS[method_name]
    theorems = [THEOREMS[t] for t in theorem_ids]

    def one(key):
        trial = draw_trial(arch, method, key, shape)
        with shared_runs():  # the theorems share the trial's adapted and base runs
            return {thm.id: thm.check(arch, trial) for thm in theorems}

    return jax.vmap(one)


def groups_function(groups, shape: TrialShape):
    """``keys -> [residuals of each group]`` for (architecture, method, theorem ids) ``groups`` as one
    function (not yet compiled); the groups of one architecture share the base model's draw."""
    fns = [residual_function(ARCHITECTURES[a], m, ids, shape) for a, m, ids in groups]
    return lambda keys: [fn(keys) for fn in fns]


def _select(names, registry, kind):
    if not names:
        return list(registry)
    for name in names:
        if name not in registry:
            from theory.errors import unknown_name

            raise unknown_name(kind, name, registry)
    return list(dict.fromkeys(names))


def plan(theorems=None, architectures=None, methods=None):
    """The (architecture, method, theorem ids) groups to run, validated against the registries."""
    theorem_ids = _select(theorems, THEOREMS, "theorem")
    arch_names = _select(architectures, ARCHITECTURES, "architecture")
    method_names = _select(methods, METHODS, "method")
    groups = []
    for a in arch_names:
        defaults = ARCHITECTURES[a].default_methods
        for m in defaults:
            if m not in METHODS:
                from theory.errors import unknown_name

                raise unknown_name(f"method in default_methods of architecture {a!r}:", m, METHODS)
        for m in method_names:
            if not methods and defaults and m not in defaults:
                continue  # default run: the architecture's representative methods (docs/atlas.md)
            ids = tuple(
                t
                for t in theorem_ids
                if m in THEOREMS[t].method_names()
                and (theorems or architectures or THEOREMS[t].in_default_run(ARCHITECTURES[a]))
            )
            if ids:
                groups.append((a, m, ids))
    if not groups:
        raise ToolkitError(
            f"nothing to run: no theorem among {theorem_ids} applies to methods {method_names}"
        )
    return groups


def run_verify(
    theorems=None,
    architectures=None,
    methods=None,
    seed: int = 0,
    trials: int = 16,
    shape: TrialShape = TrialShape(),
    workers: int | None = None,
) -> list[Result]:
    """Check the selected theorems x architectures x methods on ``trials`` random trials each."""
    if not isinstance(trials, int) or trials < 1:
        raise ToolkitError(f"trials must be a positive int, got {trials!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ToolkitError(f"seed must be an int >= 0, got {seed!r}")
    groups = plan(theorems, architectures, methods)
    keys = trial_keys(seed, trials)

    def lower(unit):
        return jax.jit(groups_function(unit, shape)).lower(keys)

    def compile_lowered(lowered):
        return lowered.compile(compiler_options=FAST_COMPILE)

    def evaluate_alone(group):
        """Residuals of one group, or the exception it raised (isolates a failing group)."""
        try:
            return jax.device_get(compile_lowered(lower([group]))(keys))[0]
        except Exception as exc:
            return exc

    by_arch: dict = {}
    for group in groups:
        by_arch.setdefault(group[0], []).append(group)
    units = list(by_arch.values())
    # Python tracing and lowering hold the GIL, so they run here, one architecture at a time,
    # while XLA compiles the architectures already lowered in the worker threads (compilation
    # releases the GIL).  Compiled functions run afterwards, in this thread.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        pending = []
        for unit in units:
            try:
                pending.append(pool.submit(compile_lowered, lower(unit)))
            except (
                Exception
            ) as exc:  # a (user-registered) variant that cannot run: an error row, not a crash
                pending.append(exc)
        outcomes = []
        for unit, item in zip(units, pending):
            try:
                if isinstance(item, Exception):
                    raise item
                outcomes.extend(jax.device_get(item.result()(keys)))
            except Exception:  # find out which group(s) of the architecture raised
                outcomes.extend(evaluate_alone(group) for group in unit)
    groups = [group for unit in units for group in unit]

    results = []
    for (a, m, ids), residuals in zip(groups, outcomes):
        arch, method = ARCHITECTURES[a], METHODS[m]
        if isinstance(residuals, Exception):
            exc = residuals
            message = f"the check raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            for tid in ids:
                expected, _ = THEOREMS[tid].expectation(arch, method)
                results.append(
                    Result(
                        tid,
                        a,
                        m,
                        expected,
                        "error",
                        math.nan,
                        trials,
                        THEOREMS[tid].tolerance,
                        seed,
                        -1,
                        message,
                    )
                )
            continue
        for tid in ids:
            thm = THEOREMS[tid]
            r = np.asarray(residuals[tid], dtype=np.float64)
            finite = np.isfinite(r)
            worst = int(np.argmax(np.where(finite, r, np.inf)))
            max_res = float(r[worst])
            verdict = "holds" if finite.all() and max_res <= thm.tolerance else "fails"
            expected, reason = thm.expectation(arch, method)
            results.append(
                Result(
                    tid,
                    a,
                    m,
                    expected,
                    verdict,
                    max_res,
                    trials,
                    thm.tolerance,
                    seed,
                    worst,
                    reason,
                )
            )
    return results


def replay(
    theorem: str,
    architecture: str,
    method: str,
    seed: int,
    trial: int,
    shape: TrialShape = TrialShape(),
) -> float:
    """Recompute one trial's residual (the witness of a reported violation)."""
    thm, arch, m = get_theorem(theorem), get_architecture(architecture), get_method(method)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), trial)
    return float(thm.check(arch, draw_trial(arch, m, key, shape)))


def format_table(results: list[Result]) -> str:
    """Plain-text table: theorem x architecture x method, expected, verdict, max residual, trials."""
    header = (
        "theorem",
        "architecture",
        "method",
        "expected",
        "verdict",
        "max residual",
        "trials",
        "",
    )
    rows = [header]
    for r in results:
        flag = (
            "ok"
            if r.as_expected
            else f"UNEXPECTED (witness: seed {r.seed}, trial {r.witness_trial})"
        )
        if r.verdict == "error":
            flag = f"ERROR ({r.reason})"
        rows.append(
            (
                r.theorem,
                r.architecture,
                r.method,
                r.expected,
                r.verdict,
                f"{r.max_residual:.2e}",
                str(r.trials),
                flag,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    n_ok = sum(r.as_expected for r in results)
    lines.append("")
    lines.append(
        f"{n_ok}/{len(results)} verdicts as expected (tolerance: residual <= {results[0].tolerance:.0e} "
        "in float64 means 'holds')"
    )
    return "\n".join(lines)
