"""``prefix-theory verify``: every registered theorem on every registered architecture."""

from __future__ import annotations

import json
import time

from cli import model as model_cli
from cli import validate
from cli.progress import Progress


def add_parser(sub) -> None:
    p = sub.add_parser(
        "verify", help="check every registered theorem on every registered architecture"
    )
    p.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="base seed of the random trials, in [0, 2^32) (default 0)",
    )
    p.add_argument(
        "--trials",
        type=validate.int_at_least(1),
        default=16,
        help="random models per row, vmapped (default 16)",
    )
    p.add_argument("--theorem", action="append", help="theorem id (repeatable; default all)")
    p.add_argument(
        "--architecture", action="append", help="architecture name (repeatable; default all)"
    )
    p.add_argument("--method", action="append", help="adaptation method (repeatable; default all)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--atlas",
        nargs="?",
        const=".",
        metavar="DIR",
        help="print the theorem x architecture grid and save DIR/atlas.md and DIR/atlas.png "
        "(default .)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import a module (dotted name or .py path) that registers variants first (repeatable)",
    )
    model_cli.add_model_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    validate.output_file(args.json, "--json")
    if (code := model_cli.run_if_model(args)) is not None:
        return code
    validate.output_dir(args.atlas, "--atlas")
    from render.table import format_table
    from theory import verify
    from theory.zoo import load_plugin

    for spec in args.plugin or ():  # user variants (docs/extending.md)
        load_plugin(spec)
    start = time.perf_counter()
    with Progress.for_args(args) as progress:
        results = verify.run_verify(
            args.theorem,
            args.architecture,
            args.method,
            seed=args.seed,
            trials=args.trials,
            progress=progress,
        )
    elapsed = time.perf_counter() - start
    print(format_table(results))
    print(f"elapsed {elapsed:.1f} s")
    if args.atlas is not None:
        from render.atlas import write_atlas

        text, md_path, png_path = write_atlas(
            results, args.atlas, seed=args.seed, trials=args.trials, elapsed=elapsed
        )
        summary = text.split("\n## ")[0].rstrip()
        print(f"\n{summary}\n\natlas written to {md_path} and {png_path}")
    if args.json:
        payload = {
            "results": [r.to_json() for r in results],
            "seed": args.seed,
            "trials": args.trials,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return 0 if all(r.as_expected for r in results) else 1
