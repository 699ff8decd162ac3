"""Training loops (pretraining, fine-tuning, prefix, KV-prefix, LoRA) with optax.

One jitted call runs ``chunk`` Adam steps with ``lax.scan`` over a stack of batches
``[chunk, batch, 20]`` generated in numpy (deterministic in (seed, step), see
:func:`experiments.tasks.make_batch`), which keeps Python overhead off the CPU.
Loss: mean cross-entropy of the 10 output tokens under teacher forcing, computed by
``jax.vmap`` of :func:`theory.model.forward` (float32).

Learning rate (``TrainConfig.schedule``), each after a linear warm-up: cosine decay to 5%
(``"cosine"``, the default); constant (``"constant"``, the companion code's recipe for
LoRA: one learning rate for all 10k iterations); or constant, then cosine decay to 5%
over the last quarter of the steps (``"wsd"``, warm-up/stable/decay: a long plateau is
crossed at the full rate and the result is then consolidated at a small one).  Adam
(``TrainConfig.b2``: its second-moment decay; the companion code's minGPT trainer uses
0.95, which keeps the step size up when the gradients shrink on a loss plateau) with
gradient clipping at global norm 1.
Checkpoints are written every ``ckpt_every`` steps and at the end; a run restarted with
the same settings resumes from its checkpoint (bit-identical data thereafter).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import adapt as adapt_mod
from experiments import checkpoint
from experiments.evaluate import logits_batch
from experiments.tasks import MODEL_LEN, N_DIGITS, check_task, make_batch
from theory.architecture import Architecture
from theory.errors import ToolkitError, unknown_name


@dataclass(frozen=True)
class TrainConfig:
    task: str
    steps: int
    lr: float
    batch: int = 64
    seed: int = 0
    warmup: int = 100
    chunk: int = 50  # Adam steps per jitted call
    ckpt_every: int = 1000  # steps between checkpoints
    schedule: str = "cosine"  # one of SCHEDULES (see the module docstring)
    b2: float = 0.999  # Adam's second-moment decay (the companion code uses 0.95)


SCHEDULES = ("cosine", "constant", "wsd")
WSD_DECAY_SHARE = 0.25  # "wsd": the share of the steps spent decaying


def learning_rate(cfg: TrainConfig):
    """The optax schedule of ``cfg`` (step -> learning rate)."""
    if cfg.schedule not in SCHEDULES:
        raise unknown_name("learning-rate schedule", cfg.schedule, SCHEDULES)
    warmup = min(cfg.warmup, max(cfg.steps // 2, 1))
    if cfg.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, cfg.lr, warmup, max(cfg.steps, warmup + 1), end_value=0.05 * cfg.lr
        )
    elif cfg.schedule == "constant":
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.lr, warmup), optax.constant_schedule(cfg.lr)], [warmup]
        )
    else:
        decay = max(int(WSD_DECAY_SHARE * cfg.steps), 1)
        stable_end = max(cfg.steps - decay, warmup)
        schedule = optax.join_schedules(
            [
                optax.linear_schedule(0.0, cfg.lr, warmup),
                optax.constant_schedule(cfg.lr),
                optax.cosine_decay_schedule(cfg.lr, decay, alpha=0.05),
            ],
            [warmup, stable_end],
        )
    return schedule


def optimizer(cfg: TrainConfig):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate(cfg), b2=cfg.b2))


def loss_fn(trainable, base, arch, adapt, seqs):
    """Mean cross-entropy of the outputs ``seqs[:, 10:]`` given ``seqs [B, 20]``."""
    params, context = adapt_mod.apply(adapt, arch, base, trainable)
    logits = logits_batch(params, arch, context, seqs[:, :MODEL_LEN])[
        :, N_DIGITS - 1 :
    ]  # [B, 10, V]
    return optax.softmax_cross_entropy_with_integer_labels(logits, seqs[:, N_DIGITS:]).mean()


_STEP_CACHE: dict = {}


def _chunk_fn(arch, adapt, cfg):
    key = (arch, adapt, cfg.lr, cfg.steps, cfg.warmup, cfg.schedule, cfg.b2)
    if key not in _STEP_CACHE:
        opt = optimizer(cfg)

        def run_chunk(trainable, opt_state, base, batches):
            def one(carry, seqs):
                tr, st = carry
                loss, grads = jax.value_and_grad(loss_fn)(tr, base, arch, adapt, seqs)
                updates, st = opt.update(grads, st, tr)
                return (optax.apply_updates(tr, updates), st), loss

            (trainable, opt_state), losses = jax.lax.scan(one, (trainable, opt_state), batches)
            return trainable, opt_state, losses

        _STEP_CACHE[key] = (opt, jax.jit(run_chunk))
    return _STEP_CACHE[key]


def settings_of(name, arch, adapt, cfg, base_id) -> dict:
    return {
        "name": name,
        "arch": asdict(arch),
        "adapt": asdict(adapt),
        "train": asdict(cfg),
        "base": base_id,
    }


def train(
    name: str,
    arch: Architecture,
    adapt,
    base,
    cfg: TrainConfig,
    run_dir: str | None = None,
    base_id: str = "",
    fresh: bool = False,
    progress: bool = True,
    init_key=None,
):
    """Train and return ``(trainable, info)``.

    ``base``: the frozen pretrained parameters (for ``pretrain``: the random init).
    ``run_dir``: where ``{name}.npz`` is checkpointed (None: no checkpoints).
    ``info``: n_params, steps, seconds, steps_per_s, final_loss, resumed_from, settings fingerprint.
    """
    check_task(cfg.task)
    adapt_mod.validate(adapt, arch)
    if cfg.steps < 1 or cfg.batch < 1:
        raise ToolkitError(
            f"training needs steps >= 1 and batch >= 1, got steps={cfg.steps}, batch={cfg.batch}"
        )
    key = jax.random.PRNGKey(cfg.seed) if init_key is None else init_key
    trainable = adapt_mod.init_trainable(adapt, arch, base, key)
    opt, run_chunk = _chunk_fn(arch, adapt, cfg)
    opt_state = opt.init(trainable)
    settings = settings_of(name, arch, adapt, cfg, base_id)
    path = os.path.join(run_dir, f"{name}.npz") if run_dir else None
    start = 0
    if path and os.path.exists(path):
        if fresh:
            os.remove(path)
        else:
            (trainable, opt_state), start = checkpoint.load(path, (trainable, opt_state), settings)
    resumed_from = start
    losses = []
    bar = None
    if progress and start < cfg.steps:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.steps, initial=start, desc=name, unit="step", leave=False, mininterval=1.0
        )
    t0 = time.perf_counter()
    step = start
    while step < cfg.steps:
        n = min(cfg.chunk, cfg.steps - step)
        batches = jnp.asarray(
            np.stack([make_batch(cfg.task, cfg.seed, s, cfg.batch) for s in range(step, step + n)])
        )
        trainable, opt_state, chunk_losses = run_chunk(trainable, opt_state, base, batches)
        losses.append(np.asarray(chunk_losses))
        prev, step = step, step + n
        if bar is not None:
            bar.update(n)
            bar.set_postfix(loss=f"{float(losses[-1][-1]):.4f}")
        if path and (step // cfg.ckpt_every != prev // cfg.ckpt_every or step == cfg.steps):
            checkpoint.save(path, (trainable, opt_state), step, settings)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    all_losses = np.concatenate(losses) if losses else np.zeros(0)
    info = {
        "method": adapt.label(),
        "task": cfg.task,
        "n_params": adapt_mod.n_trainable(trainable if adapt.kind != "pretrain" else base),
        "steps": cfg.steps,
        "lr": cfg.lr,
        "batch": cfg.batch,
        "seed": cfg.seed,
        "seconds": round(seconds, 2),
        "resumed_from": resumed_from,
        "steps_per_s": round((cfg.steps - resumed_from) / seconds, 2)
        if seconds > 0 and losses
        else None,
        "final_loss": float(all_losses[-50:].mean()) if all_losses.size else None,
        "fingerprint": checkpoint.fingerprint(settings),
    }
    return trainable, info
