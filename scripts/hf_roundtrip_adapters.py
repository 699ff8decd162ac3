"""Write toolkit contexts as PEFT adapters for the round trip of the oracle fixtures.

Runs in the toolkit's venv between the two phases of ``scripts/hf_oracle.py`` (``make
oracle-fixtures`` does all three steps)::

    .venv/bin/python scripts/hf_roundtrip_adapters.py tests/fixtures/hf

For each family it draws (numpy, seeded) a ``KVPrefix``, a hidden-state ``Prefix`` and a
``SoftPrompt`` for the fixture model, writes each with :func:`interop.peft.write_adapter`
into ``<family>/toolkit_kv_prefix``, ``toolkit_prefix`` and ``toolkit_soft_prompt``, and
saves the contexts themselves in ``<family>/toolkit_contexts.npz``: the tests run the
toolkit on these originals and compare with what PEFT computed from the written files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from interop.hf import load_hf
from interop.peft import write_adapter
from theory.context import KVPrefix, Prefix, SoftPrompt

SEED = 4321
FAMILIES = ("gpt2", "llama", "bert")


def contexts(model, rng) -> dict:
    a = model.arch
    kv_shape = (a.n_layers, a.kv_heads, 2, a.d_head)
    return {
        "kv_prefix": KVPrefix(
            jnp.asarray(rng.normal(size=kv_shape).astype(np.float32)),
            jnp.asarray(rng.normal(size=kv_shape).astype(np.float32)),
        ),
        "prefix": Prefix(
            jnp.asarray(rng.normal(size=(a.n_layers, 3, a.d_model)).astype(np.float32))
        ),
        "soft_prompt": SoftPrompt(jnp.asarray(rng.normal(size=(2, a.d_model)).astype(np.float32))),
    }


def main(root: Path) -> None:
    for index, family in enumerate(FAMILIES):
        model = load_hf(root / family / "model", "float32")
        arrays = {}
        for name, context in contexts(model, np.random.default_rng(SEED + index)).items():
            write_adapter(
                context,
                model,
                root / family / f"toolkit_{name}",
                overwrite=True,
                base_model_name_or_path="../model",
            )
            for field, value in context._asdict().items():
                arrays[f"{name}/{field}"] = np.asarray(value)
        np.savez_compressed(root / family / "toolkit_contexts.npz", **arrays)
        print(f"{family}: wrote toolkit_kv_prefix, toolkit_prefix, toolkit_soft_prompt")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: hf_roundtrip_adapters.py FIXTURE_DIR")
    main(Path(sys.argv[1]))
