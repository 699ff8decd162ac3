"""Memory per device and wall time of the §3 checks on a model split over 1, 2 and 4 devices.

A random LLaMA-family checkpoint (``save_pretrained`` layout, float32 safetensors; no download)
is written to a temporary folder and loaded through ``interop.hf.load_hf`` in float64 with a
``model=N`` mesh (:mod:`theory.sharding`: attention weights over heads, MLP weights over hidden
units, (un)embedding over the vocabulary).  The check of ``verify --model hf:DIR``
(``interop.checks.context_residuals``: the prefixed and the base runs of every layer, on
random hidden-state prefixes) is compiled for that layout and run.

Each N runs in its own process with ``--xla_force_host_platform_device_count=4`` (forced CPU
devices), so that the process's peak RSS belongs to that configuration.  Figures per N:

* parameter bytes on each device (the shards actually placed),
* XLA's per-device buffer sizes for the compiled check (``memory_analysis``: arguments,
  temporaries, outputs), and the device allocator's peak where the backend reports one (GPU),
* load + placement, compilation, and the median of ``--repeats`` runs, in seconds,
* the largest float64 difference of the residuals from N = 1.

    python benchmarks/bench_scale.py [--layers 4] [--d-model 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVICES = (1, 2, 4)


def write_checkpoint(folder: Path, layers: int, d_model: int, heads: int, vocab: int) -> None:
    """A random LLaMA checkpoint (float32 weights of scale 1/sqrt(fan-in)) in ``folder``."""
    from interop.files import write_safetensors
    from interop.llama import architecture, expected_tensors

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": d_model,
        "intermediate_size": 4 * d_model,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "num_hidden_layers": layers,
        "vocab_size": vocab,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    shapes = expected_tensors(architecture(config, "bench"), config)
    shapes["lm_head.weight"] = (vocab, d_model)
    rng = np.random.default_rng(0)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            tensors["model." * (name != "lm_head.weight") + name] = np.ones(shape, np.float32)
            continue
        scale = 1.0 / np.sqrt(shape[-1])
        value = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
        tensors["model." * (name != "lm_head.weight") + name] = value
    write_safetensors(folder / "model.safetensors", tensors)


def measure(folder: Path, devices: int, repeats: int, out: Path) -> None:
    """One configuration, in this process (run by :func:`main` in a subprocess)."""
    import jax

    import theory
    from theory.distributed import host_device_count, protect_cpu_pool

    theory.configure_jax()
    protect_cpu_pool(host_device_count())  # as the command line does for several CPU devices
    from interop.checks import context_residuals
    from interop.hf import load_hf
    from theory import sharding
    from theory.context import Prefix
    from theory.verify import FAST_COMPILE

    mesh = sharding.make_mesh({"model": devices})
    t0 = time.perf_counter()
    model = load_hf(folder, "float64", mesh=mesh)
    param_bytes = sharding.bytes_per_device(model.params)
    load_s = time.perf_counter() - t0
    arch = model.arch
    rng = np.random.default_rng(1)
    B, n, n_p = 4, 16, 2
    ids = rng.integers(0, arch.d_vocab, (B, n)).astype(np.int32)
    mask = np.ones((B, n), bool)
    states = rng.standard_normal((B, arch.n_layers, n_p, arch.d_model))
    args = (model.params, *sharding.place_batch((Prefix(states), ids, mask), mesh, "batch"))
    t0 = time.perf_counter()
    with jax.default_matmul_precision("highest"):
        lowered = jax.jit(context_residuals, static_argnums=0).lower(arch, *args)
        compiled = lowered.compile(compiler_options=FAST_COMPILE)
    compile_s = time.perf_counter() - t0
    analysis = compiled.memory_analysis()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    residuals = sharding.to_host(result)
    stats = [d.memory_stats() for d in mesh.devices.flat]
    peaks = [s.get("peak_bytes_in_use") for s in stats if s] or None
    record = {
        "devices": devices,
        "platform": mesh.devices.flat[0].platform,
        "n_params": int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(model.params))),
        "param_bytes_per_device": sorted(param_bytes.values()),
        "xla_argument_bytes": getattr(analysis, "argument_size_in_bytes", None),
        "xla_temp_bytes": getattr(analysis, "temp_size_in_bytes", None),
        "xla_output_bytes": getattr(analysis, "output_size_in_bytes", None),
        "device_peak_bytes": peaks,
        "process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "load_s": load_s,
        "compile_s": compile_s,
        "run_s": statistics.median(times),
        "residuals": {k: np.asarray(v).tolist() for k, v in residuals.items()},
    }
    out.write_text(json.dumps(record))


def mib(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", nargs=3, metavar=("FOLDER", "DEVICES", "OUT"))
    args = parser.parse_args()
    if args.measure:
        folder, devices, out = args.measure
        measure(Path(folder), int(devices), args.repeats, Path(out))
        return
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        write_checkpoint(folder, args.layers, args.d_model, args.heads, args.vocab)
        records = []
        for n in DEVICES:
            out = Path(tmp) / f"{n}.json"
            command = [sys.executable, __file__, "--measure", str(folder), str(n), str(out)]
            subprocess.run(command + ["--repeats", str(args.repeats)], env=env, check=True)
            records.append(json.loads(out.read_text()))
    base = records[0]
    print(
        f"## A random LLaMA ({args.layers} layers, d_model {args.d_model}, {args.heads} heads, "
        f"vocabulary {args.vocab}: {base['n_params'] / 1e6:.1f}M parameters, float64) split "
        f"over N {base['platform']} devices, {os.cpu_count()} CPU cores\n"
    )
    print(
        "| N | parameters per device MiB | that x N / N=1 | XLA arguments MiB "
        "| XLA temporaries MiB | XLA outputs MiB | device peak MiB | process peak RSS MiB "
        "| load s | compile s | run s | max diff from N=1 |"
    )
    print("|---:" * 12 + "|")
    for r in records:
        per_device = max(r["param_bytes_per_device"])
        ratio = per_device * r["devices"] / max(base["param_bytes_per_device"])
        diff = max(
            float(np.max(np.abs(np.subtract(r["residuals"][k], base["residuals"][k]))))
            for k in base["residuals"]
        )
        peak = max(r["device_peak_bytes"]) if r["device_peak_bytes"] else None
        print(
            f"| {r['devices']} | {mib(per_device)} | {ratio:.3f} | {mib(r['xla_argument_bytes'])} "
            f"| {mib(r['xla_temp_bytes'])} | {mib(r['xla_output_bytes'])} | {mib(peak)} "
            f"| {mib(r['process_peak_rss_bytes'])} | {r['load_s']:.2f} | {r['compile_s']:.2f} "
            f"| {r['run_s']:.3f} | {diff:.1e} |"
        )
    print(
        "\n`that x N / N=1`: the parameter bytes on the fullest device times N, over the bytes on "
        "one device (1.000 = exactly 1/N each; replicated leaves such as norms push it above 1). "
        "XLA arguments: the per-device inputs of the compiled check (jit drops the parameters "
        "it does not read, e.g. the unembedding)."
    )


if __name__ == "__main__":
    main()
