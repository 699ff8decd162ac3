"""verify --model hf:DIR --adapter, inspect and export on the oracle fixtures (no torch)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from cli.interop import model_inputs
from cli.main import main
from interop import oracle
from interop.family import rope_half_to_pairs
from interop.hf import load_hf
from interop.inspect import inspect_adapter
from interop.peft import read_adapter
from theory.context import KVPrefix
from theory.positional import rope_rotate
from theory.tolerances import TOL_F64

FX = oracle.FIXTURES


@pytest.mark.parametrize(
    "family, adapter", [("llama", "prefix"), ("bert", "prompt"), ("gpt2", "prefix_projection")]
)
def test_verify_hf_adapter_every_row_as_expected(tmp_path, capsys, family, adapter):
    argv = [
        "verify",
        "--model",
        f"hf:{FX / family / 'model'}",
        "--adapter",
        str(FX / family / adapter),
    ]
    argv += ["--trials", "2", "--out", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "all verdicts as expected" in out and "UNEXPECTED" not in out
    report = json.loads((tmp_path / "r.json").read_text())["report"]
    assert report["as_expected"] and report["adapter"]["folder"].endswith(adapter)
    rows = {(r["prefix"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {
        (p, d)
        for p in ("random", "adapter", "rank1_WQ (negative control)")
        for d in ("float32", "float64")
    }
    for (prefix, dtype), r in rows.items():
        assert len(r["attention"]) == len(r["output"]) == 2  # every layer
        if prefix.startswith("rank1"):
            assert r["verdict"] == r["expected"] == "fails" and min(r["attention"]) > 1e-2
            continue
        assert r["verdict"] == r["expected"] == "holds"
        assert min(r["mass"]) > 1e-2  # the prefix takes a real share: not vacuous
        if dtype == "float64":
            assert max(r["attention"] + r["output"]) <= TOL_F64
            assert r["unconditional"][0] <= TOL_F64 < r["unconditional"][1]
    assert report["witness"]["changes"] and report["witness"]["layer"] == 1
    assert (
        (tmp_path / "run" / "residuals.txt").read_text().startswith(f"hf:{FX / family / 'model'}")
    )


def test_inspect_json_png_and_the_layer0_statement(tmp_path, capsys):
    text = tmp_path / "inputs.txt"
    text.write_text("The cat sat on the mat.\n\nPrefix tuning!\n")
    argv = [
        "inspect",
        "--model",
        f"hf:{FX / 'llama' / 'model'}",
        "--adapter",
        str(FX / "llama" / "prefix"),
    ]
    argv += [
        "--text",
        str(text),
        "--json",
        str(tmp_path / "i.json"),
        "--png",
        str(tmp_path / "i.png"),
    ]
    assert main(argv) == 0
    assert "largest change of content attention" in capsys.readouterr().out
    result = json.loads((tmp_path / "i.json").read_text())
    assert result["inputs"] == ["The cat sat on the mat.", "Prefix tuning!"] and result["n_p"] == 4
    L, H = result["n_layers"], result["n_heads"]
    for q in ("prefix_mass_mean", "prefix_mass_max", "value_rank", "bias_rank", "content_change"):
        assert np.shape(result[q]) == (L, H)
    assert max(result["content_change"][0]) <= TOL_F64  # layer 0: the theorem
    assert min(result["content_change"][1]) > 1e-3  # deeper: measured, and it moves
    values, biases = np.array(result["value_rank"]), np.array(result["bias_rank"])
    assert (biases <= values).all() and (values <= 4).all() and (values == 4).all()
    mass, top = np.array(result["prefix_mass_mean"]), np.array(result["prefix_mass_max"])
    assert (0 < mass).all() and (mass <= top).all() and (top < 1).all()
    assert (tmp_path / "i.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inspect_sees_a_broken_softmax_at_layer0():
    """Negative control: with the prefix left out of the softmax denominator, layer 0 changes."""
    model = load_hf(FX / "gpt2" / "model", "float64")
    broken = model._replace(arch=model.arch.replace(attention="broken_prefix_denominator"))
    context = read_adapter(FX / "gpt2" / "prefix", model).context
    ids, mask = oracle.inputs()
    good = inspect_adapter(model, context, ids, mask, ["a", "b"])
    bad = inspect_adapter(broken, context, ids, mask, ["a", "b"])
    assert max(good.content_change[0]) <= TOL_F64 < 1e-2 < min(bad.content_change[0])


def test_inspect_span_of_a_rank_one_prefix():
    """Two prefix positions with proportional values span one direction per head."""
    model = load_hf(FX / "llama" / "model", "float64")
    kv = read_adapter(FX / "llama" / "prefix", model).context
    values = kv.values.at[:, :, 1].set(2.0 * kv.values[:, :, 0])
    ids, mask = oracle.inputs()
    result = inspect_adapter(model, KVPrefix(kv.keys, values), ids, mask, ["a", "b"])
    assert np.array(result.value_rank).tolist() == [[3] * 4] * 2
    assert (np.array(result.bias_rank) <= 3).all()


def test_export_cli_round_trips_through_the_reader(tmp_path, capsys):
    model = load_hf(FX / "llama" / "model")
    rng = np.random.default_rng(0)
    keys, values = (rng.normal(size=(2, 2, 3, 8)).astype(np.float32) for _ in range(2))
    np.savez(tmp_path / "kv.npz", keys=keys, values=values)
    argv = [
        "export",
        "--model",
        f"hf:{FX / 'llama' / 'model'}",
        "--context",
        str(tmp_path / "kv.npz"),
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "PREFIX_TUNING, 3 virtual tokens" in capsys.readouterr().out
    back = read_adapter(tmp_path / "a", model).context
    assert np.array_equal(back.keys, keys) and np.array_equal(back.values, values)
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert (config["num_attention_heads"], config["token_dim"], config["num_layers"]) == (2, 16, 2)
    np.savez(tmp_path / "tokens.npz", tokens=np.array([5, 7], np.int32))
    assert main([*argv[:-1], str(tmp_path / "tokens.npz"), "--out", str(tmp_path / "b")]) == 0
    soft = read_adapter(tmp_path / "b", model)
    assert soft.peft_type == "PROMPT_TUNING"
    assert np.array_equal(soft.context.embeddings, model.params["embed"]["W_E"][jnp.array([5, 7])])
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2  # not over an existing adapter
    assert main([*argv, "--out", str(tmp_path / "a"), "--force"]) == 0


def test_rope_permutation_turns_rotate_half_into_pairs():
    """HF's rotate_half RoPE on x equals the toolkit's pair RoPE on x[perm], read back by perm."""
    k, base = 8, 1000.0
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, k))
    positions = np.arange(3, 8)
    inv_freq = 1.0 / base ** (np.arange(0, k, 2) / k)
    angles = positions[:, None] * np.concatenate([inv_freq, inv_freq])[None]  # [N, k]
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    rotated_half = np.concatenate([-x[..., k // 2 :], x[..., : k // 2]], axis=-1)
    hf = x * cos + rotated_half * sin
    perm = rope_half_to_pairs(k)
    ours = np.asarray(rope_rotate(jnp.asarray(x[..., perm]), jnp.asarray(positions), base=base))
    np.testing.assert_allclose(ours, hf[..., perm], atol=1e-12)
    assert not np.allclose(
        np.asarray(rope_rotate(jnp.asarray(x), jnp.asarray(positions), base=base)), hf
    )


def test_inputs_without_tokenizer_are_seeded_random_ids(tmp_path):
    import shutil

    shutil.copytree(FX / "gpt2" / "model", tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").unlink()
    model = load_hf(tmp_path / "m")
    ids, mask, names = model_inputs(model, None, seed=3)
    again, _, _ = model_inputs(model, None, seed=3)
    assert ids.shape == (4, 8) and np.array_equal(ids, again) and not mask[-1].all()
    assert names[0].startswith("random token ids")
    ids, mask, names = model_inputs(load_hf(FX / "gpt2" / "model"), None)
    assert names[0] == "The cat sits on the mat." and mask.sum(1)[0] == len(names[0])
