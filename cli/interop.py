"""The command line for Hugging Face models and PEFT adapters (the logic is in ``interop``).

    prefix-theory verify  --model hf:DIR [--adapter ADAPTER_DIR] [--text FILE] [--trials N]
                          [--prefix-length N] [--seed S] [--theorem ID] [--out DIR] [--json PATH]
    prefix-theory inspect --model hf:DIR --adapter ADAPTER_DIR [--text FILE] [--json PATH]
                          [--png PATH]
    prefix-theory export  --model hf:DIR --context FILE.npz --out ADAPTER_DIR [--task-type T]
                          [--force]
    prefix-theory export  --experiment-checkpoint RUN/checkpoints/NAME.npz [--base BASE.npz]
                          --out DIR [--task-type T] [--force]

``verify --model hf:DIR`` and ``inspect`` take ``--devices N`` / ``--mesh SPEC`` and the
multi-process options (cli/scale.py, docs/scale.md): the model's parameters are split over
the devices; process 0 prints and writes.

Inputs: ``--text FILE`` (one input per line) is tokenised with ``DIR/tokenizer.json``; without
it, :data:`DEFAULT_TEXTS` when the folder has a tokenizer, otherwise seeded random token ids
(four sequences of 8, the last right-padded to 5).  Every error is a ToolkitError (exit 2)
raised before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cli import scale, validate
from theory.context import HardPrompt, KVPrefix, Prefix, SoftPrompt
from theory.errors import ToolkitError

DEFAULT_TEXTS = (
    "The cat sits on the mat.",
    "A man is playing a guitar.",
    "Prefix-tuning can only bias an attention head!",
    "Paris is the capital of France.",
)
CONTEXT_ARRAYS = {  # keys of an --context .npz -> the toolkit context they make
    ("states",): Prefix,
    ("keys", "values"): KVPrefix,
    ("embeddings",): SoftPrompt,
    ("tokens",): HardPrompt,
}


def hf_dir(spec: str) -> Path:
    """``hf:DIR`` -> ``DIR`` (ToolkitError otherwise)."""
    if not isinstance(spec, str) or not spec.startswith("hf:") or len(spec) == 3:
        raise ToolkitError(f"--model: expected hf:DIR (a save_pretrained folder), got {spec!r}")
    return Path(spec[3:])


def default_out(model_dir: Path) -> Path:
    parts = [p for p in model_dir.resolve().parts[-2:] if p not in ("/", "")]
    return Path("runs") / ("hf-" + "-".join(parts))


def read_texts(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(
            f"--text: expected a text file with one input per line, {path} not found"
        )
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ToolkitError(f"--text {path}: expected at least one non-empty line, got none")
    return lines


def model_inputs(model, text_file=None, seed: int = 0, n_virtual: int = 1):
    """``(ids [B, n], mask [B, n], names)`` for a loaded model (see the module docstring)."""
    from interop.hf import load_tokenizer, tokenize

    tokenizer = load_tokenizer(model.model_dir)
    room = model.arch.n_ctx - n_virtual
    if text_file is not None:
        if tokenizer is None:
            raise ToolkitError(
                f"--text needs {model.model_dir / 'tokenizer.json'} to tokenise the inputs; "
                "the model folder has none"
            )
        texts = read_texts(text_file)
    elif tokenizer is not None:
        texts = list(DEFAULT_TEXTS)
    else:
        n = min(8, room)
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, model.arch.d_vocab, size=(4, n)).astype(np.int32)
        mask = np.ones((4, n), bool)
        mask[-1, max(1, n - 3) :] = False
        return ids, mask, [f"random token ids #{b} (seed {seed})" for b in range(4)]
    ids, mask = tokenize(tokenizer, texts, room)
    return ids, mask, texts


def run_hf_verify(args) -> int:
    """``verify --model hf:DIR [--adapter A]``: the §3 checks, float32 and float64, every layer."""
    from interop.checks import format_report, run_model_checks
    from interop.hf import load_hf
    from interop.peft import read_adapter

    if getattr(args, "steps", None) is not None:
        raise ToolkitError("--steps applies to --model minilm only (its optimised prefix)")
    model_dir = hf_dir(args.model)
    out = Path(args.out) if args.out else default_out(model_dir)
    validate.output_dir(out, "--out")
    mesh = scale.mesh_for(args, "model")
    if mesh is not None and scale.is_main_process():
        print(f"running on {scale.describe(mesh)}")
    models = {d: load_hf(model_dir, d, mesh=mesh) for d in ("float32", "float64")}
    adapter = read_adapter(args.adapter, models["float32"]) if args.adapter else None
    n_p = args.prefix_length or (adapter.n_virtual if adapter is not None else 1)
    longest = max(n_p, adapter.n_virtual if adapter is not None else 0)
    ids, mask, names = model_inputs(models["float32"], args.text, args.seed, longest)
    report = run_model_checks(
        models,
        ids,
        mask,
        names,
        adapter=adapter,
        n_p=n_p,
        trials=args.trials,
        seed=args.seed,
        theorems=args.theorem,
        mesh=mesh,
    )
    if not scale.is_main_process():
        print(f"process {scale.process_index()}: done; process 0 prints and writes the report")
        return 0 if report.as_expected else 1
    text = format_report(report)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "residuals.txt").write_text(text + "\n")
    payload = json.dumps({"report": report.to_json()}, indent=1) + "\n"
    (out / "report.json").write_text(payload)
    if args.json:
        Path(args.json).write_text(payload)
    print(f"\nwrote {out / 'residuals.txt'}, {out / 'report.json'}")
    return 0 if report.as_expected else 1


def run_inspect(args, plot=None) -> int:
    """``inspect``: prefix mass, bias span and content-attention change per layer x head.

    ``plot(result_json, path)`` writes the PNG of ``--png`` (the CLI passes
    ``render.inspect.plot_inspection``; interop itself renders nothing).
    """
    from interop.hf import load_hf
    from interop.inspect import format_inspection, inspect_adapter
    from interop.peft import read_adapter

    if args.png and plot is None:
        raise ToolkitError("--png needs a renderer; run inspect through the prefix-theory CLI")
    validate.output_file(args.json, "--json")
    validate.output_file(args.png, "--png", suffix=".png")
    mesh = scale.mesh_for(args, "model")
    if mesh is not None and scale.is_main_process():
        print(f"running on {scale.describe(mesh)}")
    model = load_hf(hf_dir(args.model), args.dtype, mesh=mesh)
    adapter = read_adapter(args.adapter, model)
    ids, mask, names = model_inputs(model, args.text, args.seed, adapter.n_virtual)
    info = {
        "folder": str(adapter.adapter_dir),
        "peft_type": adapter.peft_type,
        "n_virtual": adapter.n_virtual,
    }
    result = inspect_adapter(model, adapter.context, ids, mask, names, info, mesh=mesh)
    if not scale.is_main_process():
        print(f"process {scale.process_index()}: done; process 0 prints and writes the results")
        return 0
    print(format_inspection(result))
    written = []
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1) + "\n")
        written.append(args.json)
    if args.png:
        written.append(str(plot(result.to_json(), args.png)))
    if written:
        print("\nwrote " + ", ".join(written))
    return 0


def read_context(path):
    """A toolkit context from an ``.npz`` (arrays named as in :data:`CONTEXT_ARRAYS`)."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"--context: expected an .npz file, {path} not found")
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ToolkitError(
            f"--context {path}: expected an .npz file, could not read it ({exc})"
        ) from exc
    for names, cls in CONTEXT_ARRAYS.items():
        if set(arrays) == set(names):
            return cls(*(np.asarray(arrays[n]) for n in names))
    expected = "; ".join(
        " + ".join(names) + f" ({cls.__name__})" for names, cls in CONTEXT_ARRAYS.items()
    )
    raise ToolkitError(
        f"--context {path}: expected the arrays of one context: {expected}; got {sorted(arrays)}"
    )


