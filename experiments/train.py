"""Training loops (pretraining, fine-tuning, prefix, KV-prefix, LoRA) with optax.

One jitted call runs ``chunk`` Adam steps with ``lax.scan`` over a stack of batches
``[chunk, batch, 20]`` generated in numpy (deterministic in (seed, step), see
:func:`experiments.tasks.make_batch`), which keeps Python overhead off the CPU.
Loss: mean cross-entropy of the 10 output tokens under teacher forcing, computed by
:func:`theory.model.forward_batch` (float32; the virtual positions run once per batch, and only
the logits that predict the outputs are formed).

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
from experiments.batched_product import with_batched_weight_gradients
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
    lr_ratio_B: float = 1.0  # LoRA: learning rate of the B factors / that of A (LoRA+)


SCHEDULES = ("cosine", "constant", "wsd")
WSD_DECAY_SHARE = 0.25  # "wsd": the share of the steps spent decaying
END_SHARE = 0.05  # "cosine" and "wsd" decay to this share of the peak rate
B1 = 0.9  # Adam's first-moment decay
EPS = 1e-8  # Adam's epsilon
CLIP_NORM = 1.0  # gradients are clipped to this global norm
# Changes whenever a checkpoint written by an earlier trainer would not resume identically
# (optimiser state layout, step arithmetic); part of every checkpoint's fingerprint.
TRAINER_VERSION = 6
DTYPE = "float32"  # every trained value (parameters, activations, optimiser state)


def _linear(count, start, end, steps):
    frac = 1.0 - np.clip(count, 0, steps) / steps
    return (start - end) * frac + end


def _cosine(count, peak, steps):
    cosine = 0.5 * (1.0 + np.cos(np.pi * np.minimum(count, steps) / steps))
    return peak * ((1.0 - END_SHARE) * cosine + END_SHARE)


def learning_rate(cfg: TrainConfig):
    """The schedule of ``cfg``: step (0-based, array-like) -> learning rate (numpy float64).

    Evaluated on the host in float64 and handed to the jitted steps as float32 numbers,
    so the compiled step holds no float64 value whatever JAX's x64 setting.
    """
    if cfg.schedule not in SCHEDULES:
        raise unknown_name("learning-rate schedule", cfg.schedule, SCHEDULES)
    warmup = min(cfg.warmup, max(cfg.steps // 2, 1))
    lr = cfg.lr

    def schedule(step):
        t = np.asarray(step, np.float64)
        ramp = _linear(t, 0.0, lr, warmup)
        if cfg.schedule == "cosine":
            after = _cosine(t - warmup, lr, max(cfg.steps, warmup + 1) - warmup)
        elif cfg.schedule == "constant":
            after = np.full_like(t, lr)
        else:
            decay = max(int(WSD_DECAY_SHARE * cfg.steps), 1)
            stable_end = max(cfg.steps - decay, warmup)
            after = np.where(t < stable_end, lr, _cosine(t - stable_end, lr, decay))
        return np.where(t < warmup, ramp, after)

    return schedule


def step_scalars(cfg: TrainConfig, start: int, n: int) -> np.ndarray:
    """Per-step numbers ``[n, 3]`` float32 for steps ``start..start+n-1``: the learning rate
    and Adam's bias corrections ``1 - B1^t``, ``1 - b2^t`` (t = step + 1), computed in float64."""
    steps = np.arange(start, start + n, dtype=np.float64)
    return np.stack(
        [
            learning_rate(cfg)(steps),
            1.0 - B1 ** (steps + 1),
            1.0 - cfg.b2 ** (steps + 1),
        ],
        axis=-1,
    ).astype(np.float32)


def adam_constants(cfg: TrainConfig) -> np.ndarray:
    """``[B1, 1 - B1, b2, 1 - b2, lr_ratio_B]`` as float32 (differences taken in float64)."""
    return np.array([B1, 1.0 - B1, cfg.b2, 1.0 - cfg.b2, cfg.lr_ratio_B], np.float32)


def init_opt_state(trainable):
    """Adam's moments ``(mu, nu)``, zeros shaped like the trainables."""
    zeros = jax.tree_util.tree_map(jnp.zeros_like, trainable)
    return zeros, zeros


def _is_B(path) -> bool:
    return str(getattr(path[-1], "key", "")) == "B"


