"""A model and prefix trained by ``prefix-theory experiment`` as a Hugging Face GPT-2 checkpoint
and a PEFT adapter.

A run's checkpoint (:mod:`experiments.checkpoint`) holds the trainable pytree of one method and
its settings (architecture, method, training, and the fingerprint of the base model it was
trained on).  The base model is the ``pretrain`` checkpoint of the same folder whose
fingerprint the settings name.  What is written, into ``OUT/``::

    model/    config.json + model.safetensors   the frozen base model (interop.gpt2_writer)
    adapter/  adapter_config.json + adapter_model.safetensors (interop.peft.write_adapter)
    export.json                                 where it came from and the parity measured
    reference.npz                               ids [n, len] and the experiment's logits
                                                [n, len, d_vocab] on them (to check a PEFT run)

by method: ``prefix`` (hidden states at every layer, the paper's prefix-tuning) -> the
PREFIX_TUNING adapter of the keys and values they induce; ``kv_prefix`` -> PREFIX_TUNING as
trained; ``pretrain``/``finetune`` (the model itself, which always reads ``n_p`` zero tokens
before the content, docs/theory.md §4) -> the model and a PROMPT_TUNING adapter of those
zero tokens.  LoRA runs are refused (not a prompt-learning method).

Before anything is moved into ``OUT`` the written files are read back (:func:`interop.hf.load_hf`,
:func:`interop.peft.read_adapter`) and their logits compared with the experiment's own forward
pass on seeded random inputs; a difference above ``TOL_F32`` is refused, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments import adapt as adapt_mod
from experiments import checkpoint
from experiments.evaluate import logits_batch
from experiments.tasks import MODEL_LEN
from interop.gpt2_writer import save_gpt2
from interop.hf import load_hf
from interop.peft import read_adapter, write_adapter
from theory.architecture import Architecture, validate_architecture
from theory.errors import ToolkitError
from theory.params import param_shapes
from theory.tolerances import TOL_F32

PROMPT_KINDS = ("prefix", "kv_prefix")
MODEL_KINDS = ("pretrain", "finetune")
EXPORTABLE = PROMPT_KINDS + MODEL_KINDS
TUPLE_FIELDS = ("default_methods", "expectations")


class ExperimentCheckpoint(NamedTuple):
    """A run read from its checkpoint: the model, the trained context and where they came from."""

    path: Path
    name: str  # the run's name, e.g. "combine-2L4H-d32-prefix5-ascending"
    arch: Architecture
    adapt: Any  # experiments.adapt.Adaptation
    params: dict  # the model the context is applied to (float32)
    context: Any  # Prefix, KVPrefix, HardPrompt (n_p zero tokens) or None (n_p = 0)
    step: int  # steps trained
    steps: int  # steps the run was set up for
    base_path: Path | None  # the base model's checkpoint (None: the run is the model itself)


def _settings(path: Path) -> tuple[dict, dict]:
    meta = checkpoint.read_meta(str(path))
    settings = meta.get("settings")
    if not isinstance(settings, dict) or not {"name", "arch", "adapt"} <= set(settings):
        got = sorted(settings) if isinstance(settings, dict) else settings
        raise ToolkitError(
            f"checkpoint {path}: expected the settings of a prefix-theory experiment run "
            f"(name, arch, adapt), got {got!r}"
        )
    if meta.get("fingerprint") != checkpoint.fingerprint(settings):
        raise ToolkitError(
            f"checkpoint {path}: its settings do not match its fingerprint "
            f"{meta.get('fingerprint')} (the file was altered); expected an unmodified checkpoint"
        )
    return meta, settings


def _architecture(fields: dict, path: Path) -> Architecture:
    known = {f.name for f in dataclasses.fields(Architecture)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ToolkitError(
            f"checkpoint {path}: its architecture has fields {unknown} this version does not know"
        )
    fields = dict(fields)
    for name in TUPLE_FIELDS:
        if name in fields:
            fields[name] = tuple(tuple(x) if isinstance(x, list) else x for x in fields[name])
    return validate_architecture(Architecture(**fields))


def _adaptation(fields: dict, path: Path):
    known = {f.name for f in dataclasses.fields(adapt_mod.Adaptation)}
    if not isinstance(fields, dict) or set(fields) - known:
        raise ToolkitError(f"checkpoint {path}: expected an adaptation with fields {sorted(known)}")
    fields = dict(fields, targets=tuple(fields.get("targets", ())))
    return adapt_mod.Adaptation(**fields)


def _zeros(shapes, dtype):
    return jax.tree_util.tree_map(
        lambda s: np.zeros(s, dtype),
        shapes,
        is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(i, int) for i in x),
    )


def _load(path: Path, tree, settings: dict):
    """The trainable pytree of a checkpoint shaped like ``tree`` (its optimiser state dropped)."""
    (trainable, _), _ = checkpoint.load(str(path), (tree, (tree, tree)), settings)
    return trainable


def find_base(path: Path, fingerprint: str) -> Path:
    """The checkpoint next to ``path`` whose fingerprint is ``fingerprint``."""
    candidates = sorted(
        p for p in path.parent.glob("*.npz") if p != path and not p.name.endswith(".tmp.npz")
    )
    for candidate in candidates:
        try:
            if checkpoint.read_meta(str(candidate)).get("fingerprint") == fingerprint:
                return candidate
        except ToolkitError:
            continue
    raise ToolkitError(
        f"checkpoint {path}: expected the checkpoint of its base model (fingerprint {fingerprint}) "
        f"in {path.parent}, none of its {len(candidates)} other .npz files has it; pass --base"
    )


def read_experiment_checkpoint(path, base=None) -> ExperimentCheckpoint:
    """The model and context of one run (``base``: the base model's checkpoint, default: found
    next to ``path`` by the fingerprint the run's settings name)."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(
            f"--experiment-checkpoint: expected a checkpoint .npz of prefix-theory experiment "
            f"(RUN/checkpoints/NAME.npz), {path} not found"
        )
    meta, settings = _settings(path)
    arch = _architecture(settings["arch"], path)
    adapt = _adaptation(settings["adapt"], path)
    if adapt.kind not in EXPORTABLE:
        raise ToolkitError(
            f"checkpoint {path}: a {adapt.kind!r} run; expected one of {EXPORTABLE} (LoRA is not "
            "a prompt-learning method: PEFT prefix/prompt adapters cannot hold it)"
        )
    dtype = np.dtype(settings.get("dtype", "float32"))
    model_shapes = param_shapes(arch)
    steps = int(settings.get("train", {}).get("steps", meta["step"]))
    if adapt.kind in MODEL_KINDS:
        if base is not None:
            raise ToolkitError(
                f"--base: checkpoint {path} is a {adapt.kind!r} run, the model itself; "
                "expected no --base"
            )
        params = _load(path, _zeros(model_shapes, dtype), settings)
        context = adapt_mod.base_context(adapt)
        return ExperimentCheckpoint(
            path, settings["name"], arch, adapt, params, context, meta["step"], steps, None
        )
    base_path = Path(base) if base is not None else find_base(path, settings.get("base"))
    if not base_path.is_file():
        raise ToolkitError(f"--base: expected a checkpoint .npz, {base_path} not found")
    base_meta, base_settings = _settings(base_path)
    if base_meta["fingerprint"] != settings.get("base"):
        raise ToolkitError(
            f"--base {base_path} (run {base_settings['name']!r}, fingerprint "
            f"{base_meta['fingerprint']}) is not the model {path.name} was trained on: expected "
            f"fingerprint {settings.get('base')}"
        )
    if base_settings["arch"] != settings["arch"]:
        raise ToolkitError(f"--base {base_path}: its architecture differs from that of {path}")
    params = _load(base_path, _zeros(model_shapes, dtype), base_settings)
    L, n_p, G, k = arch.n_layers, adapt.n_p, arch.kv_heads, arch.d_head
    if adapt.kind == "prefix":
        shapes = {"states": (L, n_p, arch.d_model)}
    else:
        shapes = {"keys": (L, G, n_p, k), "values": (L, G, n_p, k)}
    trainable = _load(path, _zeros(shapes, dtype), settings)
    _, context = adapt_mod.apply(adapt, arch, params, trainable)
    return ExperimentCheckpoint(
        path, settings["name"], arch, adapt, params, context, meta["step"], steps, base_path
    )


