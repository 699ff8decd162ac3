"""Unit tests of the experiments package: data, adaptations, checkpoints, decoding."""

import contextlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import adapt as A
from experiments import checkpoint, tasks
from experiments.evaluate import greedy
from experiments.models import make_arch
from experiments.runner import claim
from experiments.train import TrainConfig, loss_fn, train
from theory import model as model_mod
from theory.errors import ToolkitError
from theory.model import forward
from theory.params import init_params
from theory.tolerances import TOL_F32

ARCH = make_arch("unit-2L2H-d16", 2, 2, 16)


@pytest.fixture(scope="module")
def base():
    return init_params(ARCH, jax.random.PRNGKey(0), dtype=jnp.float32)


# ----------------------------------------------------------------------------- data


def test_task_outputs_by_hand():
    x = np.array([3, 1, 4, 1, 5, 0, 2, 6, 5, 3])
    assert tasks.target("ascending", x).tolist() == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6]
    assert tasks.target("descending", x).tolist() == [6, 5, 5, 4, 3, 3, 2, 1, 1, 0]
    assert tasks.target("add1", x).tolist() == [4, 2, 5, 2, 6, 1, 3, 7, 6, 4]
    assert tasks.target("add2", x).tolist() == [5, 3, 6, 3, 7, 2, 4, 8, 7, 5]
    assert tasks.target("ascending_add1", x).tolist() == [1, 2, 2, 3, 4, 4, 5, 6, 6, 7]
    assert tasks.target("double_hist", x).tolist() == [2, 2, 1, 2, 2, 1, 1, 1, 2, 2]
    xs = np.stack([x] * 5)
    rnd = tasks.target("random", xs, np.arange(5))
    for k, t in enumerate(["ascending", "descending", "add1", "add2", "ascending"]):
        assert rnd[k].tolist() == tasks.target(t, x).tolist()
    assert tasks.target("double_hist", np.zeros(10, int)).max() == 9  # clipped to the vocabulary


def test_split_is_stable_and_quarter():
    x = np.random.default_rng(0).integers(0, 8, (40000, 10))
    share = tasks.is_test(x).mean()
    assert 0.24 < share < 0.26
    # a fixed value: the hash does not depend on the process (unlike Python's hash())
    assert int(tasks.stable_hash(np.array([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1]]))[0]) == int(
        tasks.stable_hash(np.array([[0, 1, 2, 3, 4, 5, 6, 7, 0, 1]]))[0]
    )
    assert (
        tasks.stable_hash(np.array([[0] * 10]))[0]
        != tasks.stable_hash(np.array([[0] * 9 + [1]]))[0]
    )


def test_sampling_split_boosting_determinism():
    b = tasks.make_batch("random", seed=3, step=7, batch=256)
    assert b.shape == (256, 20) and b.dtype == np.int32
    x = b[:, :10]
    assert not tasks.is_test(x).any()
    n_distinct = np.array([len(set(r)) for r in x])
    assert (n_distinct[1::2] <= 5).all()  # odd samples are repeat-boosted
    assert (n_distinct[0::2] > 5).mean() > 0.5  # the others mostly are not
    assert np.array_equal(b, tasks.make_batch("random", seed=3, step=7, batch=256))
    assert not np.array_equal(b, tasks.make_batch("random", seed=3, step=8, batch=256))
    te = tasks.test_inputs(0, 128)
    assert tasks.is_test(te).all()


def test_unknown_task():
    with pytest.raises(ToolkitError, match="unknown task 'sorting'"):
        tasks.target("sorting", np.zeros(10, int))
    with pytest.raises(ToolkitError, match="unknown task"):
        train("x", ARCH, A.Adaptation("pretrain", 1), None, TrainConfig("nope", 10, 1e-3))


# ----------------------------------------------------------------------------- adaptations


def test_impossible_settings():
    with pytest.raises(ToolkitError, match="prefix longer than the context"):
        A.validate(A.Adaptation("prefix", 14), ARCH)
    A.validate(A.Adaptation("prefix", 13), ARCH)
    with pytest.raises(ToolkitError, match="LoRA rank must be an int in \\[1, 16\\]"):
        A.validate(A.Adaptation("lora", 1, rank=17, targets=("mlp",)), ARCH)
    with pytest.raises(ToolkitError, match="unknown LoRA target"):
        A.validate(A.Adaptation("lora", 1, rank=1, targets=("W_X",)), ARCH)
    with pytest.raises(ToolkitError, match="unknown adaptation method"):
        A.validate(A.Adaptation("adapter", 1), ARCH)
    with pytest.raises(ToolkitError, match="n_p must be >= 1"):
        A.validate(A.Adaptation("prefix", 0), ARCH)
    with pytest.raises(ToolkitError, match="unknown LoRA initialisation 'svd'"):
        A.validate(A.Adaptation("lora", 1, rank=1, targets=("mlp",), init="svd"), ARCH)


