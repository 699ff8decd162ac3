"""Training is float32 end to end: no float64 value anywhere in the compiled steps.

Every step kind (pretrain, finetune, prefix, kv_prefix, lora) and greedy decoding are traced
with JAX's float64 enabled, the hard case: there a NumPy float64 scalar or a Python-int
``jnp.sqrt`` silently promotes float32 arrays to float64.  The jaxprs are walked with every
sub-jaxpr (scan bodies, jitted calls, custom VJPs).  Negative control: a LoRA scale given
as a NumPy float64 scalar plants float64 values, which the walk must find.
"""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train as T
from experiments.adapt import Adaptation, init_trainable
from experiments.evaluate import greedy
from experiments.models import make_arch
from experiments.tasks import make_batch
from theory.params import init_params

ARCH = make_arch("f32-2L2H-d16", 2, 2, 16)
KINDS = {
    "pretrain": Adaptation("pretrain", 2),
    "finetune": Adaptation("finetune", 2),
    "prefix": Adaptation("prefix", 2),
    "kv_prefix": Adaptation("kv_prefix", 2),
    "lora": Adaptation("lora", 2, rank=1, targets=("mlp", "W_O", "W_Q"), scale=2.0),
}


def _sub_jaxprs(value):
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax.extend.core.Jaxpr):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _sub_jaxprs(v)


def float64_values(jaxpr) -> list[str]:
    """Every float64 variable, literal or constant in ``jaxpr`` and its sub-jaxprs."""
    found = []

    def visit(jp):
        for v in list(jp.invars) + list(jp.constvars) + list(jp.outvars):
            if getattr(getattr(v, "aval", None), "dtype", None) == jnp.float64:
                found.append(f"{v} (jaxpr argument/result)")
        for eqn in jp.eqns:
            for v in list(eqn.invars) + list(eqn.outvars):
                if getattr(getattr(v, "aval", None), "dtype", None) == jnp.float64:
                    found.append(f"{eqn.primitive.name}: {v.aval}")
            for param in eqn.params.values():
                for sub in _sub_jaxprs(param):
                    visit(sub)

    visit(jaxpr)
    return found


def _step_jaxprs(adapt, step=True):
    """The jaxprs of 2 training steps (unless not ``step``) and of greedy decoding, traced
    with float64 enabled."""
    with jax.enable_x64(True):
        base = init_params(ARCH, jax.random.PRNGKey(0), dtype=jnp.float32)
        trainable = init_trainable(adapt, ARCH, base, jax.random.PRNGKey(1))
        cfg = T.TrainConfig("double_hist", steps=10, lr=1e-2)
        batches = jnp.asarray(np.stack([make_batch("double_hist", 0, s, 4) for s in range(2)]))
        if step:
            step = jax.make_jaxpr(T.chunk_fn(ARCH, adapt))(
                trainable,
                T.init_opt_state(trainable),
                base,
                batches,
                jnp.asarray(T.step_scalars(cfg, 0, 2)),
                jnp.asarray(T.adam_constants(cfg)),
            ).jaxpr
        decode = jax.make_jaxpr(greedy, static_argnums=(0, 1))(
            ARCH, adapt, base, trainable, batches[0, :, :10]
        )
    return step, decode.jaxpr


@pytest.mark.parametrize("kind", list(KINDS))
def test_training_steps_hold_no_float64(kind):
    step, decode = _step_jaxprs(KINDS[kind])
    assert float64_values(step) == []
    assert float64_values(decode) == []


def test_planted_float64_is_found(monkeypatch):
    """Negative controls: a loss scaled by a NumPy float64 scalar (inside the scan body) and
    a LoRA scale given as one (deep in the jitted forward pass of decoding) are found."""
    loss_fn = T.loss_fn
    monkeypatch.setattr(T, "_STEP_CACHE", {})
    monkeypatch.setattr(T, "loss_fn", lambda *args: loss_fn(*args) * np.float64(1.0))
    step, _ = _step_jaxprs(KINDS["prefix"])
    assert float64_values(step), "a planted float64 constant must show up in the step's jaxpr"
    planted = Adaptation("lora", 2, rank=1, targets=("mlp",), scale=np.float64(2.0))
    _, decode = _step_jaxprs(planted, step=False)
    assert float64_values(decode), "a planted float64 scale must show up in decoding"
