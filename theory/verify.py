"""Run every registered theorem on every registered architecture, batched over random trials.

For each (architecture, method) a function draws a trial from a key and
evaluates every applicable theorem's residual; it is vmapped over ``trials`` keys
(``fold_in(PRNGKey(seed), t)``), so all random models of a row are checked in one
call.  Compilation dominates at these sizes, so all methods of one architecture
are compiled as one function (their trials share the base model's draw), with
XLA's backend optimisation off, in worker threads while the main thread traces
the next architecture.

A row's verdict is "holds" when every trial's residual is at most the theorem's tolerance,
else "fails" with the worst trial as the witness (replay it with :func:`replay`). It is "error"
(no verdict, the reason says why) when the check raised, when a residual is not finite, or when
the row's context did nothing on some trial: a context method's row also reports the context's
effect (prefix mass and output displacement, smallest over the trials), which must exceed
:data:`theory.tolerances.EFFECT_FLOOR`, since a check on a context that does nothing holds
vacuously.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from theory import sharding
from theory.architecture import Architecture
from theory.compare import context_effect, shared_runs
from theory.errors import ToolkitError, unknown_name
from theory.registry import ARCHITECTURES, METHODS, THEOREMS
from theory.theorem import Control, Theorem
from theory.tolerances import EFFECT_FLOOR, VIOLATION
from theory.trials import SEED_BOUND, TrialShape, check_index, check_shape, draw_trial

# Compile options of the checks: compilation dominates at these sizes (about 90% of a
# default run), so XLA's backend optimisation and its new CPU fusion emitters are off
# (together about 2x less compile CPU; the programs are tiny, so run time hardly matters).
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
EFFECT = "context effect"  # key of theory.compare.context_effect's measures among the residuals


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
    witness_trial: int  # trial with the largest residual (or the one without a verdict)
    reason: str
    # the context's effect, smallest over the trials (nan for weight-changing methods)
    prefix_mass: float = math.nan
    displacement: float = math.nan

    @property
    def as_expected(self) -> bool:
        return self.expected == self.verdict

    def to_json(self) -> dict:
        out = asdict(self)
        out["max_residual"] = (
            self.max_residual if math.isfinite(self.max_residual) else str(self.max_residual)
        )
        for name in ("prefix_mass", "displacement"):
            out[name] = out[name] if math.isfinite(out[name]) else None
        out["as_expected"] = self.as_expected
        return out


def judge(residuals, tolerance: float, effect=None) -> tuple[str, int, float, str]:
    """(verdict, witness trial, max residual, reason of an "error") of one row.

    ``residuals [trials]``; ``effect``: ``{measure: [trials]}`` for a context method (see
    :func:`theory.compare.context_effect`). A residual that is not finite, or a context without
    effect on some trial (some measure at most :data:`EFFECT_FLOOR`), gives "error": neither
    "holds" nor "fails" can be concluded.
    """
    r = np.asarray(residuals, dtype=np.float64)
    finite = np.isfinite(r)
    if not finite.all():
        bad = int(np.argmin(finite))
        return "error", bad, float(r[bad]), f"residual is not finite ({r[bad]} on trial {bad})"
    worst = int(np.argmax(r))
    max_res = float(r[worst])
    if effect:
        measures = {k: np.asarray(x, dtype=np.float64) for k, x in effect.items()}
        weak = ~np.all([x > EFFECT_FLOOR for x in measures.values()], axis=0)  # NaN: no effect
        if weak.any():
            t = int(np.argmax(weak))
            shown = ", ".join(f"{k.replace('_', ' ')} {x[t]:.1e}" for k, x in measures.items())
            return (
                "error",
                t,
                max_res,
                f"the context had no effect on trial {t} ({shown}; floor {EFFECT_FLOOR:.0e}): "
                "the check holds vacuously",
            )
    return ("holds" if max_res <= tolerance else "fails"), worst, max_res, ""


def trial_keys(seed: int, trials: int):
    """Keys ``fold_in(PRNGKey(seed), t)`` for t = 0..trials-1."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda t: jax.random.fold_in(base, t))(jnp.arange(trials))