def run_export(args) -> int:
    """``export``: a toolkit context saved as a PEFT adapter for the model, or a run of
    ``prefix-theory experiment`` saved as a GPT-2 checkpoint and a PEFT adapter."""
    import jax.numpy as jnp

    from interop.hf import load_hf
    from interop.peft import write_adapter

    if args.experiment_checkpoint is not None:
        return run_export_experiment(args)
    if args.base is not None:
        raise ToolkitError("--base applies to --experiment-checkpoint only")
    if args.model is None or args.context is None:
        raise ToolkitError(
            "export: expected --model hf:DIR and --context FILE.npz, or --experiment-checkpoint "
            f"CKPT; got --model {args.model!r}, --context {args.context!r}"
        )
    validate.output_dir(args.out, "--out")
    model = load_hf(hf_dir(args.model), "float32")
    context = read_context(args.context)
    context = type(context)(
        *(
            jnp.asarray(x) if np.issubdtype(x.dtype, np.integer) else jnp.asarray(x, jnp.float32)
            for x in context
        )
    )
    out = write_adapter(context, model, args.out, task_type=args.task_type, overwrite=args.force)
    config = json.loads((out / "adapter_config.json").read_text())
    print(
        f"wrote {out}: {config['peft_type']}, {config['num_virtual_tokens']} "
        f"virtual tokens, task_type {config['task_type']} (load it with "
        f"PeftModel.from_pretrained(base, {str(out)!r}))"
    )
    return 0


