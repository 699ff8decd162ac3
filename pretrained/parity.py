"""Evidence that the loaded weights are the real model: agreement with the reference implementation.

``tests/fixtures/minilm_reference.json`` was computed once with sentence-transformers
(PyTorch CPU, float32) by ``scripts/make_minilm_fixture.py``.  :func:`parity`
recomputes the same quantities with the toolkit's forward pass and reports the
largest absolute differences.  Target: embeddings within ``PARITY_TOL`` in float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pretrained.minilm import encode, load_minilm, tokenize
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import forward

# The target for float32 agreement with the reference (PyTorch float32 on the CPU):
# both sides round differently (summation order, erf), so exact equality is not expected.
PARITY_TOL = 1e-5
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"


def load_fixture(path: str | Path | None = None) -> dict:
    path = Path(path) if path is not None else FIXTURE
    if not path.is_file():
        raise ToolkitError(
            f"reference fixture not found: expected {path} "
            "(made by scripts/make_minilm_fixture.py; it ships with the repository)"
        )
    return json.loads(path.read_text())


def parity(dtype="float32", fixture_path=None) -> dict:
    """Max |difference| to the reference: embeddings (per
    sentence), pooled norms, [CLS] states per layer."""
    fx = load_fixture(fixture_path)
    model = load_minilm(dtype)
    ids, mask = tokenize(model.tokenizer, fx["sentences"])
    ours_ids = [row[m].tolist() for row, m in zip(ids, mask, strict=True)]
    emb = encode(model, fx["sentences"])
    pooled = encode(model, fx["sentences"], normalise=False)
    ref = np.asarray(fx["embeddings"])
    per_sentence = np.abs(emb - ref).max(-1)
    with jax.default_matmul_precision("highest"):
        first = jnp.asarray(ids[0][mask[0]])
        _, cache = forward(model.params, model.arch, first)
    arch = model.arch
    states = [np.asarray(cache[act_name("resid_pre", 0)][0])]
    states += [np.asarray(cache[act_name("resid_post", l)][0]) for l in range(arch.n_layers)]
    cls_diff = np.abs(np.stack(states) - np.asarray(fx["cls_hidden_states_sentence0"])).max(-1)
    return {
        "dtype": str(jnp.dtype(dtype)),
        "sentences": fx["sentences"],
        "token_ids_match": ours_ids == fx["token_ids"],
        "embedding_max_abs_diff": float(per_sentence.max()),
        "embedding_max_abs_diff_per_sentence": per_sentence.tolist(),
        "pooled_norm_max_abs_diff": float(
            np.abs(np.linalg.norm(pooled, axis=-1) - fx["pooled_norms"]).max()
        ),
        "cls_state_max_abs_diff_per_layer": cls_diff.tolist(),  # [embeddings, layer 0 .. layer L-1]
        "tolerance": PARITY_TOL,
        "reference": {"versions": fx["versions"], "made_by": fx["made_by"]},
        "agrees": bool(ours_ids == fx["token_ids"] and per_sentence.max() <= PARITY_TOL),
    }


def format_parity(results: list[dict]) -> str:
    lines = [
        "parity with the reference implementation (sentence-transformers "
        f"{results[0]['reference']['versions']['sentence_transformers']}, torch "
        f"{results[0]['reference']['versions']['torch']}, float32):"
    ]
    for r in results:
        cls = ", ".join(f"{x:.1e}" for x in r["cls_state_max_abs_diff_per_layer"])
        lines.append(
            f"  ours in {r['dtype']}: token ids match {r['token_ids_match']}; embeddings max "
            f"|diff| {r['embedding_max_abs_diff']:.2e} (target {r['tolerance']:.0e}: "
            f"{'agrees' if r['agrees'] else 'DISAGREES'}); pooled norms "
            f"{r['pooled_norm_max_abs_diff']:.2e}; [CLS] state per layer (embeddings, 0..): {cls}"
        )
    return "\n".join(lines)
