"""Agreement with the external oracle: what transformers + PEFT computed on the fixture models.

``tests/fixtures/hf`` (made by ``make oracle-fixtures``, see ``scripts/hf_oracle.py``) holds
tiny random GPT-2, LLaMA and BERT checkpoints, PEFT adapters saved by PEFT, adapters written
by the toolkit, and the outputs transformers + PEFT computed for a padded batch in float32
and float64.  :func:`compare` runs the toolkit on the same files and inputs and returns the
largest absolute differences of logits, hidden states (every layer) and attention
probabilities (including the prefix columns), over every position of the batch.

Layout of the recorded arrays (``<adapter>/<dtype>/<quantity>``)::

    logits     [B, n_out, V]      n_out = n_p + n for prompt tuning (virtual rows first), else n
    hidden     [L+1, B, n_out, d] embeddings output, then every block's output; the last one
                                  after the final norm for GPT-2 and LLaMA (as transformers
                                  returns it)
    attentions [L, B, H, n_out, n_k]   n_k = n_p + n whenever an adapter is attached

BERT has no language-model head: its recorded logits are the last hidden state times the
word embeddings transposed, which is what the toolkit's tied unembedding computes.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from interop.hf import HFModel, load_hf
from interop.peft import read_adapter
from theory.context import KVPrefix, Prefix, SoftPrompt, n_virtual
from theory.errors import ToolkitError
from theory.hooks import act_name
from theory.model import apply_norm, forward
from theory.tolerances import TOL_F64
from theory.verify import FAST_COMPILE

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hf"
FAMILIES = ("gpt2", "llama", "bert")
PEFT_ADAPTERS = ("none", "prefix", "prefix_projection", "prompt")  # saved by PEFT
TOOLKIT_ADAPTERS = ("toolkit_kv_prefix", "toolkit_prefix", "toolkit_soft_prompt")  # by the toolkit
DTYPES = ("float32", "float64")
QUANTITIES = ("logits", "hidden", "attentions")
PARITY_TOL_F32 = 1e-5  # max |toolkit - transformers| in float32 (every quantity)
# float64: transformers computes LLaMA's softmax (eager_attention_forward: dtype=torch.float32)
# and its RoPE angles (LlamaRotaryEmbedding: .float() with autocast off) in float32 even in a
# float64 model, so there the oracle itself is only float32-accurate (measured ~6e-7).
PARITY_TOL_F64 = {"gpt2": TOL_F64, "bert": TOL_F64, "llama": PARITY_TOL_F32}


def tolerance(family: str, dtype: str) -> float:
    """The parity target of one fixture (see :data:`PARITY_TOL_F64` for LLaMA in float64)."""
    return PARITY_TOL_F32 if dtype == "float32" else PARITY_TOL_F64[family]


def manifest(root: Path = FIXTURES) -> dict:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise ToolkitError(
            f"oracle fixtures not found: expected {path} (made by make oracle-fixtures)"
        )
    return json.loads(path.read_text())


def inputs(root: Path = FIXTURES) -> tuple[np.ndarray, np.ndarray]:
    """The recorded batch: token ids ``[B, n] int32`` and padding mask ``[B, n] bool``."""
    m = manifest(root)
    return np.asarray(m["input_ids"], np.int32), np.asarray(m["attention_mask"], bool)


@partial(jax.jit, static_argnames=("arch",))
def _run_batch(params, arch, ids, mask, context):
    """The toolkit on a padded batch, in the oracle's layout (see the module docstring)."""
    n_p = n_virtual(context)

    def one(tokens, content_mask):
        key_mask = jnp.concatenate([jnp.ones(n_p, bool), content_mask])
        logits, cache = forward(
            params, arch, tokens, context, attention_mask=key_mask, validate=False
        )
        last = cache[act_name("resid_post", arch.n_layers - 1)]
        if "ln_final" in params:
            last = apply_norm(params["ln_final"], last, arch)
        hidden = [cache[act_name("resid_pre", 0)]]
        hidden += [cache[act_name("resid_post", l)] for l in range(arch.n_layers - 1)]
        hidden.append(last)
        patterns = [cache[act_name("pattern", l)] for l in range(arch.n_layers)]
        return logits, jnp.stack(hidden), jnp.stack(patterns)

    logits, hidden, attentions = jax.vmap(one)(ids, mask)
    return logits, jnp.swapaxes(hidden, 0, 1), jnp.swapaxes(attentions, 0, 1)