def run_export_experiment(args) -> int:
    """``export --experiment-checkpoint``: a run's model as a GPT-2 checkpoint, its trained
    prefix as a PEFT adapter (experiments/export.py)."""
    from experiments.export import export_experiment

    if args.model is not None or args.context is not None:
        raise ToolkitError(
            "--experiment-checkpoint exports the run's own model and prefix; expected no "
            f"--model/--context, got --model {args.model!r}, --context {args.context!r}"
        )
    validate.output_dir(args.out, "--out")
    record = export_experiment(
        args.experiment_checkpoint,
        args.out,
        base=args.base,
        task_type=args.task_type,
        overwrite=args.force,
    )
    out = Path(args.out)
    fold = (
        f"; its unembedding bias folded into ln_f.bias (residual {record['fold_residual']:.1e})"
        if record["unembed_bias_folded_into_ln_f"]
        else ""
    )
    print(f"wrote {out / 'model'}: GPT-2 checkpoint of run {record['run']!r}{fold}")
    if record["adapter"]:
        print(
            f"wrote {out / 'adapter'}: {record['peft_type']}, {record['n_virtual']} virtual "
            f"tokens ({record['method']}, {record['steps_trained']}/{record['steps_planned']} "
            "steps)"
        )
    parity = record["parity"]
    print(
        f"parity with the experiment's forward: max |logit diff| "
        f"{parity['max_abs_logit_diff_float32']:.1e} (float32, {parity['inputs']})"
    )
    print(
        f"load with: PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained("
        f"{str(out / 'model')!r}), {str(out / 'adapter')!r}); provenance in {out / 'export.json'}"
    )
    return 0


def add_parsers(sub) -> None:
    """The ``inspect`` and ``export`` subcommands (``verify --model hf:DIR`` is verify's)."""
    p = sub.add_parser(
        "inspect", help="what a PEFT adapter does to each head of a Hugging Face model"
    )
    p.add_argument("--model", required=True, metavar="hf:DIR", help="a save_pretrained folder")
    p.add_argument("--adapter", required=True, metavar="DIR", help="a PEFT adapter folder")
    p.add_argument("--text", metavar="FILE", help="inputs, one per line (needs DIR/tokenizer.json)")
    p.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    p.add_argument("--png", metavar="PATH", help="also write the heatmap as PNG")
    p.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="seed of random inputs, in [0, 2^32) (default 0)",
    )
    p.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="default float64"
    )
    scale.add_scale_arguments(
        p, "split the model over N devices (heads, MLP hidden units, vocabulary)"
    )
    p.set_defaults(run=_run_inspect_with_png)
    p = sub.add_parser(
        "export",
        help="save a prefix or soft prompt (.npz) as a PEFT adapter for a HF model, or a run of "
        "`experiment` as a GPT-2 checkpoint + PEFT adapter",
    )
    p.add_argument("--model", metavar="hf:DIR", help="a save_pretrained folder")
    p.add_argument(
        "--context",
        metavar="FILE.npz",
        help="arrays of one context: states [L, n_p, d] (Prefix), keys + values "
        "[L, G, n_p, k] (KVPrefix), embeddings [n_p, d] (SoftPrompt) or tokens [n_p] (HardPrompt)",
    )
    p.add_argument(
        "--experiment-checkpoint",
        metavar="CKPT",
        help="instead of --model/--context: a checkpoint of `prefix-theory experiment` "
        "(RUN/checkpoints/NAME.npz of a prefix, kv_prefix, pretrain or finetune run); writes "
        "OUT/model (GPT-2), OUT/adapter (PEFT) and OUT/export.json",
    )
    p.add_argument(
        "--base",
        metavar="CKPT",
        help="with --experiment-checkpoint: the base model's checkpoint (default: found next "
        "to CKPT by the fingerprint the run names)",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the adapter folder (or export folder) to write"
    )
    p.add_argument(
        "--task-type",
        metavar="T",
        help="PEFT task_type (default: CAUSAL_LM for decoders, FEATURE_EXTRACTION for BERT)",
    )
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.set_defaults(run=run_export)


def _run_inspect_with_png(args) -> int:
    import render.inspect

    if args.png:
        render.inspect.require_matplotlib()  # before anything is computed or written
    return run_inspect(args, plot=render.inspect.plot_inspection)
