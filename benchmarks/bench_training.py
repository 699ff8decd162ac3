"""Training throughput against the machine's matrix-multiply rate, all in ONE run (float32).

For each step kind of the paper's 4-layer 4-head d 256 model (batch 64, ``n_p`` 10:
pretraining, prefix-tuning, rank-1 LoRA on W_in, W_out, W_O) and the 1-layer d 96
pretraining: milliseconds per Adam step, the FLOP model of the step, the achieved
GFLOP/s and its fraction of JAX's own float32 matmul rate (2048 x 2048 matrices)
measured in the same run, and the speed relative to a PyTorch trainer of the same steps
(``bench_companion.py``, 2 threads) timed in the same run when the oracle environment
``.venv-oracle`` exists (``make .venv-oracle/.installed``). The companion code's own figures from
the machine of issue 17 (``COMPANION_MS``) are printed beside them for reference only:
they come from another machine.

A shared CPU inflates wall times, so every kind is timed in rounds that alternate the
kinds (and the matmul), each figure is the best round, and the load average is printed
before and after.  JAX runs with the settings of ``prefix-theory experiment``
(``theory.configure_jax(lapack_pool=False)``: float64 enabled, the XLA CPU scheduler workaround
of :mod:`theory.runtime`, XLA's default thread pool), so the figures are those of the
experiments' own steps; ``--xla-flags`` sets ``XLA_FLAGS`` first, and a flag named there wins
over the workaround (``--xla-flags=--xla_cpu_enable_concurrency_optimized_scheduler=true``
times the steps with XLA's default scheduler).  Compilation is excluded; a round is one
jitted call of ``--chunk`` steps (``lax.scan``, exactly as :mod:`experiments.train` runs
them).

FLOP model (matrix products only, ``N = n_p + 19`` positions, batch ``b``): the forward
pass costs ``F_w = 2 b (N L 12 d^2 + 19 d V)`` in weight products and
``F_a = 4 b L N^2 d`` in attention products.  A step costs ``3 F_w + 3 F_a`` when the
weights are trained (forward, input gradients, weight gradients) and ``2 F_w + 3 F_a``
when they are frozen (prefix, LoRA: no weight gradients), plus LoRA's rank-r products.
That is the arithmetic of a per-sequence forward (the companion code's); the "GFLOP/s"
column divides it by the step time.  The toolkit's batched forward
(:func:`theory.model.forward_batch`) does less (the "done" columns): it runs the ``n_p``
virtual positions once per batch (``b N`` positions become ``19 b + n_p``, ``b N^2`` (query,
key) pairs ``19 b N + n_p^2``), and the loss reads the logits of the last 10 positions only, so
the last block runs W_Q, W_O and the MLP (``10 d^2`` of the ``12 d^2`` per position) and its
queries for those ``10 b`` positions only (the others' results there are unused, and XLA
drops them), as the unembedding.

    .venv/bin/python benchmarks/bench_training.py [--chunk 10] [--rounds 5] [--json FILE]
        [--xla-flags "--xla_cpu_..."] [--torch-python PATH | --no-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE_PYTHON = os.path.join(HERE, os.pardir, ".venv-oracle", "bin", "python")
# the companion PyTorch minGPT code on issue 17's machine (2 threads, batch 64, float32), ms/step
COMPANION_MS = {"pretrain": 279.0, "prefix": 223.0, "lora": 245.0, "pretrain_1L_d96": 16.8}
KINDS = ("pretrain", "prefix", "lora", "pretrain_1L_d96")


def flop_model(arch, n_p: int, batch: int, kind: str, rank: int = 1, shared: bool = False) -> float:
    """FLOPs of one training step (see the module docstring); ``shared``: the arithmetic the
    toolkit's step does (virtual positions once per batch; the last block's queries, output
    projection and MLP only at the 10 outputs)."""
    from experiments.tasks import MODEL_LEN, N_DIGITS

    d, L, V, N = arch.d_model, arch.n_layers, arch.d_vocab, n_p + MODEL_LEN
    n_out = MODEL_LEN - N_DIGITS + 1  # the positions whose logits the loss reads
    if shared:
        rows = MODEL_LEN * batch + n_p  # positions through a block's weights
        last_rows = n_out * batch  # ... through the last block's W_Q, W_O and MLP
        weight_rows = 2 * L * rows + 10 * ((L - 1) * rows + last_rows)  # times d^2
        adapted_rows = (L - 1) * rows + last_rows  # through W_in, W_out, W_O
        scores = (L - 1) * (MODEL_LEN * batch * N + n_p * n_p) + n_out * batch * N
        logit_rows = n_out * batch
    else:
        weight_rows = 12 * L * N * batch
        adapted_rows = L * N * batch
        scores = L * N * N * batch  # (query, key) pairs over all blocks
        logit_rows = MODEL_LEN * batch
    f_w = 2 * (weight_rows * d * d + logit_rows * d * V)
    f_a = 4 * scores * d
    if kind.startswith("pretrain") or kind == "finetune":
        return 3 * f_w + 3 * f_a
    flops = 2 * f_w + 3 * f_a
    if kind == "lora":  # (x A) B on W_in, W_out, W_O: forward 2 products, backward 4
        d_mlp = arch.d_mlp
        per_token = (d + d_mlp) + (d_mlp + d) + (d + d)
        flops += 3 * 2 * adapted_rows * rank * per_token
    return flops


def torch_reference(python: str, spec: dict, chunk: int, rounds: int) -> dict:
    """ms/step of ``bench_companion.py`` on the models of ``spec`` (its module doc) under
    ``python`` (the oracle environment)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "torch.json")
        cmd = [python, os.path.join(HERE, "bench_companion.py"), "--json", out]
        cmd += ["--spec", json.dumps(spec), "--chunk", str(chunk), "--rounds", str(rounds)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as fh:
            return json.load(fh)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=10, help="steps per timed call")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (best one counts)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument(
        "--xla-flags",
        default=None,
        help="XLA_FLAGS for this run, set before JAX; a flag named here wins over "
        "theory.runtime's workaround",
    )
    ap.add_argument(
        "--torch-python",
        default=ORACLE_PYTHON,
        help="python with torch for the PyTorch reference (default: .venv-oracle's)",
    )
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    args = ap.parse_args(argv)
    if not args.no_torch and not os.path.exists(args.torch_python):
        ap.error(
            f"--torch-python: {args.torch_python} does not exist; run "
            "`make .venv-oracle/.installed` (or pass --no-torch)"
        )
    if args.xla_flags is not None:
        os.environ["XLA_FLAGS"] = args.xla_flags
    import theory

    theory.configure_jax(lapack_pool=False)  # as `prefix-theory experiment` runs its steps
    import jax
    import jax.numpy as jnp
    import numpy as np

    from experiments import train as T
    from experiments.adapt import Adaptation, init_trainable, n_trainable
    from experiments.models import N_CTX, make_arch
    from experiments.suite import LORA_TARGETS
    from experiments.tasks import D_VOCAB, MODEL_LEN, N_DIGITS, make_batch
    from theory.params import init_params

    batch, n_p = 64, 10
    big = make_arch("bench-4L4H-d256", 4, 4, 256)
    small = make_arch("bench-1L1H-d96", 1, 1, 96)
    setups = {
        "pretrain": (big, Adaptation("pretrain", n_p)),
        "finetune": (big, Adaptation("finetune", n_p)),
        "prefix": (big, Adaptation("prefix", n_p)),
        "kv_prefix": (big, Adaptation("kv_prefix", n_p)),
        "lora": (big, Adaptation("lora", n_p, rank=1, targets=LORA_TARGETS)),
        "pretrain_1L_d96": (small, Adaptation("pretrain", 1)),
    }
    kinds = args.kinds.split(",")
    for k in kinds:
        if k not in setups:
            sys.exit(f"unknown kind {k!r}; expected some of {', '.join(setups)}")

    cfg = T.TrainConfig(task="random", steps=10**6, lr=1e-3, batch=batch)
    batches = jnp.asarray(np.stack([make_batch("random", 0, s, batch) for s in range(args.chunk)]))
    scalars = jnp.asarray(T.step_scalars(cfg, 0, args.chunk))
    constants = jnp.asarray(T.adam_constants(cfg))
    calls = {}
    for k in kinds:
        arch, adapt = setups[k]
        base = init_params(arch, jax.random.PRNGKey(0), dtype=jnp.float32)
        trainable = init_trainable(adapt, arch, base, jax.random.PRNGKey(1))
        state = T.init_opt_state(trainable)
        fn = T.chunk_fn(arch, adapt)
        t0 = time.perf_counter()
        fn(trainable, state, base, batches, scalars, constants)[2].block_until_ready()
        compile_s = time.perf_counter() - t0
        calls[k] = (
            lambda fn=fn, a=(trainable, state, base, batches, scalars, constants): fn(*a),
            compile_s,
            n_trainable(trainable),
        )

    n = 2048
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    matmul = jax.jit(lambda a, b: a @ b)
    matmul(a, b).block_until_ready()
    an, bn = np.asarray(a), np.asarray(b)

    load_before = load()
    best = {k: float("inf") for k in kinds + ["matmul", "numpy"]}
    spec = {  # the kinds the PyTorch reference implements, with this run's sizes
        "vocab": D_VOCAB,
        "n_ctx": N_CTX,
        "content": MODEL_LEN,
        "outputs": N_DIGITS,
        "kinds": {
            k: [a.kind, arch.n_layers, arch.n_heads, arch.d_model, a.n_p]
            for k in kinds
            for arch, a in [setups[k]]
            if a.kind in ("pretrain", "prefix", "lora")
        },
    }
    reference = {"ms_per_step": {}}
    for i in range(args.rounds):
        if i == args.rounds // 2 and spec["kinds"] and not args.no_torch:  # mid-run
            reference = torch_reference(args.torch_python, spec, args.chunk, args.rounds)
        t0 = time.perf_counter()
        matmul(a, b).block_until_ready()
        best["matmul"] = min(best["matmul"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        an @ bn
        best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
        for k in kinds:
            t0 = time.perf_counter()
            calls[k][0]()[2].block_until_ready()
            best[k] = min(best[k], (time.perf_counter() - t0) / args.chunk)
    load_after = load()

    mm_rate = 2 * n**3 / best["matmul"] / 1e9
    np_rate = 2 * n**3 / best["numpy"] / 1e9
    print(
        f"jax {jax.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {load_after}")
    print(
        f"float32 {n}x{n} matmul: JAX {mm_rate:.0f} GFLOP/s, NumPy {np_rate:.0f} GFLOP/s "
        f"(best of {args.rounds})"
    )
    torch_ms = reference["ms_per_step"]
    for k in torch_ms:  # the adapted steps train the same parameters in both
        if setups[k][1].kind != "pretrain" and reference["n_trainable"][k] != calls[k][2]:
            sys.exit(
                f"PyTorch reference {k!r} trains {reference['n_trainable'][k]} parameters, "
                f"the JAX step {calls[k][2]}: the two benchmarks disagree"
            )
    print(
        f"batch {batch}, chunk {args.chunk}, best of {args.rounds} alternating rounds; "
        + (
            f"PyTorch {reference['torch']} ({reference['threads']} threads, bench_companion.py) "
            "timed in this run"
            if torch_ms
            else "no PyTorch reference in this run"
        )
        + "; companion = the paper's code on issue 17's machine (another machine)"
    )
    header = (
        "| step | GFLOP/step | ms/step | GFLOP/s | of JAX matmul | GFLOP done | done GFLOP/s "
        "| of JAX matmul | PyTorch ms | speed-up | companion ms | speed-up |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    print(header)
    rows = []
    for k in kinds:
        arch, adapt = setups[k]
        gflop = flop_model(arch, adapt.n_p, batch, adapt.kind, adapt.rank) / 1e9
        done = flop_model(arch, adapt.n_p, batch, adapt.kind, adapt.rank, shared=True) / 1e9
        ms = best[k] * 1e3
        rate, done_rate = gflop / best[k], done / best[k]
        comp, ref = COMPANION_MS.get(k), torch_ms.get(k)
        rows.append(
            {
                "kind": k,
                "model": arch.name,
                "gflop_per_step": gflop,
                "ms_per_step": ms,
                "gflop_per_s": rate,
                "fraction_of_matmul": rate / mm_rate,
                "gflop_done_per_step": done,
                "done_gflop_per_s": done_rate,
                "done_fraction_of_matmul": done_rate / mm_rate,
                "torch_ms": ref,
                "speedup_vs_torch": ref / ms if ref else None,
                "companion_ms_issue_machine": comp,
                "compile_s": calls[k][1],
            }
        )
        print(
            f"| {k} ({arch.name}) | {gflop:.2f} | {ms:.1f} | {rate:.0f} | {rate / mm_rate:.0%} | "
            f"{done:.2f} | {done_rate:.0f} | {done_rate / mm_rate:.0%} | "
            f"{f'{ref:.1f}' if ref else '-'} | {f'{ref / ms:.2f}x' if ref else '-'} | "
            f"{comp if comp else '-'} | {f'{comp / ms:.2f}x' if comp else '-'} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "jax": jax.__version__,
                    "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "load_before": load_before,
                    "load_after": load_after,
                    "matmul_gflop_per_s": mm_rate,
                    "numpy_matmul_gflop_per_s": np_rate,
                    "chunk": args.chunk,
                    "rounds": args.rounds,
                    "torch": reference.get("torch"),
                    "rows": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
