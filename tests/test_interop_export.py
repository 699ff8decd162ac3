"""A toolkit model written as GPT-2 (interop/gpt2_writer.py) and a run of ``prefix-theory
experiment`` exported as GPT-2 + PEFT adapter (experiments/export.py, ``export
--experiment-checkpoint``): read back by the toolkit's own readers, the same logits.

Negative controls: a mis-ordered fused ``c_attn`` tensor, a dropped unembedding bias and
an adapter with its layers swapped all break parity; a model without norms, a LLaMA-style
model, an unfoldable bias and a LoRA run are refused.
"""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import theory
from cli.main import main
from experiments import adapt as adapt_mod
from experiments import checkpoint
from experiments.evaluate import logits_batch
from experiments.export import export_experiment, read_experiment_checkpoint
from experiments.models import make_arch
from experiments.train import TrainConfig, settings_of
from interop.files import write_safetensors
from interop.gpt2_writer import gpt2_tensors, save_gpt2
from interop.hf import load_hf
from interop.peft import read_adapter, write_adapter
from theory.architecture import Architecture
from theory.context import KVPrefix, Prefix
from theory.errors import ToolkitError
from theory.params import init_params
from theory.tolerances import TOL_F64

TOL_PARITY_F32 = 1e-5  # float32 parity with the experiment's own forward
SEQS = np.random.default_rng(0).integers(0, 10, (4, 9)).astype(np.int32)


logits = jax.jit(logits_batch, static_argnums=1)


def max_diff(params_a, arch_a, ctx_a, params_b, arch_b, ctx_b, seqs=SEQS) -> float:
    a = logits(params_a, arch_a, ctx_a, jnp.asarray(seqs))
    b = logits(params_b, arch_b, ctx_b, jnp.asarray(seqs))
    return float(jnp.max(jnp.abs(a - b)))


ARCH = make_arch("export-2L4H-d32", 2, 4, 32)


def random_prefix(arch, dtype, seed=1, n_p=3):
    return Prefix(jax.random.normal(jax.random.PRNGKey(seed), (arch.n_layers, n_p, 32), dtype))


@pytest.mark.parametrize("dtype, tol", [("float64", TOL_F64), ("float32", TOL_PARITY_F32)])
def test_model_round_trip_with_and_without_prefix(tmp_path, dtype, tol):
    params = init_params(ARCH, jax.random.PRNGKey(0), dtype=jnp.dtype(dtype))
    assert float(jnp.max(jnp.abs(params["unembed"]["b_U"]))) > 0.05  # a bias to fold
    saved = save_gpt2(params, ARCH, tmp_path / "model")
    assert saved.folded_bias and not saved.tied and saved.fold_residual <= TOL_F64
    model = load_hf(tmp_path / "model", dtype)
    assert model.arch.replace(name=ARCH.name, description="") == ARCH.replace(description="")
    diff = max_diff(params, ARCH, None, model.params, model.arch, None)
    prefix = random_prefix(ARCH, dtype)
    write_adapter(prefix, model, tmp_path / "adapter", dtype=dtype)
    context = read_adapter(tmp_path / "adapter", model, dtype).context
    prefixed = max_diff(params, ARCH, prefix, model.params, model.arch, context, SEQS[:, :6])
    print(f"{dtype}: logits {diff:.1e}, with the exported prefix {prefixed:.1e}")
    assert diff <= tol and prefixed <= tol
    # the prefix changes the logits: the comparison with it is not the one without it
    assert max_diff(params, ARCH, prefix, params, ARCH, None, SEQS[:, :6]) > 1e-2


def test_tied_embeddings_write_no_lm_head(tmp_path):
    params = init_params(ARCH, jax.random.PRNGKey(2), dtype=jnp.float64)
    W_E = params["embed"]["W_E"]
    params["unembed"] = {"W_U": W_E.T, "b_U": jnp.zeros(ARCH.d_vocab)}
    saved = save_gpt2(params, ARCH, tmp_path / "model")
    assert saved.tied and not saved.folded_bias and saved.config["tie_word_embeddings"]
    model = load_hf(tmp_path / "model", "float64")
    assert max_diff(params, ARCH, None, model.params, model.arch, None) <= TOL_F64