def adam_update(trainable, grads, state, scalars, constants):
    """One clipped-Adam step (optax's ``clip_by_global_norm`` then ``adam``, the same
    arithmetic), all in the trainables' dtype.  ``scalars``: this step's row of
    :func:`step_scalars`; ``constants``: :func:`adam_constants`."""
    grads, _ = optax.clip_by_global_norm(CLIP_NORM).update(grads, optax.EmptyState())
    lr, bc1, bc2 = scalars[0], scalars[1], scalars[2]
    b1, one_minus_b1, b2, one_minus_b2, ratio_B = (constants[i] for i in range(5))
    mu, nu = state
    mu = jax.tree_util.tree_map(lambda g, m: one_minus_b1 * g + b1 * m, grads, mu)
    nu = jax.tree_util.tree_map(lambda g, v: one_minus_b2 * (g * g) + b2 * v, grads, nu)

    def update(path, p, m, v):
        rate = -lr * ratio_B if _is_B(path) else -lr
        return p + rate * ((m / bc1) / (jnp.sqrt(v / bc2) + EPS))

    return jax.tree_util.tree_map_with_path(update, trainable, mu, nu), (mu, nu)


def loss_fn(trainable, base, arch, adapt, seqs):
    """Mean cross-entropy of the outputs ``seqs[:, 10:]`` given ``seqs [B, 20]``."""
    params, context = adapt_mod.apply(adapt, arch, base, trainable)
    if adapt.kind in ("pretrain", "finetune"):
        params = with_batched_weight_gradients(params)
    # the logits that predict the 10 outputs: at positions N_DIGITS - 1 .. MODEL_LEN - 1
    logits = logits_batch(params, arch, context, seqs[:, :MODEL_LEN], MODEL_LEN - N_DIGITS + 1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, seqs[:, N_DIGITS:]).mean()


GRADIENT_INIT_BATCHES = 8  # training batches whose full weight gradient aligns LoRA's A


# the gradient of loss_fn in its first argument, compiled once per (arch, adaptation, shapes)
_loss_gradient = jax.jit(jax.grad(loss_fn), static_argnums=(2, 3))


def task_gradient(arch: Architecture, adapt, base, cfg: TrainConfig):
    """The gradient of the loss with respect to every base parameter, on the first
    :data:`GRADIENT_INIT_BATCHES` batches of the run's own data stream (what LoRA's
    ``init="gradient"`` aligns ``A`` with)."""
    seqs = np.concatenate(
        [make_batch(cfg.task, cfg.seed, s, cfg.batch) for s in range(GRADIENT_INIT_BATCHES)]
    )
    finetune = adapt_mod.Adaptation("finetune", adapt.n_p)
    return _loss_gradient(base, base, arch, finetune, jnp.asarray(seqs))


_STEP_CACHE: dict = {}


def chunk_fn(arch: Architecture, adapt):
    """The jitted ``run_chunk(trainable, opt_state, base, batches, scalars, constants)``:
    ``len(batches)`` Adam steps in one ``lax.scan``; returns ``(trainable, opt_state, losses)``.

    Learning rates and Adam's constants are inputs, so one compiled function serves every
    run of the same model and method.
    """
    key = (arch, adapt)
    if key not in _STEP_CACHE:

        def run_chunk(trainable, opt_state, base, batches, scalars, constants):
            def one(carry, xs):
                tr, st = carry
                seqs, sc = xs
                loss, grads = jax.value_and_grad(loss_fn)(tr, base, arch, adapt, seqs)
                tr, st = adam_update(tr, grads, st, sc, constants)
                return (tr, st), loss

            (trainable, opt_state), losses = jax.lax.scan(
                one, (trainable, opt_state), (batches, scalars)
            )
            return trainable, opt_state, losses

        _STEP_CACHE[key] = jax.jit(run_chunk)
    return _STEP_CACHE[key]


def _adapt_settings(adapt) -> dict:
    """The adaptation's fields, without ``init`` where it is ``"random"``: checkpoints written
    before that field existed trained that way and stay resumable."""
    fields = asdict(adapt)
    if fields.get("init") == "random":
        del fields["init"]
    return fields


def settings_of(name, arch, adapt, cfg, base_id) -> dict:
    return {
        "name": name,
        "trainer": TRAINER_VERSION,
        "dtype": DTYPE,
        "jax": jax.__version__,
        "arch": asdict(arch),
        "adapt": _adapt_settings(adapt),
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
    run_chunk = chunk_fn(arch, adapt)
    opt_state = init_opt_state(trainable)
    constants = jnp.asarray(adam_constants(cfg))
    settings = settings_of(name, arch, adapt, cfg, base_id)
    path = os.path.join(run_dir, f"{name}.npz") if run_dir else None
    start = 0
    if path and os.path.exists(path):
        if fresh:
            os.remove(path)
        else:
            (trainable, opt_state), start = checkpoint.load(path, (trainable, opt_state), settings)
    resumed_from = start
    if start == 0 and adapt.kind == "lora" and adapt.init == "gradient":
        trainable = adapt_mod.gradient_aligned(
            adapt, trainable, task_gradient(arch, adapt, base, cfg)
        )
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
        scalars = jnp.asarray(step_scalars(cfg, step, n))
        trainable, opt_state, chunk_losses = run_chunk(
            trainable, opt_state, base, batches, scalars, constants
        )
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