def test_parameter_counts(base):
    key = jax.random.PRNGKey(1)
    L, d = ARCH.n_layers, ARCH.d_model
    pf = A.init_trainable(A.Adaptation("prefix", 3), ARCH, base, key)
    kv = A.init_trainable(A.Adaptation("kv_prefix", 3), ARCH, base, key)
    lo = A.init_trainable(A.Adaptation("lora", 3, rank=1, targets=("mlp",)), ARCH, base, key)
    lo_attn = A.init_trainable(
        A.Adaptation("lora", 3, rank=2, targets=("W_Q", "W_O")), ARCH, base, key
    )
    assert A.n_trainable(pf) == L * 3 * d
    assert A.n_trainable(lo) == L * 10 * d  # d_mlp = 4 d: equals a prefix with n_p = 10
    assert A.n_trainable(kv) == 2 * L * ARCH.n_heads * 3 * ARCH.d_head
    assert A.n_trainable(lo_attn) == L * 2 * (2 * d + 2 * d)


@pytest.mark.parametrize("d", [16, 24, 40])
def test_lora_row_counts_are_equal_for_any_width(d):
    """The LoRA row: a prefix of N_P_LORA positions and rank-1 LoRA on LORA_TARGETS (W_in, W_out,
    W_O: the companion code's c_fc / c_proj layers) have the same number of parameters, 12 d per
    layer (12,288 at the paper's d = 256, 4 layers)."""
    from experiments.suite import LORA_TARGETS, N_P_LORA

    arch = make_arch(f"count-d{d}", 4, 4, d)
    base = init_params(arch, jax.random.PRNGKey(0), dtype=jnp.float32)
    key = jax.random.PRNGKey(1)
    pf = A.n_trainable(A.init_trainable(A.Adaptation("prefix", N_P_LORA), arch, base, key))
    lo = A.n_trainable(
        A.init_trainable(
            A.Adaptation("lora", N_P_LORA, rank=1, targets=LORA_TARGETS), arch, base, key
        )
    )
    assert pf == lo == 4 * 12 * d
    # negative control: LoRA on the MLP matrices alone has 2 d per layer fewer
    mlp = A.n_trainable(
        A.init_trainable(A.Adaptation("lora", N_P_LORA, rank=1, targets=("mlp",)), arch, base, key)
    )
    assert pf - mlp == 4 * 2 * d


def test_learning_rate_schedules():
    from experiments.train import learning_rate

    def lrs(schedule):
        f = learning_rate(TrainConfig("add1", 1000, 1e-2, warmup=100, schedule=schedule))
        return [float(f(t)) for t in (0, 100, 500, 749, 875, 1000)]

    cos, const, wsd = lrs("cosine"), lrs("constant"), lrs("wsd")
    assert cos[0] == const[0] == wsd[0] == 0.0  # warm-up from 0
    assert const[1:] == pytest.approx([1e-2] * 5)
    assert wsd[1:4] == pytest.approx([1e-2] * 3)  # stable for the first 3/4
    assert 1e-3 < wsd[4] < 9e-3 and wsd[5] == pytest.approx(5e-4)  # then decays to 5%
    assert cos[2] < 1e-2 and cos[5] == pytest.approx(5e-4)
    with pytest.raises(ToolkitError, match="schedule.*'linear'.*cosine"):
        learning_rate(TrainConfig("add1", 10, 1e-2, schedule="linear"))