def test_negative_controls_break_parity(tmp_path):
    """Mis-ordered fused c_attn (K before Q) and a dropped unembedding bias: far off."""
    params = init_params(ARCH, jax.random.PRNGKey(0), dtype=jnp.float64)
    tensors, _ = gpt2_tensors(params, ARCH)
    name = "transformer.h.0.attn.c_attn.weight"
    q, k, v = np.split(tensors[name], 3, axis=1)
    tensors[name] = np.concatenate([k, q, v], axis=1)
    save_gpt2(params, ARCH, tmp_path / "model")
    write_safetensors(tmp_path / "model" / "model.safetensors", tensors, {"format": "pt"})
    model = load_hf(tmp_path / "model", "float64")
    assert max_diff(params, ARCH, None, model.params, model.arch, None) > 1e-3
    no_bias = dict(params, unembed=dict(params["unembed"], b_U=jnp.zeros(ARCH.d_vocab)))
    save_gpt2(no_bias, ARCH, tmp_path / "nobias")
    model = load_hf(tmp_path / "nobias", "float64")
    assert max_diff(params, ARCH, None, model.params, model.arch, None) > 1e-2


def test_unrepresentable_models_are_refused(tmp_path, without_runtime_typecheck):
    elicit = make_arch("elicit-like", 1, 4, 32, ln_before_attention=False)
    llama = theory.ARCHITECTURES["llama"]
    for arch, words in [
        (elicit, "norm: GPT-2 has 'pre', got 'none'"),
        (llama, "positional: GPT-2 has 'learned', got 'rope'"),
    ]:
        params = init_params(arch, jax.random.PRNGKey(0))
        with pytest.raises(ToolkitError, match="cannot be written as a GPT-2") as err:
            save_gpt2(params, arch, tmp_path / arch.name)
        assert words in str(err.value)
    narrow = Architecture("narrow", 1, 2, 8, 4, 32, d_vocab=10, n_ctx=16, mlp_act="gelu_tanh")
    params = init_params(narrow, jax.random.PRNGKey(0))  # W_U [8, 10]: rank 8 < 10
    with pytest.raises(ToolkitError, match="cannot be folded"):
        save_gpt2(params, narrow, tmp_path / "narrow")
    with pytest.raises(ToolkitError, match="no unembedding"):
        save_gpt2(
            init_params(ARCH, jax.random.PRNGKey(0)), ARCH, tmp_path / "m", unembed_bias="refuse"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


# --- experiment checkpoints -------------------------------------------------------------------

N_P = 3


def save_run(folder: Path, name, arch, adapt, trainable, base_id="", steps=5):
    """A checkpoint as experiments.train writes it (same settings, same file layout)."""
    cfg = TrainConfig(task="ascending", steps=steps, lr=1e-2)
    settings = settings_of(name, arch, adapt, cfg, base_id)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, trainable)
    checkpoint.save(str(folder / f"{name}.npz"), (trainable, (zeros, zeros)), steps, settings)
    return checkpoint.fingerprint(settings)


