"""The toolkit against transformers + PEFT (the fixtures of ``make oracle-fixtures``), no torch.

Every family (GPT-2, LLaMA, BERT) x adapter (none, PEFT prefix tuning, prefix tuning with
prefix_projection, prompt tuning, and the three adapters the toolkit wrote: the round trip)
x dtype: logits, hidden states of every layer and attention probabilities including the
prefix columns, on a padded batch, within 1e-5 in float32 (1e-10 in float64 where the
oracle computes in float64).  Negative control: a prefix logit that misses the
1/sqrt(d_head) scale breaks parity.
"""

import dataclasses
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import theory
from interop import oracle
from interop.files import read_safetensors
from interop.hf import load_hf
from interop.peft import adapter_tensor, kv_prefix_from_prefix, read_adapter
from theory.attention import ATTENTION_KINDS, masked_exp, safe_divide, scaled_logits

CASES = [
    (family, adapter, dtype)
    for family in oracle.FAMILIES
    for adapter in oracle.PEFT_ADAPTERS + oracle.TOOLKIT_ADAPTERS
    for dtype in oracle.DTYPES
]


@pytest.fixture(scope="module")
def table():
    rows = oracle.parity_table()
    for r in rows:
        print(
            f"{r['family']:6s} {r['adapter']:20s} {r['dtype']}: logits {r['logits']:.1e} hidden "
            f"{r['hidden']:.1e} attentions {r['attentions']:.1e} (target {r['tolerance']:.0e})"
        )
    return {(r["family"], r["adapter"], r["dtype"]): r for r in rows}


def assert_parity(diffs: dict, tol: float) -> None:
    for quantity in oracle.QUANTITIES:
        assert diffs[quantity] <= tol, (quantity, diffs, tol)


@pytest.mark.parametrize("family, adapter, dtype", CASES)
def test_parity_with_transformers_and_peft(table, family, adapter, dtype):
    assert_parity(table[family, adapter, dtype], oracle.tolerance(family, dtype))


def test_float64_parity_is_float64_where_the_oracle_is(table):
    """GPT-2 and BERT run in float64 in transformers: agreement to rounding (<= 1e-10)."""
    for (family, _, dtype), row in table.items():
        if dtype == "float64" and family != "llama":
            assert max(row[q] for q in oracle.QUANTITIES) <= theory.TOL_F64


def test_fixture_batch_is_padded_and_adapters_are_prefixes():
    ids, mask = oracle.inputs()
    assert ids.shape[0] == 2 and mask[0].all() and not mask[1].all()  # row 1 is right-padded
    model = load_hf(oracle.FIXTURES / "llama" / "model")
    assert model.arch.kv_heads == 2 < model.arch.n_heads and model.arch.rope_base == 1000.0
    kinds = {
        a: read_adapter(oracle.FIXTURES / "llama" / a, model).peft_type
        for a in oracle.PEFT_ADAPTERS[1:]
    }
    assert kinds == {
        "prefix": "PREFIX_TUNING",
        "prefix_projection": "PREFIX_TUNING",
        "prompt": "PROMPT_TUNING",
    }
    assert oracle.manifest()["versions"]["peft"] and oracle.manifest()["roundtrip"]["versions"]


def _misscaled_softmax(q, k, arch, bias, mask, virtual):
    """A wrong prefix forward: the prefix logits miss the 1/sqrt(d_head) (and T) scale."""
    logits = scaled_logits(q, k, arch, bias)
    unscaled = jnp.einsum("qhd,khd->hqk", q, k) + bias
    logits = jnp.where(virtual[None, None, :], unscaled, logits)
    e, _ = masked_exp(logits, mask)
    return logits, safe_divide(e, e.sum(-1, keepdims=True))