@pytest.mark.parametrize(
    "adapt",
    [
        A.Adaptation("prefix", 3),
        A.Adaptation("kv_prefix", 3),
        A.Adaptation("lora", 3, rank=2, targets=("mlp", "attn")),
    ],
)
def test_adapted_model_starts_at_the_base_model(base, adapt):
    """Prefixes start at the base model's zero-token states, LoRA at B = 0: same logits."""
    seq = jnp.asarray(tasks.make_batch("ascending", 0, 0, 1)[0, :19])
    ref, _ = forward(base, ARCH, seq, A.zero_prompt(3))
    tr = A.init_trainable(adapt, ARCH, base, jax.random.PRNGKey(2))
    params, ctx = A.apply(adapt, ARCH, base, tr)
    got, _ = forward(A.materialise(params), ARCH, seq, ctx)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=TOL_F32)  # float32 logits
    # negative control: moving the trainables changes the logits
    moved = jax.tree_util.tree_map(
        lambda a: a + jax.random.normal(jax.random.PRNGKey(4), a.shape, a.dtype), tr
    )
    params, ctx = A.apply(adapt, ARCH, base, moved)
    moved_logits = forward(A.materialise(params), ARCH, seq, ctx)[0]
    assert np.abs(np.asarray(moved_logits) - np.asarray(ref)).max() > 1e-2
    # the low-rank products (never forming W + A B) give the same logits as the formed matrices,
    # up to float32 rounding: the two paths sum in different orders (logits of order 1..3)
    fast = forward(params, ARCH, seq, ctx, validate=False)[0]
    np.testing.assert_allclose(np.asarray(fast), np.asarray(moved_logits), atol=TOL_F32)


def test_lora_update_is_low_rank(base):
    adapt = A.Adaptation("lora", 0, rank=1, targets=("W_K",))
    tr = A.init_trainable(adapt, ARCH, base, jax.random.PRNGKey(3))
    tr = jax.tree_util.tree_map(lambda a: a + 1.0, tr)
    params, _ = A.apply(adapt, ARCH, base, tr)
    delta = params["blocks"][0]["attn"]["W_K"] - base["blocks"][0]["attn"]["W_K"]  # [H, d, k]
    fused = np.asarray(jnp.transpose(delta, (1, 0, 2)).reshape(ARCH.d_model, -1))
    s = np.linalg.svd(fused, compute_uv=False)
    assert s[0] > 1e-2 and s[1] < 1e-5 * s[0]


GRAD_ADAPT = A.Adaptation(
    "lora", 3, rank=2, targets=("mlp", "attn"), init="gradient", init_scale=3.0
)
GRAD_CFG = TrainConfig("add1", steps=1, lr=0.0, batch=8)


def _B_gradient_norms(base, tr) -> dict:
    """|dL/dB| per (layer, matrix) at B = 0, through the low-rank path the training step uses
    (not through :func:`A.lora_gradient`)."""
    from experiments.train import GRADIENT_INIT_BATCHES

    seqs = np.concatenate(
        [
            tasks.make_batch(GRAD_CFG.task, GRAD_CFG.seed, s, GRAD_CFG.batch)
            for s in range(GRADIENT_INIT_BATCHES)
        ]
    )
    g = jax.grad(loss_fn)(tr, base, ARCH, GRAD_ADAPT, jnp.asarray(seqs))
    return {
        (l, m): float(jnp.linalg.norm(ab["B"]))
        for l, layer in enumerate(g)
        for m, ab in layer.items()
    }


def _aligned(base):
    from experiments.train import task_gradient

    grads = task_gradient(ARCH, GRAD_ADAPT, base, GRAD_CFG)
    tr = A.init_trainable(GRAD_ADAPT, ARCH, base, jax.random.PRNGKey(2))
    return A.gradient_aligned(GRAD_ADAPT, tr, grads), grads


def _largest_B_gradient(grads, l, m) -> float:
    """The most |dL/dB| = |A^T G| can be over A with orthogonal columns of norm init_scale."""
    sv = np.linalg.svd(A.lora_gradient(grads, m, l), compute_uv=False)
    return GRAD_ADAPT.init_scale * float(np.sqrt((sv[: GRAD_ADAPT.rank] ** 2).sum()))


