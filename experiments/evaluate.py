"""Greedy decoding and exact-match accuracy.

Decoding is one jitted ``lax.fori_loop`` of 10 full forward passes over a fixed-shape
buffer ``[19]`` (x then the outputs generated so far, zeros after): the model is
causal, so the zeros to the right of the current step are never seen.  Batches run through
:func:`theory.model.forward_batch` (the virtual positions once per batch).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from experiments import adapt as adapt_mod
from experiments.tasks import MODEL_LEN, N_DIGITS, RANDOM_TASKS, target
from theory.architecture import Architecture
from theory.model import forward_batch


def logits_batch(params, arch: Architecture, context, seqs, n_out: int | None = None):
    """Logits ``[B, n_out, V]`` at the last ``n_out`` positions (default all 19) of sequences
    ``seqs [B, 19]`` (shared context)."""
    return forward_batch(params, arch, seqs, context, n_out=n_out, validate=False)


@partial(jax.jit, static_argnames=("arch", "adapt"))
def greedy(arch: Architecture, adapt, base, trainable, x):
    """Greedy outputs ``[B, 10]`` for inputs ``x [B, 10]`` of the adapted model."""
    params, context = adapt_mod.apply(adapt, arch, base, trainable)
    buf = jnp.concatenate([x, jnp.zeros((x.shape[0], MODEL_LEN - N_DIGITS), x.dtype)], axis=1)
    out = jnp.zeros((x.shape[0], N_DIGITS), x.dtype)

    def step(t, carry):
        buf, out = carry
        logits = logits_batch(params, arch, context, buf)  # [B, 19, V]
        tok = jnp.argmax(
            jax.lax.dynamic_index_in_dim(logits, N_DIGITS - 1 + t, 1, False), -1
        ).astype(x.dtype)
        out = out.at[:, t].set(tok)
        buf = jax.lax.dynamic_update_index_in_dim(
            buf, tok, jnp.minimum(N_DIGITS + t, MODEL_LEN - 1), 1
        )
        return buf, out

    return jax.lax.fori_loop(0, N_DIGITS, step, (buf, out))[1]


def predict(arch, adapt, base, trainable, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Greedy outputs ``[n, 10]`` for inputs ``x [n, 10]`` (in chunks of one compiled shape)."""
    return np.concatenate(
        [
            np.asarray(greedy(arch, adapt, base, trainable, jnp.asarray(x[i : i + chunk])))
            for i in range(0, len(x), chunk)
        ]
    )


def exact_match(preds: np.ndarray, x: np.ndarray, task: str) -> float:
    """Share of inputs whose whole 10-token output equals the task's output.

    For ``random`` an output counts as right if it is right for any of its four tasks
    (the pretraining mixture has no single answer).
    """
    if task == "random":
        ok = np.zeros(len(x), bool)
        for t in RANDOM_TASKS:
            ok |= (preds == target(t, x)).all(-1)
        return float(ok.mean())
    return float((preds == target(task, x)).all(-1).mean())


def accuracies(arch, adapt, base, trainable, x, tasks) -> dict:
    """{task: exact-match accuracy} of one adapted model on each task."""
    preds = predict(arch, adapt, base, trainable, x)
    return {t: exact_match(preds, x, t) for t in tasks}