def residual_function(arch: Architecture, method_name: str, theorem_ids: tuple, shape: TrialShape):
    """``keys [trials, 2] -> {theorem_id: residuals [trials]}`` (vmapped, not yet compiled); with
    ``theorem_ids == (EFFECT,)``: ``{EFFECT: {measure: [trials]}}`` (``displacement`` and, where
    the mixer attends, ``prefix_mass``), what
    the method's context changes on the same trials."""
    method = METHODS[method_name]
    if theorem_ids == (EFFECT,):
        return jax.vmap(
            lambda key: {EFFECT: context_effect(arch, draw_trial(arch, method, key, shape))}
        )
    theorems = [THEOREMS[t] for t in theorem_ids]

    def one(key):
        trial = draw_trial(arch, method, key, shape)
        with shared_runs():  # the theorems share the trial's adapted and base runs
            return {thm.id: thm.check(arch, trial) for thm in theorems}

    return jax.vmap(one)


def groups_function(groups, shape: TrialShape):
    """``keys -> [residuals of each group]`` for (architecture, method, theorem ids) ``groups`` as
    one function (not yet compiled); the groups of one architecture share the base model's draw."""
    fns = [residual_function(ARCHITECTURES[a], m, ids, shape) for a, m, ids in groups]
    return lambda keys: [fn(keys) for fn in fns]


def _select(names, registry):
    """The requested names (all when none), each checked against the registry, in order."""
    if not names:
        return list(registry)
    if isinstance(names, str):
        raise ToolkitError(
            f"run_verify/plan: expected a list of {registry.kind} ids, got the string "
            f"{names!r} (write [{names!r}])"
        )
    for name in names:
        registry.lookup(name)
    return list(dict.fromkeys(names))


def plan(theorems=None, architectures=None, methods=None):
    """The (architecture, method, theorem ids) groups to run, validated against the registries."""
    theorem_ids = _select(theorems, THEOREMS)
    arch_names = _select(architectures, ARCHITECTURES)
    method_names = _select(methods, METHODS)
    groups = []
    for a in arch_names:
        arch = ARCHITECTURES[a]
        if not (theorems or architectures or methods or arch.default_run):
            continue  # checked only when named (make atlas names every architecture)
        defaults = arch.default_methods
        for m in defaults:
            if m not in METHODS:
                raise unknown_name(f"method in default_methods of architecture {a!r}:", m, METHODS)
        for m in method_names:
            if not methods and defaults and m not in defaults:
                continue  # default run: the architecture's representative methods (docs/atlas.md)
            if not METHODS[m].applies(arch):
                continue  # e.g. a KV-prefix on a recurrent model
            ids = tuple(
                t
                for t in theorem_ids
                if m in THEOREMS[t].method_names()
                and THEOREMS[t].applies(arch)
                and (theorems or architectures or THEOREMS[t].in_default_run(arch))
            )
            if ids:
                groups.append((a, m, ids))
    if not groups:
        needs = "; ".join(
            f"{t} needs {', '.join(THEOREMS[t].requires) or 'nothing'}" for t in theorem_ids
        )
        raise ToolkitError(
            f"nothing to run: no theorem among {theorem_ids} applies to architectures "
            f"{arch_names} with methods {method_names} (a theorem applies to architectures with "
            f"the features it requires: {needs})"
        )
    return groups


def by_architecture(groups) -> list[list]:
    """The (architecture, method, theorem ids) groups of :func:`plan`, one list per architecture
    in plan order: the unit compiled as one function and, in a sweep, run once per seed."""
    units: dict = {}
    for group in groups:
        units.setdefault(group[0], []).append(group)
    return list(units.values())


def result_key(r: Result) -> tuple:
    """What identifies a result in a sweep: (model, theorem, method, seed); the model of a random
    trial is its architecture."""
    return (r.architecture, r.theorem, r.method, r.seed)


def unit_keys(unit, seed: int) -> list[tuple]:
    """The :func:`result_key` of every result one (architecture, seed) unit of a sweep gives."""
    return [(a, t, m, seed) for a, m, ids in unit for t in ids]


