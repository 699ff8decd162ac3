"""Bad input to the Hugging Face / PEFT interop: one
clear ToolkitError, CLI exit 2, nothing written."""

import json
import shutil
import struct

import numpy as np
import pytest

from cli.main import main
from interop import oracle
from interop.files import read_safetensors, write_safetensors
from interop.hf import load_hf
from interop.peft import read_adapter, write_adapter
from theory.context import KVPrefix, SoftPrompt
from theory.errors import ToolkitError

FX = oracle.FIXTURES


@pytest.fixture
def gpt2_copy(tmp_path):
    shutil.copytree(FX / "gpt2" / "model", tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def adapter_copy(tmp_path):
    shutil.copytree(FX / "gpt2" / "prefix", tmp_path / "adapter")
    return tmp_path / "adapter"


def _edit_config(folder, name="config.json", **changes):
    path = folder / name
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_adapter_for_another_base_names_both_shapes():
    llama = load_hf(FX / "llama" / "model")
    with pytest.raises(ToolkitError) as err:
        read_adapter(FX / "gpt2" / "prefix", llama)
    message = str(err.value)
    assert "(4, 128)" in message and "(4, 64)" in message and "another base model" in message
    assert "\n" not in message


def test_adapter_with_other_layer_count(gpt2_copy):
    _edit_config(gpt2_copy, n_layer=1)
    shutil.copy(FX / "gpt2" / "model" / "model.safetensors", gpt2_copy)  # tensors of 2 layers
    tensors = read_safetensors(gpt2_copy / "model.safetensors")
    write_safetensors(
        gpt2_copy / "model.safetensors", {k: v for k, v in tensors.items() if ".h.1." not in k}
    )
    one_layer = load_hf(gpt2_copy)
    with pytest.raises(ToolkitError, match=r"shape \(4, 128\).*expects \(4, 64\).*n_layers=1"):
        read_adapter(FX / "gpt2" / "prefix", one_layer)


@pytest.mark.parametrize("peft_type", ["LORA", "P_TUNING", "IA3", None])
def test_unsupported_peft_type_lists_the_supported(adapter_copy, peft_type):
    _edit_config(adapter_copy, "adapter_config.json", peft_type=peft_type)
    with pytest.raises(ToolkitError) as err:
        read_adapter(adapter_copy, load_hf(FX / "gpt2" / "model"))
    assert f"unsupported peft_type {peft_type!r}" in str(err.value)
    assert "PREFIX_TUNING, PROMPT_TUNING" in str(err.value)


def test_missing_and_corrupt_adapter_files(adapter_copy):
    model = load_hf(FX / "gpt2" / "model")
    (adapter_copy / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(
        ToolkitError, match=r"adapter_model\.safetensors could not be read as safetensors"
    ):
        read_adapter(adapter_copy, model)
    (adapter_copy / "adapter_model.safetensors").unlink()
    with pytest.raises(ToolkitError, match=r"expected .*adapter_model\.safetensors"):
        read_adapter(adapter_copy, model)
    (adapter_copy / "adapter_config.json").write_text("{not json")
    with pytest.raises(ToolkitError, match=r"adapter_config\.json: expected JSON"):
        read_adapter(adapter_copy, model)
    (adapter_copy / "adapter_config.json").unlink()
    with pytest.raises(ToolkitError, match=r"expected the file .*adapter_config\.json, not found"):
        read_adapter(adapter_copy, model)
    with pytest.raises(ToolkitError, match="adapter folder .* not found"):
        read_adapter(adapter_copy / "nope", model)


def test_adapter_without_prompt_embeddings(adapter_copy):
    write_safetensors(
        adapter_copy / "adapter_model.safetensors", {"lora_A": np.zeros((2, 2), np.float32)}
    )
    with pytest.raises(ToolkitError, match="expected a tensor 'prompt_embeddings'"):
        read_adapter(adapter_copy, load_hf(FX / "gpt2" / "model"))


def test_missing_and_corrupt_model_files(gpt2_copy):
    data = (gpt2_copy / "model.safetensors").read_bytes()
    (gpt2_copy / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(
        ToolkitError, match=r"model\.safetensors could not be read as safetensors.*needs"
    ):
        load_hf(gpt2_copy)
    (gpt2_copy / "model.safetensors").unlink()
    with pytest.raises(ToolkitError, match=r"expected model\.safetensors"):
        load_hf(gpt2_copy)
    (gpt2_copy / "config.json").unlink()
    with pytest.raises(ToolkitError, match="expected config.json"):
        load_hf(gpt2_copy)
    with pytest.raises(ToolkitError, match="model folder .* not found"):
        load_hf(gpt2_copy / "nope")


def test_tensors_not_matching_the_config_name_the_first_one(gpt2_copy):
    _edit_config(gpt2_copy, n_layer=3)
    with pytest.raises(
        ToolkitError, match=r"missing tensor 'h\.2\.ln_1\.weight' \(expected shape \(32,\)"
    ):
        load_hf(gpt2_copy)
    _edit_config(gpt2_copy, n_layer=2, n_inner=64)
    with pytest.raises(
        ToolkitError,
        match=r"tensor 'h\.0\.mlp\.c_fc\.weight' has shape \(32, 128\), expected \(32, 64\)",
    ):
        load_hf(gpt2_copy)
    _edit_config(gpt2_copy, n_inner=None, n_layer=1)
    with pytest.raises(ToolkitError, match=r"unexpected tensors \['h\.1\.attn\.c_attn\.bias'"):
        load_hf(gpt2_copy)


@pytest.mark.parametrize("model_type", ["t5", "mistral", None])
def test_unsupported_model_type_lists_the_supported(gpt2_copy, model_type):
    _edit_config(gpt2_copy, model_type=model_type)
    with pytest.raises(
        ToolkitError, match=f"unsupported model_type {model_type!r}; supported: bert, gpt2, llama"
    ):
        load_hf(gpt2_copy)


@pytest.mark.parametrize(
    "family, changes, message",
    [
        (
            "llama",
            {"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}},
            "RoPE scaling 'llama3'",
        ),
        ("llama", {"hidden_act": "relu"}, "hidden_act 'relu' is not supported"),
        ("llama", {"mlp_bias": True}, "mlp_bias=true is not supported"),
        ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ("gpt2", {"activation_function": "swish"}, "activation_function 'swish'"),
        ("bert", {"position_embedding_type": "relative_key"}, "position_embedding_type='absolute'"),
        ("bert", {"is_decoder": True}, "expected a BERT encoder"),
        ("gpt2", {"n_embd": None}, "missing field 'n_embd'"),
    ],
)
def test_unsupported_config_values(tmp_path, family, changes, message):
    shutil.copytree(FX / family / "model", tmp_path / "m")
    _edit_config(tmp_path / "m", **changes)
    with pytest.raises(ToolkitError, match=message):
        load_hf(tmp_path / "m")


def test_write_adapter_refuses_bad_contexts_and_writes_nothing(tmp_path):
    model = load_hf(FX / "llama" / "model")
    wrong = KVPrefix(np.zeros((2, 4, 3, 8), np.float32), np.zeros((2, 4, 3, 8), np.float32))
    with pytest.raises(ToolkitError, match=r"KV-prefix keys .* expected shape \(2, 2, 3, 8\)"):
        write_adapter(wrong, model, tmp_path / "a")
    with pytest.raises(ToolkitError, match="finite"):
        write_adapter(SoftPrompt(np.full((2, 32), np.nan, np.float32)), model, tmp_path / "a")
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    write_adapter(SoftPrompt(np.zeros((2, 32), np.float32)), model, tmp_path / "a")
    with pytest.raises(ToolkitError, match="exists and is not empty"):
        write_adapter(SoftPrompt(np.ones((2, 32), np.float32)), model, tmp_path / "a")
    assert not read_safetensors(tmp_path / "a" / "adapter_model.safetensors")[
        "prompt_embeddings"
    ].any()


def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys, adapter_copy):
    out = tmp_path / "out"
    _edit_config(adapter_copy, "adapter_config.json", peft_type="LORA")
    cases = [
        (
            [
                "verify",
                "--model",
                f"hf:{FX / 'gpt2' / 'model'}",
                "--adapter",
                str(adapter_copy),
                "--out",
                str(out),
                "--json",
                str(tmp_path / "r.json"),
            ],
            "unsupported peft_type 'LORA'",
        ),
        (
            [
                "inspect",
                "--model",
                f"hf:{FX / 'gpt2' / 'model'}",
                "--adapter",
                str(FX / "llama" / "prefix"),
                "--json",
                str(tmp_path / "i.json"),
                "--png",
                str(tmp_path / "i.png"),
            ],
            "another base model",
        ),
        (
            ["inspect", "--model", "gpt2", "--adapter", str(FX / "gpt2" / "prefix")],
            "expected hf:DIR",
        ),
        (
            [
                "export",
                "--model",
                f"hf:{tmp_path / 'missing'}",
                "--context",
                str(tmp_path / "c.npz"),
                "--out",
                str(out),
            ],
            "model folder",
        ),
        (
            [
                "export",
                "--model",
                f"hf:{FX / 'gpt2' / 'model'}",
                "--context",
                str(tmp_path / "c.npz"),
                "--out",
                str(out),
            ],
            "--context: expected an .npz file",
        ),
        (
            ["verify", "--model", "minilm", "--adapter", str(adapter_copy)],
            "--adapter applies to --model hf:DIR only",
        ),
        (["verify", "--adapter", str(adapter_copy)], "--adapter only applies with --model"),
        (
            ["verify", "--model", f"hf:{FX / 'gpt2' / 'model'}", "--steps", "3"],
            "--steps applies to --model minilm",
        ),
        (
            [
                "inspect",
                "--model",
                f"hf:{FX / 'gpt2' / 'model'}",
                "--adapter",
                str(FX / "gpt2" / "prefix"),
                "--text",
                str(tmp_path / "none.txt"),
            ],
            "--text: expected a text file",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    np.savez(tmp_path / "c.npz", weights=np.zeros(3))
    assert (
        main(
            [
                "export",
                "--model",
                f"hf:{FX / 'gpt2' / 'model'}",
                "--context",
                str(tmp_path / "c.npz"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "expected the arrays of one context" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "c.npz"]  # nothing written


def test_safetensors_reader_agrees_with_the_library_and_reads_bfloat16(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = FX / "llama" / "model" / "model.safetensors"
    ours, theirs = read_safetensors(path), safetensors_numpy.load_file(str(path))
    assert sorted(ours) == sorted(theirs)
    assert all(
        np.array_equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours
    )
    tensors = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.ones(4, np.float32)}
    write_safetensors(tmp_path / "w.safetensors", tensors, {"format": "pt"})
    back = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    assert all(np.array_equal(back[k], tensors[k]) for k in tensors)
    # bfloat16: the top half of a float32, widened exactly
    values = np.array([1.0, -2.5, 3.140625, 0.0], np.float32)
    halves = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "bf16.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + halves)
    assert np.array_equal(read_safetensors(tmp_path / "bf16.safetensors")["x"], values)