def test_gradient_aligned_lora_init(base, monkeypatch):
    """init="gradient": B = 0 (the adapted model is the base model), A has orthogonal columns
    of norm init_scale, and B's first gradient is as large as any such A allows, on every
    target (W_Q/W_K/W_V included, whose fused layout differs from the parameters')."""
    tr, grads = _aligned(base)
    norms = _B_gradient_norms(base, tr)
    random_norms = _B_gradient_norms(
        base, A.init_trainable(GRAD_ADAPT, ARCH, base, jax.random.PRNGKey(2))
    )
    for l, layer in enumerate(tr):
        for m, ab in layer.items():
            assert not np.asarray(ab["B"]).any()
            a = np.asarray(ab["A"], np.float64)
            np.testing.assert_allclose(a.T @ a, 9.0 * np.eye(2), atol=1e-5)  # float32 entries
            best = _largest_B_gradient(grads, l, m)
            # float32 gradients: relative 1e-4 (TOL_F32 is stated for values of order 1)
            assert abs(norms[(l, m)] - best) <= 1e-4 * best, (l, m, norms[(l, m)], best)
            assert random_norms[(l, m)] < 0.9 * best  # a random A gets a fraction of it
    # negative control: W_Q's gradient read in the parameters' [heads, d, k] order, not LoRA's
    # fused [d, heads * k], aligns A with the wrong matrix and the check above fails
    right = A.lora_gradient

    def wrong(grads, matrix, layer):
        if matrix != "W_Q":
            return right(grads, matrix, layer)
        g = np.asarray(grads["blocks"][layer]["attn"][matrix], np.float64)
        return g.reshape(g.shape[1], -1)

    monkeypatch.setattr(A, "lora_gradient", wrong)
    bad, _ = _aligned(base)
    bad_norm = _B_gradient_norms(base, bad)[(0, "W_Q")]
    monkeypatch.setattr(A, "lora_gradient", right)
    assert bad_norm < 0.99 * _largest_B_gradient(grads, 0, "W_Q")


def test_heads_fused_layout():
    """W_Q/W_K/W_V [heads, d, k] as LoRA's [d, heads * k]: column h * k + j of row i is
    W[h, i, j], and heads_split inverts it (a plain reshape, the wrong layout, does not)."""
    W = np.arange(3 * 4 * 2, dtype=np.float64).reshape(3, 4, 2)
    M = A.heads_fused(W)
    assert M.shape == (4, 6)
    assert all(M[i, h * 2 + j] == W[h, i, j] for h in range(3) for i in range(4) for j in range(2))
    np.testing.assert_array_equal(A.heads_split(M, W.shape), W)
    np.testing.assert_array_equal(A.heads_split(jnp.asarray(M), W.shape), W)
    assert not np.array_equal(M.reshape(W.shape), W)


def test_training_starts_lora_from_the_gradient_aligned_init(base):
    """train() applies init="gradient" (lr 0: the trained factors are the initial ones)."""
    trained, _ = train("g", ARCH, GRAD_ADAPT, base, GRAD_CFG, None, progress=False)
    expected, _ = _aligned(base)
    for got, want in zip(trained, expected, strict=True):
        for m in got:
            np.testing.assert_array_equal(np.asarray(got[m]["A"]), np.asarray(want[m]["A"]))
    random_adapt = A.Adaptation("lora", 3, rank=2, targets=("mlp", "attn"), init_scale=3.0)
    other, _ = train("r", ARCH, random_adapt, base, GRAD_CFG, None, progress=False)
    assert not np.array_equal(
        np.asarray(other[0]["W_in"]["A"]), np.asarray(trained[0]["W_in"]["A"])
    )


# ----------------------------------------------------------------------------- decoding


def test_greedy_matches_python_loop(base):
    adapt = A.Adaptation("prefix", 3)
    tr = A.init_trainable(adapt, ARCH, base, jax.random.PRNGKey(0))
    tr = {"states": tr["states"] + jax.random.normal(jax.random.PRNGKey(5), tr["states"].shape)}
    x = tasks.test_inputs(0, 2)
    fast = np.asarray(greedy(ARCH, adapt, base, tr, jnp.asarray(x)))
    params, ctx = A.apply(adapt, ARCH, base, tr)
    for b in range(2):
        seq = list(x[b])
        for t in range(10):
            logits, _ = forward(
                params, ARCH, jnp.asarray(seq + [0] * (19 - len(seq)), jnp.int32), ctx
            )
            seq.append(int(jnp.argmax(logits[9 + t])))
        assert fast[b].tolist() == seq[10:]


def test_claim_reports_violations():
    assert claim("x", 0.9, ">=", 0.8)["holds"] and not claim("x", 0.7, ">=", 0.8)["holds"]
    assert claim("x", 0.01, "<=", 0.05)["holds"] and not claim("x", 0.2, "<=", 0.05)["holds"]


# --------------------------------------------------------------------------- training + checkpoints