def check_seeds(seeds) -> list[int]:
    """A non-empty list of distinct ints in [0, 2^32), in the given order (ToolkitError
    otherwise)."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ToolkitError(f"seeds: expected a list of ints in [0, 2^32), got {seeds!r}")
    seeds = list(seeds)
    bad = [
        s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < SEED_BOUND
    ]
    if not seeds or bad:
        shown = bad[:3] if bad else seeds
        raise ToolkitError(
            f"seeds: expected a non-empty list of ints in [0, 2^32), got {shown!r}"
            + (" among others" if len(bad) > 3 else "")
        )
    return list(dict.fromkeys(seeds))


def group_results(group, residuals, trials: int, seed: int, effect=None) -> list[Result]:
    """The Results of one (architecture, method, theorem ids) group from its residuals
    ``{theorem_id: [trials]}``, or from the exception its check raised (error rows).

    ``effect``: the group's context effect ``{EFFECT: {measure: [trials]}}`` measured
    on the same trials (None for a weight update), or the exception measuring it raised."""
    a, m, ids = group
    arch, method = ARCHITECTURES[a], METHODS[m]
    if isinstance(effect, Exception) and not isinstance(residuals, Exception):
        residuals = effect  # the effect could not be measured: no verdict either
    results = []
    if isinstance(residuals, Exception):
        exc = residuals
        first = str(exc).splitlines()[0] if str(exc) else ""
        message = f"the check raised {type(exc).__name__}: {first}"
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
        return results
    effect = None if effect is None else effect[EFFECT]
    smallest = {} if effect is None else {k: float(np.min(x)) for k, x in effect.items()}
    mass = smallest.get("prefix_mass", math.nan)  # nan: not measured (no attention, no context)
    moved = smallest.get("displacement", math.nan)
    for tid in ids:
        thm = THEOREMS[tid]
        verdict, witness, max_res, error = judge(residuals[tid], thm.tolerance, effect)
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
                witness,
                error or reason,
                mass,
                moved,
            )
        )
    return results


def run_verify(
    theorems=None,
    architectures=None,
    methods=None,
    seed: int = 0,
    trials: int = 16,
    shape: TrialShape = TrialShape(),
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    seeds=None,
    mesh=None,
    skip=frozenset(),
    on_rows=None,
) -> list[Result]:
    """Check the selected theorems x architectures x methods on ``trials`` random trials each.

    A sweep: ``seeds`` (a list, replacing ``seed``) runs each (architecture, seed) unit with
    the architecture's function compiled once.  Units whose every :func:`result_key` is in
    ``skip`` are not run (resuming a sweep); ``on_rows(results)`` is called as each unit
    finishes (in order), and the results of the units run are returned.

    ``mesh`` (a :mod:`theory.sharding` mesh) spreads each unit's trials over its devices, each
    device running the same check on its slice of the keys (padded to a multiple of the device
    count; the padding is dropped).

    ``progress(message)``, when given, is told which architecture is being traced and which has
    been checked (the command line shows it on stderr).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ToolkitError(f"trials must be a positive int, got {trials!r}")
    check_index("seed", seed)
    check_shape(shape)
    seed_list = [seed] if seeds is None else check_seeds(seeds)
    skip = frozenset(skip)
    groups = plan(theorems, architectures, methods)
    for a in dict.fromkeys(a for a, _, _ in groups):
        if shape.n + shape.n_p > ARCHITECTURES[a].n_ctx:
            raise ToolkitError(
                f"shape: {shape.n_p} virtual + {shape.n} content positions, but architecture "
                f"{a!r} has n_ctx={ARCHITECTURES[a].n_ctx}"
            )
    say = progress or (lambda message: None)
    if mesh is None:
        keys = trial_keys(seed_list[0], trials)

        def keys_of(s):
            return keys if s == seed_list[0] else trial_keys(s, trials)

        fetch = jax.device_get
    else:
        n_keys = sharding.padded(trials, mesh)

        def keys_of(s):
            return sharding.place_batch(np.asarray(trial_keys(s, n_keys)), mesh)

        def fetch(out):
            return sharding.to_host(out, trials)

        keys = keys_of(seed_list[0])

    def lower(unit):
        fn = groups_function(unit, shape)
        if mesh is not None:
            fn = sharding.over_trials(fn, mesh)
        return jax.jit(fn).lower(keys)

    def compile_lowered(lowered):
        return lowered.compile(compiler_options=FAST_COMPILE)

    def evaluate_alone(group, seed_keys):
        """Residuals of one group, or the exception it raised (isolates a failing group)."""
        try:
            return fetch(compile_lowered(lower([group]))(seed_keys))[0]
        except Exception as exc:
            return exc

    def submit(pool, unit):
        """The unit's compilation, started in ``pool`` (or the exception tracing raised: a
        user-registered variant that cannot run gives error rows, not a crash)."""
        try:
            return pool.submit(compile_lowered, lower(unit))
        except Exception as exc:
            return exc

    def evaluate(unit, item, seed_keys):
        """The outcomes of a unit's groups: residuals, or the exception a group raised."""
        try:
            if isinstance(item, Exception):
                raise item
            return fetch(item.result()(seed_keys))
        except Exception:  # find out which group(s) of the architecture raised
            return [evaluate_alone(group, seed_keys) for group in unit]

    jobs = []  # (unit, its context-effect unit, seeds to run)
    for unit in by_architecture(groups):
        seeds_left = [s for s in seed_list if not set(unit_keys(unit, s)) <= skip]
        # the context's effect (a check on a context that does nothing holds vacuously) is
        # measured on the same trials by a function of its own, so the residuals compile, and
        # round, exactly as they would without it
        effects = [(a, m, (EFFECT,)) for a, m, _ in unit if not METHODS[m].changes_weights]
        if seeds_left:
            jobs.append((unit, effects, seeds_left))
    results: list[Result] = []
    # Python tracing and lowering hold the GIL, so they run here, one architecture at a time,
    # while XLA compiles the architectures already lowered in the worker threads (compilation
    # releases the GIL).  Compiled functions run afterwards, in this thread.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        pending = []
        for k, (unit, effects, _) in enumerate(jobs, 1):
            say(f"verify: tracing {unit[0][0]} ({k}/{len(jobs)})")
            pending.append((submit(pool, unit), submit(pool, effects) if effects else None))
        for k, ((unit, effects, seeds_left), (item, effect_item)) in enumerate(
            zip(jobs, pending, strict=True)
        ):
            say(f"verify: compiling and checking {unit[0][0]} ({k}/{len(jobs)} done)")
            for s in seeds_left:
                seed_keys = keys_of(s)
                outcomes = evaluate(unit, item, seed_keys)
                effect_outcomes = evaluate(effects, effect_item, seed_keys) if effects else []
                effect_of = {
                    (a, m): out for (a, m, _), out in zip(effects, effect_outcomes, strict=True)
                }
                rows = [
                    r
                    for group, residuals in zip(unit, outcomes, strict=True)
                    for r in group_results(
                        group, residuals, trials, s, effect_of.get((group[0], group[1]))
                    )
                ]
                results.extend(rows)
                if on_rows is not None:
                    on_rows(rows)
            say(f"verify: checked {unit[0][0]} ({k + 1}/{len(jobs)})")
    return results


