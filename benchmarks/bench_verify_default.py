"""Wall time of the default ``prefix-theory verify`` (target: 60 s on 2 cores, compilation
included), and what the compile strategy buys, measured in one run.

Part 1 runs the command as a fresh process ``--runs`` times (imports, tracing, XLA compilation
and the checks: what a user waits for) and prints each wall time and the process's CPU use.

Part 2 takes the default plan apart in this process, single-threaded, and sums over all of it:
Python tracing + lowering, XLA compile CPU seconds and run time, for three strategies:

* ``per method``: one compiled function per (architecture, method), backend optimisation off
  (the strategy before 2026-11-28);
* ``per architecture``: all methods of an architecture in one function (their trials share the
  base model's draw);
* ``per architecture, no fusion emitters``: what ``theory.verify`` compiles
  (``theory.verify.FAST_COMPILE``).

    python benchmarks/bench_verify_default.py [--runs 3] [--skip-strategies]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import jax

import theory
from theory.trials import TrialShape
from theory.verify import FAST_COMPILE, by_architecture, groups_function, plan, trial_keys

theory.configure_jax()  # float64 and the XLA CPU workaround, as the command line

STRATEGIES = {
    "per method": (False, {"xla_backend_optimization_level": 0}),
    "per architecture": (True, {"xla_backend_optimization_level": 0}),
    "per architecture, no fusion emitters": (True, FAST_COMPILE),
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_command(runs: int) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "prefix-theory")
    command = (
        [exe, "verify"] if os.path.exists(exe) else [sys.executable, "-m", "cli.main", "verify"]
    )
    print(f"## `prefix-theory verify` as a fresh process, {os.cpu_count()} CPU cores\n")
    print("| run | wall s | CPU s (children) | exit | last line |")
    print("|---:|---:|---:|---:|---|")
    for i in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        summary = [line for line in proc.stdout.splitlines() if "verdicts as expected" in line]
        print(
            f"| {i + 1} | {wall:.1f} | {cpu:.1f} | {proc.returncode} "
            f"| {summary[0] if summary else proc.stderr[-200:]} |"
        )


def time_strategies() -> None:
    keys = trial_keys(0, 16)
    shape = TrialShape()
    by_arch = by_architecture(plan())
    print(
        "\n## Compile strategies over the default plan "
        f"({sum(map(len, by_arch))} (architecture, method) groups, "
        f"{len(by_arch)} architectures), single-threaded, one process\n"
    )
    print("| strategy | functions | trace+lower s | compile CPU s | run s |")
    print("|---|---:|---:|---:|---:|")
    totals = {}
    for name, (merged, options) in STRATEGIES.items():
        units = by_arch if merged else [[g] for gs in by_arch for g in gs]
        lower_s = compile_s = run_s = 0.0
        for unit in units:
            t0 = time.perf_counter()
            lowered = jax.jit(groups_function(unit, shape)).lower(keys)
            t1 = time.perf_counter()
            c0 = _cpu_seconds()
            compiled = lowered.compile(compiler_options=options)
            compile_s += _cpu_seconds() - c0
            t2 = time.perf_counter()
            jax.device_get(compiled(keys))
            run_s += time.perf_counter() - t2
            lower_s += t1 - t0
        totals[name] = compile_s
        print(f"| {name} | {len(units)} | {lower_s:.1f} | {compile_s:.1f} | {run_s:.1f} |")
    first = next(iter(totals))
    print(
        "\nCompile CPU relative to per method: "
        + ", ".join(f"{name} {value / totals[first]:.2f}x" for name, value in totals.items())
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-strategies", action="store_true")
    args = parser.parse_args(argv)
    time_command(args.runs)
    if not args.skip_strategies:
        time_strategies()


if __name__ == "__main__":
    main()