@pytest.mark.parametrize("family", oracle.FAMILIES)
def test_misscaled_prefix_logits_fail_parity(monkeypatch, family):
    """Negative control: the bug keeps every §3 identity true, but the oracle sees it."""
    kind = ATTENTION_KINDS["softmax"]
    monkeypatch.setitem(
        ATTENTION_KINDS, "softmax", dataclasses.replace(kind, weights=_misscaled_softmax)
    )
    model = load_hf(oracle.FIXTURES / family / "model", "float32")
    model = model._replace(arch=model.arch.replace(name=f"{model.arch.name} (mis-scaled)"))
    for adapter in ("prefix", "prompt"):
        bad = oracle.compare(family, adapter, "float32", model=model)
        assert bad["attentions"] > 1e-3 and bad["logits"] > 1e-3, bad
        with pytest.raises(AssertionError):
            assert_parity(bad, oracle.PARITY_TOL_F32)
    # without virtual positions the patch changes nothing: parity still holds
    assert_parity(oracle.compare(family, "none", "float32", model=model), oracle.PARITY_TOL_F32)


@pytest.mark.parametrize("family", oracle.FAMILIES)
def test_toolkit_adapters_on_disk_are_what_the_writer_writes(family):
    """The committed toolkit_* files are the current writer's output for the stored contexts."""
    model = load_hf(oracle.FIXTURES / family / "model", "float32")
    originals = oracle.toolkit_contexts(family, "float32")
    for name, context in originals.items():
        stored = read_safetensors(oracle.FIXTURES / family / name / "adapter_model.safetensors")
        _, tensor = adapter_tensor(model, context)
        tol = 1e-6 if name == "toolkit_prefix" else 0.0  # computed by a float32 forward
        np.testing.assert_allclose(stored["prompt_embeddings"], tensor, rtol=0, atol=tol)


@pytest.mark.parametrize("family", oracle.FAMILIES)
def test_hidden_state_prefix_is_its_kv_prefix(family):
    """docs/theory.md §1: a hidden-state prefix is the KV-prefix of its keys and values."""
    model = load_hf(oracle.FIXTURES / family / "model", "float64")
    prefix = oracle.toolkit_contexts(family, "float64")["toolkit_prefix"]
    kv = kv_prefix_from_prefix(model.params, model.arch, prefix)
    ids, mask = oracle.inputs()
    with_states = oracle.run_batch(model, ids, mask, prefix)
    with_kv = oracle.run_batch(model, ids, mask, kv)
    n_p = prefix.n_virtual
    logits, attentions = (with_states[0], with_kv[0]), (with_states[2], with_kv[2])
    assert float(jnp.abs(logits[0] - logits[1]).max()) <= theory.TOL_F64
    # content queries: every column, prefix ones included, is the same
    rows = attentions[0][..., n_p:, :], attentions[1][..., n_p:, :]
    assert float(jnp.abs(rows[0] - rows[1]).max()) <= theory.TOL_F64


def test_loading_imports_no_torch():
    """Loading checkpoints and adapters, running and writing them never imports torch."""
    code = textwrap.dedent(
        """
        import sys
        tried = []
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers", "peft"):
                    tried.append(name)
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        {body}
        print("TRIED", tried, "torch" in sys.modules)
        """
    )
    body = textwrap.dedent(
        """
        import theory, tempfile
        theory.configure_jax()
        from interop import oracle
        from interop.hf import load_hf
        from interop.peft import read_adapter, write_adapter
        m = load_hf(oracle.FIXTURES / "llama" / "model", "float64")
        a = read_adapter(oracle.FIXTURES / "llama" / "prefix", m)
        oracle.compare("llama", "prefix", "float64", model=m)
        write_adapter(a.context, m, tempfile.mkdtemp() + "/out")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code.replace("{body}", body)],
        capture_output=True,
        check=False,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "TRIED [] False" in out.stdout, out.stdout
    # control: the blocker does see an import of torch
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("{body}", "exec('try:\\n import torch\\nexcept ImportError: pass')"),
        ],
        capture_output=True,
        check=False,
        text=True,
    )
    assert "TRIED ['torch'] False" in probe.stdout, probe.stdout + probe.stderr