def replay(
    theorem: str,
    architecture: str,
    method: str,
    seed: int,
    trial: int,
    shape: TrialShape = TrialShape(),
    temperature: float | None = None,
) -> float:
    """Recompute one trial's residual (the witness of a reported violation); ``temperature``
    replaces the architecture's inverse temperature (as the property tests draw it)."""
    thm = THEOREMS.lookup(theorem)
    arch, m = ARCHITECTURES.lookup(architecture), METHODS.lookup(method)
    check_index("seed", seed)
    check_index("trial", trial)
    check_shape(shape)
    if temperature is not None:
        arch = arch.replace(temperature=temperature)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), trial)
    return float(thm.check(arch, draw_trial(arch, m, key, shape)))


@dataclass
class ControlResult:
    theorem: str
    control: str
    outcome: str  # what the control must report: "violation" | "holds"
    residuals: list  # one per trial
    ok: bool  # every trial reported the outcome

    def describe(self) -> str:
        shown = ", ".join(f"{r:.2e}" for r in self.residuals)
        error = "" if np.all(np.isfinite(self.residuals)) else " (ERROR: residual is not finite)"
        return (
            f"{self.theorem} / {self.control}: expected {self.outcome}, residuals [{shown}]{error}"
        )


def control_residuals(theorem: Theorem, control: Control, shape: TrialShape = TrialShape()):
    """Residuals ``[trials]`` of ``theorem``'s check (or the control's own check) on the control's
    architecture, method and transformed trials (jitted and vmapped)."""
    arch = control.resolve_architecture()
    method = METHODS.lookup(control.method)
    check = control.check or theorem.check

    def one(key):
        trial = draw_trial(arch, method, key, shape)
        if control.transform is not None:
            trial = control.transform(arch, trial)
        return check(arch, trial)

    keys = trial_keys(control.seed, control.trials)
    compiled = jax.jit(jax.vmap(one)).lower(keys).compile(compiler_options=FAST_COMPILE)
    return np.asarray(jax.device_get(compiled(keys)), dtype=np.float64)


def run_control(theorem: Theorem, control: Control) -> ControlResult:
    """Run one negative control: every trial must report ``control.outcome``."""
    r = control_residuals(theorem, control)
    if control.outcome == "violation":
        ok = bool(np.all(np.isfinite(r)) and np.all(r > VIOLATION))
    else:
        ok = bool(np.all(np.isfinite(r)) and np.all(r <= theorem.tolerance))
    return ControlResult(theorem.id, control.name, control.outcome, r.tolist(), ok)