def run_batch(model: HFModel, ids, mask, context):
    """``(logits, hidden, attentions)`` of the toolkit on a padded batch (oracle layout).

    Compiled with the verifier's fast options (backend optimisation off): about 0.4 s per
    fixture instead of 1.8 s, the same arithmetic.
    """
    args = (model.params, jnp.asarray(ids), jnp.asarray(mask), context)
    with jax.default_matmul_precision("highest"):
        lowered = _run_batch.lower(args[0], model.arch, *args[1:])
        return lowered.compile(compiler_options=FAST_COMPILE)(*args)


def toolkit_contexts(family: str, dtype: str, root: Path = FIXTURES) -> dict:
    """The contexts the toolkit wrote as ``toolkit_*`` adapters (the round trip's originals)."""
    with np.load(Path(root) / family / "toolkit_contexts.npz") as data:
        a = {k: jnp.asarray(data[k], dtype) for k in data.files}
    return {
        "toolkit_kv_prefix": KVPrefix(a["kv_prefix/keys"], a["kv_prefix/values"]),
        "toolkit_prefix": Prefix(a["prefix/states"]),
        "toolkit_soft_prompt": SoftPrompt(a["soft_prompt/embeddings"]),
    }


def reference(family: str, adapter: str, dtype: str, root: Path = FIXTURES) -> dict:
    name = "roundtrip_outputs.npz" if adapter.startswith("toolkit_") else "outputs.npz"
    with np.load(Path(root) / family / name) as data:
        return {q: data[f"{adapter}/{dtype}/{q}"] for q in QUANTITIES}


def compare(
    family: str,
    adapter: str,
    dtype: str,
    *,
    model: HFModel | None = None,
    context="from_file",
    root: Path = FIXTURES,
) -> dict:
    """Max |toolkit - oracle| per quantity for one fixture (family, adapter, dtype).

    ``context`` defaults to the adapter folder read with :func:`interop.peft.read_adapter`
    (``None`` for ``adapter="none"``); pass a context to run that instead (the round trip
    passes the toolkit's original).  ``model`` defaults to the fixture checkpoint in ``dtype``.
    """
    root = Path(root)
    model = model or load_hf(root / family / "model", dtype)
    if isinstance(context, str):
        context = (
            None if adapter == "none" else read_adapter(root / family / adapter, model).context
        )
    ids, mask = inputs(root)
    logits, hidden, attentions = run_batch(model, ids, mask, context)
    ref = reference(family, adapter, dtype, root)
    n_p = n_virtual(context)
    prompt = isinstance(context, SoftPrompt)
    rows = slice(0, None) if prompt else slice(n_p, None)  # the toolkit rows the oracle has
    ours = {
        "logits": np.asarray(logits),
        "hidden": np.asarray(hidden)[:, :, rows],
        "attentions": np.asarray(attentions)[:, :, :, rows],
    }
    if prompt:  # transformers also returns logits at the virtual positions
        ref["logits"] = ref["logits"][:, n_p:]
    out = {}
    for q in QUANTITIES:
        if ours[q].shape != ref[q].shape:
            raise ToolkitError(
                f"{family}/{adapter}/{dtype}/{q}: the toolkit gives shape {ours[q].shape}, "
                f"the oracle recorded {ref[q].shape}"
            )
        out[q] = float(np.abs(ours[q].astype(np.float64) - ref[q]).max())
    return out


def parity_table(root: Path = FIXTURES) -> list[dict]:
    """Every fixture compared: one dict per (family, adapter, dtype) with the three maxima.

    The ``toolkit_*`` rows run the toolkit on the ORIGINAL context it wrote (the round trip),
    except ``toolkit_prefix`` in float64: its file holds the KV-prefix computed in float32, so
    the float64 row runs the file as read back (the float32 row is the round trip).
    """
    rows = []
    for family in FAMILIES:
        for dtype in DTYPES:
            model = load_hf(Path(root) / family / "model", dtype)
            originals = toolkit_contexts(family, dtype, root)
            if dtype == "float64":
                del originals["toolkit_prefix"]
            for adapter in PEFT_ADAPTERS + TOOLKIT_ADAPTERS:
                context = originals.get(adapter, "from_file")
                diffs = compare(family, adapter, dtype, model=model, context=context, root=root)
                rows.append(
                    {
                        "family": family,
                        "adapter": adapter,
                        "dtype": dtype,
                        **diffs,
                        "tolerance": tolerance(family, dtype),
                    }
                )
    return rows
