"""The external oracle: Hugging Face transformers + PEFT on tiny random models (tests/fixtures/hf/).

Runs in its own virtual environment (``make oracle-fixtures`` creates ``.venv-oracle`` with
CPU torch, transformers and peft; the toolkit itself never imports torch).  Two phases:

``models OUT``
    For each family (gpt2, llama, bert) build a tiny model from a config, draw every weight
    again from a seeded generator (HF's default initialisation is so small that attention
    would be nearly uniform and a wrong logit scale would go unnoticed), and save it with
    ``save_pretrained`` (``config.json`` + ``model.safetensors``) next to a character-level
    ``tokenizer.json``.  Attach random PEFT adapters (prefix tuning, prefix tuning with
    ``prefix_projection``, prompt tuning), save each with ``save_pretrained``, load it back
    with ``PeftModel.from_pretrained`` (what a user runs) and record, for a fixed padded
    batch, in float32 and float64: logits, hidden states per layer, attention probabilities
    including the prefix columns (eager attention).  Writes ``OUT/<family>/outputs.npz``.

``roundtrip OUT``
    Load the adapters that the toolkit wrote into ``OUT/<family>/toolkit_*`` (made between
    the two phases by ``scripts/hf_roundtrip_adapters.py`` in the toolkit's venv) with
    ``PeftModel.from_pretrained`` and record the same outputs in
    ``OUT/<family>/roundtrip_outputs.npz``.

``OUT/manifest.json`` records the package versions, seeds, texts, token ids and what each
recorded array means.

Array names in the npz files: ``<adapter>/<dtype>/<quantity>`` with quantity
``logits [B, n_out, V]``, ``hidden [L+1, B, n_out, d]`` (``output_hidden_states``) and
``attentions [L, B, H, n_q, n_k]`` (``output_attentions``); ``n_out = n_q`` is ``n`` for
prefix tuning and no adapter, ``n_p + n`` for prompt tuning; ``n_k = n_p + n`` whenever an
adapter is attached.  BERT has no language-model head: its ``logits`` are the last hidden
state times the word embeddings transposed (the toolkit's tied unembedding of an encoder).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import peft
import safetensors
import tokenizers
import torch
import transformers
from peft import PeftModel, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from tokenizers import Regex, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

SEED = 1234
TEXTS = ["Prefix tuning!", "A cat sat."]  # a padded batch: the second is shorter
VOCAB = ["[PAD]", "[UNK]"] + [chr(c) for c in range(32, 127)]  # 97 ids, [PAD] = 0
N_CTX = 64

CONFIGS = {
    "gpt2": (
        GPT2LMHeadModel,
        "CAUSAL_LM",
        lambda: GPT2Config(
            vocab_size=len(VOCAB),
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=N_CTX,
            activation_function="gelu_new",
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=0,
        ),
    ),
    "llama": (
        LlamaForCausalLM,
        "CAUSAL_LM",
        lambda: LlamaConfig(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # grouped-query attention: 2 query heads per key/value head
            head_dim=8,
            intermediate_size=48,
            max_position_embeddings=N_CTX,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000.0},  # not the usual 10000
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=0,
        ),
    ),
    "bert": (
        BertModel,
        "FEATURE_EXTRACTION",
        lambda: BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=N_CTX,
            type_vocab_size=2,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
            pad_token_id=0,
        ),
    ),
}

ADAPTERS = {
    "prefix": lambda task: PrefixTuningConfig(task_type=task, num_virtual_tokens=4),
    "prefix_projection": lambda task: PrefixTuningConfig(
        task_type=task, num_virtual_tokens=3, prefix_projection=True, encoder_hidden_size=24
    ),
    "prompt": lambda task: PromptTuningConfig(task_type=task, num_virtual_tokens=3),
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }


def make_tokenizer() -> PreTrainedTokenizerFast:
    """One token per printable ASCII character (WordLevel), [PAD] = 0, [UNK] = 1."""
    tok = tokenizers.Tokenizer(
        models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]")
    )
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def redraw(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter drawn again so that attention logits are O(1).

    Matrices: N(0, 1/fan_in) (fan_in = the input size: dim 1 of nn.Linear, dim 0 of GPT-2's
    Conv1D); embeddings N(0, 0.3^2) (with the tied or untied head the logits have a standard
    deviation of about 2, as a trained LM's do); norm weights 1 + N(0, 0.1^2); biases
    N(0, 0.1^2).
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split(".")[-2] if name.endswith(("weight", "bias")) else name
            if p.ndim == 1:
                is_norm = "norm" in leaf.lower() or leaf.startswith("ln_")
                base = 1.0 if (is_norm and name.endswith("weight")) else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=generator))
            elif "embed" in name or leaf in ("wte", "wpe"):
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
            else:
                conv1d = type(dict(model.named_modules())[name.rsplit(".", 1)[0]]).__name__
                fan_in = p.shape[0] if conv1d == "Conv1D" else p.shape[1]
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in**0.5)


def inputs(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


@torch.no_grad()
def record(model, family: str, ids, mask, embed_weight) -> dict:
    out = model(
        input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True
    )
    hidden = torch.stack(out.hidden_states)
    if family == "bert":
        logits = out.last_hidden_state @ embed_weight.to(hidden.dtype).T
    else:
        logits = out.logits
    return {
        "logits": logits.numpy(),
        "hidden": hidden.numpy(),
        "attentions": torch.stack(out.attentions).numpy(),
    }


def load_base(family: str, model_dir: Path, dtype):
    cls = CONFIGS[family][0]
    model = cls.from_pretrained(model_dir, attn_implementation="eager")
    return model.to(dtype).eval()


def embed_weight(model, family):
    return model.get_input_embeddings().weight.detach()


def record_all(family: str, model_dir: Path, adapter_dirs: dict, ids, mask) -> dict:
    """Outputs of the base model (adapter None) and of each saved adapter, in both dtypes."""
    arrays = {}
    for dtype_name, dtype in DTYPES.items():
        for name, adapter_dir in adapter_dirs.items():
            base = load_base(family, model_dir, dtype)
            weight = embed_weight(base, family)
            model = base
            if adapter_dir is not None:
                model = PeftModel.from_pretrained(base, adapter_dir).to(dtype).eval()
            for key, value in record(model, family, ids, mask, weight).items():
                assert value.dtype == np.dtype(dtype_name), (family, name, key, value.dtype)
                arrays[f"{name}/{dtype_name}/{key}"] = value
    return arrays


def phase_models(out: Path) -> None:
    tokenizer = make_tokenizer()
    ids, mask = inputs(tokenizer)
    manifest = {
        "made_by": "scripts/hf_oracle.py (make oracle-fixtures)",
        "versions": versions(),
        "seed": SEED,
        "texts": TEXTS,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "attention": "eager",
        "families": {},
        "arrays": __doc__.split("Array names in the npz files:")[1].strip(),
    }
    for index, (family, (cls, task, make_config)) in enumerate(CONFIGS.items()):
        torch.manual_seed(SEED + index)
        generator = torch.Generator().manual_seed(SEED + index)
        family_dir = out / family
        if family_dir.exists():
            shutil.rmtree(family_dir)
        model = cls(make_config()).eval()
        redraw(model, generator)
        model.save_pretrained(family_dir / "model")
        tokenizer.save_pretrained(family_dir / "model")
        adapter_dirs = {"none": None}
        info = {"class": cls.__name__, "task_type": task, "adapters": {}}
        for name, make_adapter in ADAPTERS.items():
            torch.manual_seed(SEED + 100 * (index + 1) + len(adapter_dirs))
            config = make_adapter(task)
            base = load_base(family, family_dir / "model", torch.float32)
            base.name_or_path = (
                "../model"  # recorded in adapter_config.json: relative, not /tmp/...
            )
            live = get_peft_model(base, config)
            live.eval()
            live.save_pretrained(family_dir / name)
            (family_dir / name / "README.md").unlink(missing_ok=True)  # a model card template
            adapter_dirs[name] = family_dir / name
            info["adapters"][name] = json.loads(
                (family_dir / name / "adapter_config.json").read_text()
            )
            # the adapter as saved and loaded back gives what the live model computed
            base = load_base(family, family_dir / "model", torch.float32)
            loaded = PeftModel.from_pretrained(base, family_dir / name).eval()
            weight = embed_weight(base, family)
            a = record(live, family, ids, mask, weight)
            b = record(loaded, family, ids, mask, weight)
            drift = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            assert drift < 1e-5, (family, name, drift)
            info["adapters"][name]["saved_vs_live_max_abs_diff"] = drift
        arrays = record_all(family, family_dir / "model", adapter_dirs, ids, mask)
        np.savez_compressed(family_dir / "outputs.npz", **arrays)
        manifest["families"][family] = info
        print(f"{family}: {len(arrays)} arrays, adapters {list(adapter_dirs)}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def phase_roundtrip(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    ids = torch.tensor(manifest["input_ids"])
    mask = torch.tensor(manifest["attention_mask"])
    manifest["roundtrip"] = {"versions": versions(), "adapters": {}}
    for family in CONFIGS:
        family_dir = out / family
        adapter_dirs = {p.name: p for p in sorted(family_dir.glob("toolkit_*")) if p.is_dir()}
        if not adapter_dirs:
            sys.exit(
                f"{family_dir}: no toolkit_* adapters; run scripts/hf_roundtrip_adapters.py first"
            )
        arrays = record_all(family, family_dir / "model", adapter_dirs, ids, mask)
        np.savez_compressed(family_dir / "roundtrip_outputs.npz", **arrays)
        manifest["roundtrip"]["adapters"][family] = sorted(adapter_dirs)
        print(f"{family}: PEFT loaded {sorted(adapter_dirs)}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("models", "roundtrip"):
        sys.exit("usage: hf_oracle.py models|roundtrip OUT_DIR")
    torch.use_deterministic_algorithms(True)
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    (phase_models if sys.argv[1] == "models" else phase_roundtrip)(out_dir)