def test_training_lowers_loss_and_resumes_identically(base, tmp_path):
    adapt = A.Adaptation("prefix", 3)
    cfg = TrainConfig("add1", steps=20, lr=1e-2, chunk=10, ckpt_every=10)
    full, info = train("run", ARCH, adapt, base, cfg, str(tmp_path / "a"), progress=False)
    assert info["final_loss"] is not None and info["n_params"] == 2 * 3 * 16
    seqs = jnp.asarray(tasks.make_batch("add1", 9, 0, 64))
    init = A.init_trainable(adapt, ARCH, base, jax.random.PRNGKey(0))
    assert float(loss_fn(full, base, ARCH, adapt, seqs)) < float(
        loss_fn(init, base, ARCH, adapt, seqs)
    )
    # interrupted after 10 steps, then resumed: same result as uninterrupted
    half = TrainConfig("add1", steps=20, lr=1e-2, chunk=10, ckpt_every=10)
    d = str(tmp_path / "b")
    _train_partial(ARCH, adapt, base, half, d, stop=10)
    resumed, rinfo = train("run", ARCH, adapt, base, half, d, progress=False)
    assert rinfo["resumed_from"] == 10
    # bit-identical: the same steps on the same data, whatever the interruption
    np.testing.assert_array_equal(np.asarray(resumed["states"]), np.asarray(full["states"]))


def test_runner_trains_with_the_budgets_batch(base, tmp_path):
    from experiments.models import Budget
    from experiments.runner import Runner

    r = Runner("quick", out=str(tmp_path), progress=False)
    adapt = A.Adaptation("prefix", 3)
    info = {"fingerprint": "unit"}
    (_, small), (_, default) = (
        r.adapted(ARCH, base, info, adapt, task, Budget(4, 1e-2, batch=b))
        for task, b in (("add1", 8), ("add2", 64))
    )
    assert (small["batch"], default["batch"]) == (8, 64)


def _train_partial(arch, adapt, base, cfg, run_dir, stop):
    """Simulate an interrupted run: write the checkpoint a run would have at step ``stop``."""
    from experiments.train import (
        adam_constants,
        chunk_fn,
        init_opt_state,
        settings_of,
        step_scalars,
    )

    tr = A.init_trainable(adapt, arch, base, jax.random.PRNGKey(cfg.seed))
    state = init_opt_state(tr)
    batches = jnp.asarray(
        np.stack([tasks.make_batch(cfg.task, cfg.seed, s, cfg.batch) for s in range(stop)])
    )
    scalars, constants = step_scalars(cfg, 0, stop), adam_constants(cfg)
    tr, state, _ = chunk_fn(arch, adapt)(tr, state, base, batches, scalars, constants)
    checkpoint.save(
        os.path.join(run_dir, "run.npz"),
        (tr, state),
        stop,
        settings_of("run", arch, adapt, cfg, ""),
    )


def test_lora_init_is_part_of_the_checkpoint_settings(base, tmp_path):
    """A gradient-aligned LoRA run never resumes a random-init checkpoint; a random-init run's
    settings are those of the runs before the init option existed (no "init" field)."""
    from experiments.train import settings_of

    random_adapt = A.Adaptation("lora", 3, rank=2, targets=("mlp", "attn"), init_scale=3.0)
    old = settings_of("g", ARCH, random_adapt, GRAD_CFG, "")["adapt"]
    assert "init" not in old and old["init_scale"] == 3.0
    assert settings_of("g", ARCH, GRAD_ADAPT, GRAD_CFG, "")["adapt"]["init"] == "gradient"
    train("g", ARCH, random_adapt, base, GRAD_CFG, str(tmp_path), progress=False)
    with pytest.raises(ToolkitError, match="belongs to a different run"):
        train("g", ARCH, GRAD_ADAPT, base, GRAD_CFG, str(tmp_path), progress=False)


