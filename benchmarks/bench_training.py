"""Training throughput at the paper's model sizes (docs/theory.md §4), batch 64, float32 on this machine.

For each model: Adam steps per second of pretraining (all weights), of
prefix-tuning (frozen model, hidden-state prefix) and of rank-1 LoRA on the LoRA
row's matrices (W_in, W_out, W_O), measured in ONE run so the ratios are
meaningful on a shared CPU.  Compilation is excluded (one warm-up call);
each measurement is the best of ``--repeats`` timed calls of ``--chunk`` steps
(``lax.scan`` inside one jitted call, exactly as :mod:`experiments.train` runs).

    .venv/bin/python benchmarks/bench_training.py [--chunk 20] [--repeats 2] [--models attn,elicit,combine]
"""

from __future__ import annotations

import argparse
import time

import theory  # noqa: F401  (float64 default; we pass float32 explicitly)
import jax
import jax.numpy as jnp
import numpy as np

from experiments.adapt import Adaptation, init_trainable
from experiments.models import make_arch
from experiments.suite import LORA_TARGETS
from experiments.tasks import make_batch
from experiments.train import TrainConfig, _chunk_fn
from theory.params import init_params

MODELS = {  # paper sizes
    "attn": (lambda: make_arch("bench-attn-1L1H-d96", 1, 1, 96), 1),
    "elicit": (
        lambda: make_arch("bench-elicit-1L4H-d256", 1, 4, 256, ln_before_attention=False),
        1,
    ),
    "combine": (lambda: make_arch("bench-combine-4L4H-d256", 4, 4, 256), 10),
}


def steps_per_second(arch, adapt, chunk: int, repeats: int, batch: int = 64) -> float:
    cfg = TrainConfig(task="random", steps=10**6, lr=1e-3, batch=batch)
    base = init_params(arch, jax.random.PRNGKey(0), dtype=jnp.float32)
    trainable = init_trainable(adapt, arch, base, jax.random.PRNGKey(1))
    opt, run_chunk = _chunk_fn(arch, adapt, cfg)
    state = opt.init(trainable)
    batches = jnp.asarray(np.stack([make_batch("random", 0, s, batch) for s in range(chunk)]))
    trainable, state, losses = run_chunk(trainable, state, base, batches)  # compile + warm up
    losses.block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        trainable, state, losses = run_chunk(trainable, state, base, batches)
        losses.block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return chunk / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="attn,elicit,combine")
    args = ap.parse_args(argv)
    print(
        f"device: {jax.devices()[0].platform}, batch 64, float32, chunk {args.chunk}, best of {args.repeats}"
    )
    print(
        f"{'model':28s} {'pretrain steps/s':>17s} {'prefix steps/s':>15s} {'LoRA steps/s':>13s} "
        f"{'prefix/pretrain':>16s} {'LoRA/pretrain':>14s}"
    )
    for key in args.models.split(","):
        make, n_p = MODELS[key]
        arch = make()
        pre = steps_per_second(arch, Adaptation("pretrain", n_p), args.chunk, args.repeats)
        pf = steps_per_second(arch, Adaptation("prefix", n_p), args.chunk, args.repeats)
        lo = steps_per_second(
            arch, Adaptation("lora", n_p, rank=1, targets=LORA_TARGETS), args.chunk, args.repeats
        )
        print(
            f"{arch.name:28s} {pre:17.1f} {pf:15.1f} {lo:13.1f} {pf / pre:16.2f} {lo / pre:14.2f}"
        )


if __name__ == "__main__":
    main()
