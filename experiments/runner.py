"""Shared machinery of the experiments: where runs live, training-or-resuming a model,
and the result record (rows next to the paper's numbers, claims with targets)."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata

import jax
import jax.numpy as jnp

from experiments import adapt as adapt_mod
from experiments.evaluate import accuracies
from experiments.models import Budget, mode_config
from experiments.tasks import test_inputs
from experiments.train import TrainConfig, train
from theory.params import init_params


class Runner:
    """One invocation of ``prefix-theory experiment``: mode, output directory, seed.

    Trained models are checkpointed under ``{out}/checkpoints`` and kept in memory, so
    experiments that share a pretrained model (combine, lora, prefix_attention) train it once.
    """

    def __init__(
        self,
        mode: str = "default",
        out: str | None = None,
        seed: int = 0,
        fresh: bool = False,
        progress: bool = True,
    ):
        self.mode = mode
        self.cfg = mode_config(mode)
        self.out = out or os.path.join("runs", mode)
        self.ckpt_dir = os.path.join(self.out, "checkpoints")
        self.seed = seed
        self.fresh = fresh
        self.progress = progress
        self._models: dict = {}
        self._fresh_done: set = set()
        self.x_test = test_inputs(seed, self.cfg.n_eval)

    def _train(self, name, arch, adapt, base, task, budget: Budget, base_id=""):
        cfg = TrainConfig(
            task=task,
            steps=budget.steps,
            lr=budget.lr,
            batch=budget.batch,
            seed=self.seed,
            schedule=budget.schedule,
            b2=budget.b2,
        )
        fresh = self.fresh and name not in self._fresh_done
        self._fresh_done.add(name)
        return train(
            name,
            arch,
            adapt,
            base,
            cfg,
            self.ckpt_dir,
            base_id=base_id,
            fresh=fresh,
            progress=self.progress,
        )

    def pretrained(self, arch, task: str, budget: Budget, n_p: int):
        """(params, info) of a model pretrained on ``task`` with ``n_p`` zero-token slots."""
        name = f"{arch.name}-pretrain-{task}"
        if name not in self._models:
            init = init_params(arch, jax.random.PRNGKey(self.seed), dtype=jnp.float32)
            params, info = self._train(
                name, arch, adapt_mod.Adaptation("pretrain", n_p), init, task, budget
            )
            self._models[name] = (params, info)
        return self._models[name]

    def adapted(self, arch, base, base_info, adapt, task: str, budget: Budget):
        """(trainable, info) of ``adapt`` trained on ``task`` on top of ``base`` (frozen unless
        finetune)."""
        tag = adapt.kind if adapt.kind != "lora" else f"lora{adapt.rank}-{'+'.join(adapt.targets)}"
        name = (
            f"{arch.name}-{tag}{adapt.n_p if adapt.kind in ('prefix', 'kv_prefix') else ''}-{task}"
        )
        if name not in self._models:
            self._models[name] = self._train(
                name, arch, adapt, base, task, budget, base_id=base_info["fingerprint"]
            )
        return self._models[name]

    def evaluate(self, arch, adapt, base, trainable, tasks) -> dict:
        return accuracies(arch, adapt, base, trainable, self.x_test, tasks)


def row(setting: str, info: dict, accs: dict, paper: dict | None = None, paper_steps=None) -> dict:
    """One table row: what was trained, its parameter count and steps, accuracies (ours and
    paper)."""
    return {
        "setting": setting,
        "method": info.get("method"),
        "trained_on": info.get("task"),
        "n_params": info.get("n_params"),
        "steps": info.get("steps"),
        "paper_steps": paper_steps,
        "batch": info.get("batch"),
        "lr": info.get("lr"),
        "train_seconds": info.get("seconds"),
        "final_loss": info.get("final_loss"),
        "accuracy": accs,
        "paper": paper or {},
    }


def claim(text: str, value: float, op: str, target: float) -> dict:
    """A checked claim: ``value op target`` with op in ('>=', '<=')."""
    holds = value >= target if op == ">=" else value <= target
    return {"claim": text, "value": value, "op": op, "target": target, "holds": bool(holds)}


def _simd() -> str:
    """The widest vector extension the CPU reports (XLA's kernels, and so their rounding,
    depend on it): ``avx512``, ``avx2``, ``avx``, ``neon`` or ``unknown``."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set()
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        return "unknown"
    for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"), ("neon", "asimd")):
        if flag in flags:
            return name
    return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """What the figures depend on besides the code, seed and mode: XLA compiles for the
    host's instruction set, so another CPU (or JAX release) rounds differently, and training
    amplifies any rounding difference into a different trajectory."""
    versions = {}
    for pkg in ("jax", "jaxlib", "optax", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        **versions,
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "simd": _simd(),
        "cores": os.cpu_count(),
        "device": jax.devices()[0].platform,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def timed(fn):
    def wrapper(runner, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(runner, *args, **kwargs)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["mode"] = runner.mode
        result["seed"] = runner.seed
        result["n_eval"] = runner.cfg.n_eval
        result["environment"] = environment()
        return result

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