def check_inputs(arch: Architecture, n_p: int, n: int, seed: int) -> np.ndarray:
    """Seeded random token sequences ``[n, MODEL_LEN]`` (the length the experiments' models
    read)."""
    length = min(MODEL_LEN, arch.n_ctx - n_p)
    return np.random.default_rng(seed).integers(0, arch.d_vocab, (n, length)).astype(np.int32)


def parity(run: ExperimentCheckpoint, model_dir: Path, adapter_dir: Path | None, seqs):
    """``(max |logits of the exported files - logits of the experiment's own forward|, the
    experiment's logits)`` in float32."""
    model = load_hf(model_dir, "float32")
    context = read_adapter(adapter_dir, model).context if adapter_dir is not None else None
    ours = logits_batch(run.params, run.arch, run.context, jnp.asarray(seqs))
    theirs = logits_batch(model.params, model.arch, context, jnp.asarray(seqs))
    return float(jnp.max(jnp.abs(ours - theirs))), np.asarray(ours)


def export_experiment(
    path,
    out_dir,
    *,
    base=None,
    task_type: str | None = None,
    overwrite: bool = False,
    n_check: int = 16,
    seed: int = 0,
) -> dict:
    """Write ``OUT/model``, ``OUT/adapter`` and ``OUT/export.json`` for one run (see the module
    docstring); returns the contents of ``export.json``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise ToolkitError(
            f"output folder {out_dir} exists and is not empty; expected a new or empty folder "
            "(or pass --force)"
        )
    run = read_experiment_checkpoint(path, base)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        saved = save_gpt2(run.params, run.arch, staging / "model", dtype="float32")
        model = load_hf(staging / "model", "float32")
        adapter_dir = None
        if run.context is not None:
            adapter_dir = write_adapter(
                run.context,
                model,
                staging / "adapter",
                task_type=task_type,
                base_model_name_or_path=str(out_dir.resolve() / "model"),
            )
        seqs = check_inputs(run.arch, run.adapt.n_p, n_check, seed)
        diff, reference = parity(run, staging / "model", adapter_dir, seqs)
        if not diff <= TOL_F32:
            raise ToolkitError(
                f"export of {run.path}: the written model and adapter give logits up to {diff:.3g} "
                f"away from the experiment's own forward pass (expected <= {TOL_F32:g}); "
                "nothing written"
            )
        peft_type = None
        if adapter_dir is not None:
            peft_type = json.loads((adapter_dir / "adapter_config.json").read_text())["peft_type"]
        record = {
            "checkpoint": str(run.path),
            "run": run.name,
            "method": run.adapt.label(),
            "n_virtual": run.adapt.n_p,
            "steps_trained": run.step,
            "steps_planned": run.steps,
            "base_checkpoint": str(run.base_path) if run.base_path else None,
            "model": "model",
            "adapter": "adapter" if adapter_dir is not None else None,
            "peft_type": peft_type,
            "lm_head_tied": saved.tied,
            "unembed_bias_folded_into_ln_f": saved.folded_bias,
            "fold_residual": saved.fold_residual,
            "parity": {
                "max_abs_logit_diff_float32": diff,
                "tolerance": TOL_F32,
                "inputs": f"{len(seqs)} random sequences of {seqs.shape[1]} tokens (seed {seed})",
            },
        }
        (staging / "export.json").write_text(json.dumps(record, indent=1) + "\n")
        np.savez(staging / "reference.npz", ids=seqs, logits=reference)
        out_dir.mkdir(exist_ok=True)
        for name in ("model", "adapter", "export.json", "reference.npz"):
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (staging / name).exists():
                (staging / name).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record