def test_resumed_lora_run_skips_the_gradient_init(base, tmp_path, monkeypatch):
    """A gradient-aligned run resumed from its checkpoint takes A from the checkpoint and does
    not compute the task gradient again; a fresh run does."""
    import experiments.train as train_mod

    first, _ = train("g", ARCH, GRAD_ADAPT, base, GRAD_CFG, str(tmp_path), progress=False)
    calls = []
    real = train_mod.task_gradient
    monkeypatch.setattr(train_mod, "task_gradient", lambda *a: calls.append(1) or real(*a))
    again, info = train("g", ARCH, GRAD_ADAPT, base, GRAD_CFG, str(tmp_path), progress=False)
    assert calls == [] and info["resumed_from"] == GRAD_CFG.steps
    np.testing.assert_array_equal(
        np.asarray(again[0]["W_in"]["A"]), np.asarray(first[0]["W_in"]["A"])
    )
    train("g", ARCH, GRAD_ADAPT, base, GRAD_CFG, str(tmp_path), fresh=True, progress=False)
    assert calls == [1]


def test_checkpoint_mismatch_and_corruption(base, tmp_path):
    adapt = A.Adaptation("prefix", 3)
    cfg = TrainConfig("add1", steps=20, lr=1e-2, chunk=10)
    d = str(tmp_path)
    train("run", ARCH, adapt, base, cfg, d, progress=False)
    path = os.path.join(d, "run.npz")
    before = open(path, "rb").read()
    with pytest.raises(ToolkitError, match="belongs to a different run.*--fresh"):
        train(
            "run",
            ARCH,
            adapt,
            base,
            TrainConfig("add2", steps=20, lr=1e-2, chunk=10),
            d,
            progress=False,
        )
    assert open(path, "rb").read() == before  # nothing overwritten
    # --fresh replaces it explicitly
    train(
        "run",
        ARCH,
        adapt,
        base,
        TrainConfig("add2", steps=20, lr=1e-2, chunk=10),
        d,
        fresh=True,
        progress=False,
    )
    assert open(path, "rb").read() != before
    with open(path, "wb") as fh:
        fh.write(b"not a checkpoint")
    with pytest.raises(ToolkitError, match="corrupt checkpoint"):
        train(
            "run",
            ARCH,
            adapt,
            base,
            TrainConfig("add2", steps=20, lr=1e-2, chunk=10),
            d,
            progress=False,
        )
    # right settings, wrong shapes
    settings = {"k": 1}
    checkpoint.save(path, {"states": jnp.zeros((2, 3, 16))}, 5, settings)
    with pytest.raises(ToolkitError, match="does not match the model"):
        checkpoint.load(path, {"states": jnp.zeros((2, 2, 16))}, settings)


def _reference_loss(params, ctx, seqs):
    """The training loss written independently of experiments.train: theory.model.forward per
    sequence, cross-entropy of the 10 output predictions."""
    logits = jax.vmap(lambda s: forward(params, ARCH, s, ctx)[0])(seqs[:, :19])[:, 9:]
    return optax.softmax_cross_entropy_with_integer_labels(logits, seqs[:, 10:]).mean()


@contextlib.contextmanager
def _planted_vjp(product, wrong_bwd):
    """Inside the block the custom-VJP function ``product`` differentiates with ``wrong_bwd``.
    The jitted functions the block's un-jitted ``jax.grad(loss_fn)`` goes through, the forward
    passes, are retraced on entry (their caches hold the right rule) and on exit (later tests
    must not see the wrong one); every other cache is kept, so later tests do not recompile."""
    right_fwd, right_bwd = product.fwd, product.bwd
    forwards = (model_mod._forward, model_mod._forward_shared, model_mod._forward_each)
    try:
        product.defvjp(right_fwd, wrong_bwd)
        for f in forwards:
            f.clear_cache()
        yield
    finally:
        product.defvjp(right_fwd, right_bwd)
        for f in forwards:
            f.clear_cache()