def noisy(tree, seed, scale=0.5):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef,
        [
            x + scale * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ],
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pretrained base, a prefix, a KV-prefix and a LoRA run on it, float32 as trained."""
    folder = tmp_path_factory.mktemp("run") / "checkpoints"
    arch = ARCH
    base = init_params(arch, jax.random.PRNGKey(3), dtype=jnp.float32)
    base_id = save_run(
        folder, f"{arch.name}-pretrain-random", arch, adapt_mod.Adaptation("pretrain", N_P), base
    )
    names = {}
    for seed, adapt in enumerate(
        [
            adapt_mod.Adaptation("prefix", N_P),
            adapt_mod.Adaptation("kv_prefix", N_P),
            adapt_mod.Adaptation("lora", N_P, rank=1, targets=("mlp",)),
        ]
    ):
        trainable = noisy(adapt_mod.init_trainable(adapt, arch, base, jax.random.PRNGKey(0)), seed)
        name = f"{arch.name}-{adapt.kind}-ascending"
        save_run(folder, name, arch, adapt, trainable, base_id)
        names[adapt.kind] = folder / f"{name}.npz"
    names["pretrain"] = folder / f"{arch.name}-pretrain-random.npz"
    return names


@pytest.mark.parametrize("kind", ["prefix", "kv_prefix", "pretrain"])
def test_experiment_export_matches_the_experiment_forward(runs, tmp_path, kind):
    record = export_experiment(runs[kind], tmp_path / "out")
    run = read_experiment_checkpoint(runs[kind])
    model = load_hf(tmp_path / "out" / "model", "float32")
    adapter = read_adapter(tmp_path / "out" / "adapter", model)
    seqs = np.random.default_rng(5).integers(0, 10, (8, 19)).astype(np.int32)
    diff = max_diff(
        run.params, run.arch, run.context, model.params, model.arch, adapter.context, seqs
    )
    print(f"{kind}: exported vs experiment max |logit diff| {diff:.1e} (float32)")
    assert diff <= TOL_PARITY_F32
    assert record["parity"]["max_abs_logit_diff_float32"] <= TOL_PARITY_F32
    assert record["peft_type"] == ("PROMPT_TUNING" if kind == "pretrain" else "PREFIX_TUNING")
    config = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())
    assert config["num_virtual_tokens"] == N_P and config["task_type"] == "CAUSAL_LM"
    # negative controls: the base model without its context, and the layers swapped
    assert max_diff(run.params, run.arch, run.context, model.params, model.arch, None, seqs) > 1e-3
    if kind != "pretrain":
        ctx = adapter.context
        swapped = KVPrefix(ctx.keys[::-1], ctx.values[::-1])
        far = max_diff(run.params, run.arch, run.context, model.params, model.arch, swapped, seqs)
        assert far > 1e-3


def test_export_cli(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", "--experiment-checkpoint", str(runs["prefix"]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PREFIX_TUNING" in text and "parity" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter",
        "export.json",
        "model",
        "reference.npz",
    ]
    assert json.loads((out / "export.json").read_text())["base_checkpoint"] == str(runs["pretrain"])


def test_export_cli_usage_errors_write_nothing(runs, tmp_path, capsys):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / runs["prefix"].name).write_bytes(runs["prefix"].read_bytes())
    elicit = make_arch("elicit-like", 1, 4, 32, ln_before_attention=False)
    save_run(
        tmp_path,
        "elicit-pretrain",
        elicit,
        adapt_mod.Adaptation("pretrain", N_P),
        init_params(elicit, jax.random.PRNGKey(0), dtype=jnp.float32),
    )
    full = tmp_path / "full"
    full.mkdir()
    (full / "kept.txt").write_text("keep")
    ck = str(runs["prefix"])
    cases = [
        (["--experiment-checkpoint", ck, "--model", "hf:x"], "expected no --model"),
        (["--base", ck], "--base applies to --experiment-checkpoint only"),
        ([], "expected --model hf:DIR and --context"),
        (["--experiment-checkpoint", str(runs["lora"])], "'lora' run"),
        (["--experiment-checkpoint", str(lonely / runs["prefix"].name)], "pass --base"),
        (["--experiment-checkpoint", ck, "--base", str(runs["lora"])], "is not the model"),
        (["--experiment-checkpoint", str(tmp_path / "elicit-pretrain.npz")], "got 'none'"),
        (["--experiment-checkpoint", str(tmp_path / "none.npz")], "not found"),
    ]
    for extra, message in cases:
        out = tmp_path / "out"
        assert main(["export", *extra, "--out", str(out)]) == 2, extra
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert message in err, (extra, err)
        assert not out.exists(), extra
    assert main(["export", "--experiment-checkpoint", ck, "--out", str(full)]) == 2
    assert sorted(p.name for p in full.iterdir()) == ["kept.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


ORACLE = Path(__file__).parent / "fixtures" / "hf" / "experiment_prefix"


def test_exported_experiment_prefix_matches_transformers_and_peft():
    """The committed export of a trained ``new_attention --quick`` prefix, run by transformers +
    PEFT when it was recorded (``make oracle-fixtures``: oracle.npz), against the toolkit reading
    the same files; without the adapter both sides must move far (negative control)."""
    model = load_hf(ORACLE / "model", "float32")
    adapter = read_adapter(ORACLE / "adapter", model)
    oracle, ids = np.load(ORACLE / "oracle.npz"), np.load(ORACLE / "reference.npz")["ids"]
    run = jax.jit(logits_batch, static_argnums=1)
    prefixed = run(model.params, model.arch, adapter.context, jnp.asarray(ids))
    plain = run(model.params, model.arch, None, jnp.asarray(ids))
    assert float(jnp.max(jnp.abs(prefixed - oracle["peft_logits"]))) <= TOL_PARITY_F32
    assert float(jnp.max(jnp.abs(plain - oracle["plain_logits"]))) <= TOL_PARITY_F32
    assert float(jnp.max(jnp.abs(plain - oracle["peft_logits"]))) > 1e-3


def test_written_files_are_readable_by_others(tmp_path):
    """Files are written through a private temporary file (mkstemp: 0600); the result is a
    shared checkpoint, 0644."""
    from interop.files import write_bytes

    write_bytes(tmp_path / "x.bin", b"data")
    assert (tmp_path / "x.bin").stat().st_mode & 0o777 == 0o644
