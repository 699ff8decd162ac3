"""``prefix-theory verify --model minilm``: the §3
checks on real weights, parity, figures, in one command.

``--model hf:DIR [--adapter ADAPTER_DIR]`` (a Hugging Face folder and a PEFT adapter) is handed to
:func:`cli.interop.run_hf_verify` (docs/interop.md).

Writes into ``--out`` (default ``runs/<model>``): ``residuals.txt`` (the per-layer
table), ``report.json`` (everything, with parity and timings), and the PNGs
``attention_optimised.png`` and ``attention_random.png``.  Exit 0 when parity
agrees and every verdict is as expected, 1 otherwise, 2 on usage errors.

This module imports nothing heavy at import time (the parser is built from it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cli import validate
from cli.progress import Progress
from theory.errors import ToolkitError

MODELS = ("minilm", "hf:DIR")


def add_model_arguments(parser) -> None:
    """The ``--model`` options of ``prefix-theory verify``."""
    g = parser.add_argument_group("real pretrained weights")
    g.add_argument(
        "--model",
        metavar="NAME",
        help=f"run the §3 checks on a real pretrained model instead ({', '.join(MODELS)}: a "
        "Hugging Face save_pretrained folder); --trials is then the number of random prefixes",
    )
    g.add_argument(
        "--adapter",
        metavar="DIR",
        help="with --model hf:DIR: also check this PEFT adapter (prefix or prompt tuning)",
    )
    g.add_argument(
        "--text",
        metavar="FILE",
        help="with --model hf:DIR: inputs, one per line (tokenised with DIR/tokenizer.json)",
    )
    g.add_argument(
        "--out", metavar="DIR", help="with --model: output folder (default runs/<model>)"
    )
    g.add_argument(
        "--steps",
        type=validate.int_at_least(1),
        help="with --model: Adam steps of the optimised prefix (default 300)",
    )
    g.add_argument(
        "--prefix-length",
        type=validate.int_at_least(1),
        help="with --model: prefix positions n_p (default 1)",
    )


MODEL_ONLY = {
    "out": "--out",
    "steps": "--steps",
    "prefix_length": "--prefix-length",
    "adapter": "--adapter",
    "text": "--text",
}


def run_if_model(args):
    """Run ``verify --model`` and return its exit code, or None when ``--model`` was not given
    (then the model-only options must not be given either: they would be ignored)."""
    if getattr(args, "model", None) is None:
        for dest, flag in MODEL_ONLY.items():
            if getattr(args, dest, None) is not None:
                raise ToolkitError(
                    f"{flag} only applies with --model (e.g. --model minilm); got {flag} without it"
                )
        return None
    return run_model_verify(args)


def run_model_verify(args) -> int:
    hf = args.model.startswith("hf:")
    if args.model not in MODELS and not hf:
        raise ToolkitError(f"unknown model {args.model!r}; expected one of: {', '.join(MODELS)}")
    for option in ("architecture", "method", "atlas", "plugin"):
        if getattr(args, option, None):
            raise ToolkitError(
                f"--{option} cannot be combined with --model (the model fixes the architecture "
                "and checks prefixes); drop one of them"
            )
    if hf:  # a Hugging Face folder (and a PEFT adapter): cli/interop.py
        from cli.interop import run_hf_verify

        return run_hf_verify(args)
    for option in ("adapter", "text"):
        if getattr(args, option, None) is not None:
            raise ToolkitError(
                f"--{option} applies to --model hf:DIR only, got it with {args.model}"
            )
    import jax
    import jax.numpy as jnp

    from pretrained.checks import check_options, format_report, run_checks
    from pretrained.figures import plot_attention, strongest_head
    from pretrained.parity import format_parity, parity
    from theory.context import Prefix

    n_p = 1 if args.prefix_length is None else args.prefix_length
    steps = 300 if args.steps is None else args.steps
    theorems = check_options(n_p, args.trials, steps, args.seed, args.theorem)
    out = Path(args.out or Path("runs") / args.model)
    validate.output_dir(out, "--out")
    start = time.perf_counter()
    with Progress.for_args(args) as progress:
        progress(f"verify --model {args.model}: parity with the reference outputs")
        parities = [parity("float32"), parity("float64")]
    print(format_parity(parities))
    print()
    with Progress.for_args(args) as progress:
        progress(
            f"verify --model {args.model}: optimising a prefix ({steps} steps) and checking "
            f"every layer ({args.trials} random prefixes)"
        )
        report, extras = run_checks(
            n_p=n_p, trials=args.trials, steps=steps, seed=args.seed, theorems=theorems
        )
    print(format_report(report))

    model, trained = extras["model"], extras["trained"]
    ids = model.tokenizer.encode(trained.source)
    tokens, ids = ids.tokens, jnp.asarray(ids.ids, jnp.int32)
    deep = report.witness.get("layer", model.arch.n_layers - 1)
    pngs = []
    random_prefix = Prefix(
        jax.random.normal(jax.random.PRNGKey(args.seed), trained.prefix.states.shape, jnp.float32)
    )
    for name, prefix in (("optimised", trained.prefix), ("random", random_prefix)):
        heads = [
            (layer, strongest_head(model.params, model.arch, ids, prefix, layer))
            for layer in (0, deep)
        ]
        title = (
            f"all-MiniLM-L6-v2, {name} prefix (n_p={n_p}), float32: layer 0 (unconditional "
            f"statement holds) and layer {deep} (holds only given the layer's inputs)"
        )
        pngs.append(
            str(
                plot_attention(
                    model.params,
                    model.arch,
                    ids,
                    tokens,
                    prefix,
                    heads,
                    out / f"attention_{name}.png",
                    title,
                )
            )
        )
    elapsed = time.perf_counter() - start

    table = format_parity(parities) + "\n\n" + format_report(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "residuals.txt").write_text(table + "\n")
    payload = {
        "report": report.to_json(),
        "parity": parities,
        "figures": pngs,
        "elapsed_s": elapsed,
        "training_losses_every_10": trained.losses[::10].tolist(),
    }
    (out / "report.json").write_text(json.dumps(payload, indent=1) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\nwrote {out / 'residuals.txt'}, {out / 'report.json'}, " + ", ".join(pngs))
    print(f"elapsed {elapsed:.1f} s")
    return 0 if report.as_expected and all(p["agrees"] for p in parities) else 1