@pytest.mark.parametrize("rank", [1, 12])
def test_low_rank_gradients_match_the_formed_matrices(base, rank):
    """LoRA as low-rank products (custom VJP: products with the rank-r factor as the transposed
    operand) has the gradients of the formed ``W + A B``; a wrong VJP is caught."""
    adapt = A.Adaptation("lora", 3, rank=rank, targets=("mlp", "W_O"), scale=0.5)
    tr = A.init_trainable(adapt, ARCH, base, jax.random.PRNGKey(6))
    tr = jax.tree_util.tree_map(lambda a: a + 0.1 * jnp.ones_like(a), tr)  # B != 0
    seqs = jnp.asarray(tasks.make_batch("double_hist", 0, 0, 8))

    def formed_loss(t):
        params, ctx = A.apply(adapt, ARCH, base, t)
        return _reference_loss(A.materialise(params), ctx, seqs)

    fast = jax.grad(loss_fn)(tr, base, ARCH, adapt, seqs)
    formed = jax.grad(formed_loss)(tr)
    leaves = zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(formed), strict=True)
    for f, g in leaves:
        np.testing.assert_allclose(np.asarray(f), np.asarray(g), rtol=1e-4, atol=1e-6)

    # negative control: a VJP that drops the gradient of A disagrees with the formed matrices
    def drop_grad_A(res, dy):
        dx, dA, dB = A._low_rank_bwd(res, dy)
        return dx, 0 * dA, dB

    with _planted_vjp(A.low_rank_product, drop_grad_A):
        wrong = jax.grad(loss_fn)(tr, base, ARCH, adapt, seqs)
    assert (
        np.abs(np.asarray(wrong[0]["W_in"]["A"]) - np.asarray(formed[0]["W_in"]["A"])).max() > 1e-4
    )


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_batched_weight_gradients_match_plain_autodiff(base, kind):
    """The training loss's weight products (one ``x^T dy`` over the whole batch, see
    experiments.batched_product) give the gradients of plain ``x @ W``; a VJP that forgets the
    batch is caught."""
    from experiments import batched_product as bp

    adapt = A.Adaptation(kind, 3)
    seqs = jnp.asarray(tasks.make_batch("double_hist", 0, 0, 8))

    def plain_loss(params):
        return _reference_loss(params, A.base_context(adapt), seqs)

    def max_rel_error(grads):
        """Largest difference over the scale of the gradient (its largest entry): per leaf it
        would divide by rounding noise where the true gradient is zero (``b_K``: a key bias
        shifts all of a query's logits alike)."""
        scale = max(float(np.abs(np.asarray(g)).max()) for g in jax.tree_util.tree_leaves(plain))
        leaves = zip(
            jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(plain), strict=True
        )
        return max(float(np.abs(np.asarray(f) - np.asarray(g)).max()) for f, g in leaves) / scale

    plain = jax.grad(plain_loss)(base)
    assert max_rel_error(jax.grad(loss_fn)(base, base, ARCH, adapt, seqs)) < TOL_F32
    if kind != "pretrain":  # the same products: one negative control covers both kinds
        return

    # negative control: a VJP that takes dW from the first sequence only
    def first_sequence_only(res, dy):
        x, W = res
        dx, _ = bp._product_bwd(res, dy)
        n = x.shape[-2]
        return dx, x.reshape(-1, x.shape[-1])[:n].T @ dy.reshape(-1, dy.shape[-1])[:n]

    with _planted_vjp(bp._product, first_sequence_only):
        wrong = jax.grad(loss_fn)(base, base, ARCH, adapt, seqs)
    assert max_rel_error(wrong) > 1e-2


def test_batched_product_with_a_matrix_per_example():
    """Under vmap with the matrix mapped too, the product is the per-example product."""
    from experiments.batched_product import batched_product

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4))
    W = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
    out, grad = jax.value_and_grad(lambda W: jax.vmap(batched_product)(x, W).sum() ** 2)(W)
    ref, ref_grad = jax.value_and_grad(lambda W: jnp.einsum("bti,bio->bto", x, W).sum() ** 2)(W)
    np.testing.assert_allclose(out, ref, rtol=TOL_F32)
    np.testing.assert_allclose(grad, ref_grad, rtol=TOL_F32)


def test_a_rule_that_ignores_the_per_example_matrices_is_caught():
    """NEGATIVE CONTROL for the test above: a batching rule that multiplies every example by
    the first example's matrix (the shared-matrix rule applied to a mapped one) gives other
    outputs and gradients, and the comparison reports them."""
    from jax.custom_batching import custom_vmap

    from experiments.batched_product import _product

    @custom_vmap
    def wrong(x, W):
        return _product(x, W)

    @wrong.def_vmap
    def _first_matrix_for_all(axis_size, in_batched, x, W):
        return _product(x, W[0] if in_batched[1] else W), True

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4))
    W = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
    out, grad = jax.value_and_grad(lambda W: jax.vmap(wrong)(x, W).sum() ** 2)(W)
    ref, ref_grad = jax.value_and_grad(lambda W: jnp.einsum("bti,bio->bto", x, W).sum() ** 2)(W)
    assert not np.allclose(out, ref, rtol=TOL_F32)
    assert not np.allclose(grad, ref_grad, rtol=TOL_F32)
