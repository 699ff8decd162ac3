"""Throughput of the theorem checks: batched (vmap) vs a plain Python loop over trials,
side by side.

Model: 1 layer, 4 heads, d_model 64 (d_head 16, d_mlp 256), n = 16 content tokens, n_p = 4 prefix
positions, softmax, pre-LN, learned positions; method ``prefix``; the two §3 checks (relative
attention and convex output) per trial, in float64 — what ``prefix-theory verify`` runs per row.

Two workloads, each timed four ways in the same run:

* ``draw+check``: a trial is drawn from its key (a fresh random model, content and prefix: ~55k
  normal draws) and checked — exactly ``verify``'s per-trial work;
* ``check``: the trials are drawn beforehand; only the checks run (the forward pass with the
  prefix, the base block, the residuals).

Ways: ``batched`` = ``jit(vmap(f))`` over all trials in one call (what ``verify --trials T`` does);
``chunked`` = ``jit(lax.map(f, batch_size=B))`` (vmap over chunks of B inside one call: on a CPU the
full vmap's temporaries outgrow the caches); ``loop (jit)`` = the single-trial function compiled
once and called from a Python loop; ``loop (eager)`` = the single-trial function without ``jit``.
Compilation is excluded from throughput (printed separately); each timing is the best of
``--repeats``.  Memory: XLA's compiled memory analysis (arguments + outputs + temporaries), the
device's peak bytes where reported (GPU), and the process's peak RSS.

    python benchmarks/bench_verify.py [--trials 1024] [--loop-trials 256] [--eager-trials 8]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import jax
import jax.numpy as jnp

import theory
from theory.architecture import Architecture
from theory.methods import METHODS
from theory.registry import THEOREMS
from theory.trials import TrialShape, draw_trial
from theory.verify import trial_keys

theory.configure_jax()  # float64 and the XLA CPU workaround, as the command line

ARCH = Architecture(
    name="bench-1L-4H-d64",
    n_layers=1,
    n_heads=4,
    d_model=64,
    d_head=16,
    d_mlp=256,
    d_vocab=32,
    n_ctx=32,
    positional="learned",
    norm="pre",
)
SHAPE = TrialShape(n=16, n_p=4)
THEOREM_IDS = ("relative_attention", "convex_output")
METHOD = METHODS["prefix"]


def draw(key):
    return draw_trial(ARCH, METHOD, key, SHAPE)


def check(trial):
    """Residuals of the checks on one trial (one entry per theorem)."""
    return jnp.stack([THEOREMS[t].check(ARCH, trial) for t in THEOREM_IDS])


def draw_and_check(key):
    return check(draw(key))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def memory_bytes(compiled) -> int | None:
    try:
        m = compiled.memory_analysis()
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # backend without memory analysis
        return None


def mib(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:.1f} MiB"


def index(batch, t):
    return jax.tree_util.tree_map(lambda x: x[t], batch)


def measure(name, fn, batch, args) -> dict:
    """Time ``fn`` over the leading axis of ``batch`` four ways; returns rates (checks/s) and
    memory."""
    n_checks = len(THEOREM_IDS)
    start = time.perf_counter()
    batched = jax.jit(jax.vmap(fn)).lower(batch).compile()
    t_compile = time.perf_counter() - start
    chunked = jax.jit(lambda b: jax.lax.map(fn, b, batch_size=args.chunk)).lower(batch).compile()
    single = jax.jit(fn).lower(index(batch, 0)).compile()
    loop_items = [index(batch, t) for t in range(args.loop_trials)]
    eager_items = loop_items[: args.eager_trials]

    reference = jax.device_get(batched(batch))
    agree = max(
        float(abs(reference - jax.device_get(chunked(batch))).max()),
        max(float(abs(reference[t] - single(loop_items[t])).max()) for t in range(4)),
        max(float(abs(reference[t] - fn(eager_items[t])).max()) for t in range(2)),
    )
    seconds = {
        "batched": (
            args.trials,
            best_of(lambda: jax.block_until_ready(batched(batch)), args.repeats),
        ),
        f"chunked ({args.chunk})": (
            args.trials,
            best_of(lambda: jax.block_until_ready(chunked(batch)), args.repeats),
        ),
        "loop (jit)": (
            args.loop_trials,
            best_of(lambda: [jax.block_until_ready(single(x)) for x in loop_items], args.repeats),
        ),
        "loop (eager)": (
            args.eager_trials,
            best_of(lambda: [jax.block_until_ready(fn(x)) for x in eager_items], 1),
        ),
    }
    rates = {way: trials * n_checks / s for way, (trials, s) in seconds.items()}
    best = max(rates["batched"], rates[f"chunked ({args.chunk})"])
    print(
        f"\n{name}: worst residual {float(reference.max()):.2e} over "
        f"{args.trials} trials (tolerance 1e-10); the four ways agree "
        f"to {agree:.1e}; batched compile {t_compile:.1f} s (excluded)"
    )
    print(f"  {'way':<14}{'trials':>8}{'seconds':>10}{'checks/s':>12}{'best batched / this':>22}")
    for way, (trials, s) in seconds.items():
        print(f"  {way:<14}{trials:>8}{s:>10.4f}{rates[way]:>12.0f}{best / rates[way]:>21.1f}x")
    print(
        f"  memory: batched program {mib(memory_bytes(batched))} "
        f"({mib((memory_bytes(batched) or 0) / args.trials)} per trial), chunked "
        f"{mib(memory_bytes(chunked))}, single-trial {mib(memory_bytes(single))}"
    )
    return {"best": best, **rates}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--trials", type=int, default=1024, help="trials per batched call (default 1024)"
    )
    parser.add_argument(
        "--loop-trials", type=int, default=256, help="trials in the jitted loop (default 256)"
    )
    parser.add_argument(
        "--eager-trials", type=int, default=8, help="trials in the eager loop (default 8)"
    )
    parser.add_argument(
        "--chunk", type=int, default=32, help="trials per chunk of the chunked way (default 32)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timings are the best of this many (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.loop_trials = min(args.loop_trials, args.trials)
    args.eager_trials = min(args.eager_trials, args.loop_trials)

    device = jax.devices()[0]
    print(
        f"device: {device.platform} ({device.device_kind}); model {ARCH.name}: n={SHAPE.n}, "
        f"n_p={SHAPE.n_p}, float64, method prefix, {len(THEOREM_IDS)} checks per trial"
    )
    keys = trial_keys(args.seed, args.trials)
    end_to_end = measure("draw+check (verify's per-trial work)", draw_and_check, keys, args)
    trials = jax.block_until_ready(jax.jit(jax.vmap(draw))(keys))
    check_only = measure("check (trials drawn beforehand)", check, trials, args)

    device_peak = (
        (device.memory_stats() or {}).get("peak_bytes_in_use")
        if hasattr(device, "memory_stats")
        else None
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (
        1 if sys.platform == "darwin" else 1024
    )
    print(f"\nmemory: device peak {mib(device_peak)}; process peak RSS {mib(rss)}")
    target = 50.0
    for name, r in (("draw+check", end_to_end), ("check", check_only)):
        ratios = {loop: r["best"] / r[loop] for loop in ("loop (jit)", "loop (eager)")}
        print(
            f"target batched >= {target:.0f}x a plain loop, {name}: "
            + ", ".join(
                f"vs {loop} {x:.1f}x ({'met' if x >= target else 'NOT met'})"
                for loop, x in ratios.items()
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
