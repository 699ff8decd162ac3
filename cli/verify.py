"""``prefix-theory verify``: every registered theorem on every registered architecture."""

from __future__ import annotations

import json
import time

from cli import model as model_cli
from cli import scale, validate
from cli.progress import Progress
from theory.errors import ToolkitError
from theory.trials import SEED_BOUND


def add_parser(sub) -> None:
    p = sub.add_parser(
        "verify", help="check every registered theorem on every registered architecture"
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="base seed of the random trials, in [0, 2^32) (default 0)",
    )
    seeds.add_argument(
        "--seeds",
        metavar="SPEC",
        help="a sweep over seeds: A:B (A..B-1), a list 0,3,7, or both (0:100,200); each "
        "architecture is compiled once for all of them",
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
    p.add_argument(
        "--results",
        metavar="PATH",
        help="a sweep's results file (JSON Lines, keyed by model, theorem, method, seed), "
        "appended as each architecture x seed finishes; rerun the same command to resume an "
        "interrupted sweep where it stopped",
    )
    model_cli.add_model_arguments(p)
    scale.add_scale_arguments(
        p,
        "spread the work over N devices: the random trials (each device checks its slice), or "
        "with --model hf:DIR the parameters (heads, MLP hidden units, vocabulary)",
    )
    p.set_defaults(run=run, check=check_sweep_options)


MAX_SWEEP_SEEDS = 1_000_000  # a longer sweep is a typo, not a plan (each seed is a full run)


def parse_seeds(spec: str) -> list[int]:
    """``"0:3,7"`` -> ``[0, 1, 2, 7]`` (ToolkitError naming the bad part): seeds in [0, 2^32),
    at most :data:`MAX_SWEEP_SEEDS` of them."""
    seeds: list[int] = []
    for part in spec.split(","):
        a, colon, b = part.strip().partition(":")
        ok = a.isdigit() and (not colon or (b.isdigit() and int(b) > int(a)))
        end = (int(b) if colon else int(a) + 1) if ok else 0  # seeds a .. end-1
        if not ok or end > SEED_BOUND:
            raise ToolkitError(
                "--seeds: expected A:B (A < B, seeds A..B-1) or a seed, each in [0, 2^32), "
                f"comma-separated, got {part.strip()!r} in {spec!r}"
            )
        if len(seeds) + end - int(a) > MAX_SWEEP_SEEDS:
            raise ToolkitError(
                f"--seeds: expected at most {MAX_SWEEP_SEEDS:,} seeds, got {spec!r} "
                f"(at least {len(seeds) + end - int(a):,})"
            )
        seeds += range(int(a), end)
    if len(set(seeds)) != len(seeds):
        raise ToolkitError(f"--seeds: expected each seed once, got repeats in {spec!r}")
    return seeds


def check_sweep_options(args) -> None:
    """Options of the random-trial sweep that other modes cannot take (exit 2, before JAX)."""
    if args.seeds is not None:
        parse_seeds(args.seeds)
    if args.model is not None:
        for flag, value in (("--seeds", args.seeds), ("--results", args.results)):
            if value is not None:
                raise ToolkitError(
                    f"{flag} applies to the random-trial sweep, not to --model (which checks "
                    "one model for one --seed)"
                )
        if args.model == "minilm" and scale.requested(args):
            raise ToolkitError(
                "--devices, --mesh and the multi-process options apply to the random-trial "
                "sweep and to --model hf:DIR; --model minilm runs on one device"
            )
    if args.atlas is not None and args.seeds is not None:
        raise ToolkitError("--atlas draws one seed's grid; drop --seeds (or --atlas)")


def run(args) -> int:
    validate.output_file(args.json, "--json")
    if (code := model_cli.run_if_model(args)) is not None:
        return code
    validate.output_dir(args.atlas, "--atlas")
    from theory.zoo import load_plugin

    for spec in args.plugin or ():  # user variants (docs/extending.md)
        load_plugin(spec)
    return run_checks(args, scale.mesh_for(args, "batch"))


def run_checks(args, mesh) -> int:
    """``verify`` on random trials: one seed or several, on one device or a mesh of them, in one
    process or several, optionally into a resumable results file."""
    import numpy as np

    from cli.results import ResultsFile
    from render.sweep import format_sweep
    from render.table import format_table
    from theory.sharding import from_process0
    from theory.trials import TrialShape
    from theory.verify import by_architecture, plan, result_key, run_verify, unit_keys

    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    shape = TrialShape()
    main_process = scale.is_main_process()
    keys = []  # every result's key, in the order of the table
    for unit in by_architecture(plan(args.theorem, args.architecture, args.method)):
        for s in seeds:
            keys += unit_keys(unit, s)
    store, done = None, frozenset()
    if args.results is not None:
        # Process 0 reads the file; every process skips what process 0 found done, so all run
        # the same units even without a shared file system.
        config = {"trials": args.trials, "shape": shape._asdict()}
        store = ResultsFile(args.results, config) if main_process else None
        found = store.done() if store is not None else frozenset()
        flags = from_process0(np.array([k in found for k in keys], np.int32))
        done = frozenset(k for k, f in zip(keys, flags, strict=True) if f)
        if main_process and done:
            print(f"{args.results}: {len(done)} of {len(keys)} results already there; resuming")
    if mesh is not None and main_process:
        print(f"running on {scale.describe(mesh)}")
    start = time.perf_counter()
    on_rows = store.append if store is not None else None
    with Progress.for_args(args) as progress:
        new = run_verify(
            args.theorem,
            args.architecture,
            args.method,
            trials=args.trials,
            shape=shape,
            progress=progress,
            seeds=seeds,
            mesh=mesh,
            skip=done,
            on_rows=on_rows,
        )
    elapsed = time.perf_counter() - start
    rows = dict(store.rows) if store is not None else {result_key(r): r for r in new}
    results = [rows[k] for k in keys if k in rows]
    code = 0 if len(results) == len(keys) and all(r.as_expected for r in results) else 1
    # Only process 0 holds the resumed rows: its verdict is every process's exit code.
    code = int(from_process0(np.array(code, np.int32)))
    if not main_process:
        print(f"process {scale.process_index()}: done; process 0 prints and writes the results")
        return code
    print(format_table(results) if len(seeds) == 1 else format_sweep(results))
    resumed = f" ({len(new)} results computed, {len(done)} resumed)" if done else ""
    print(f"elapsed {elapsed:.1f} s{resumed}")
    if args.results is not None:
        print(f"results in {args.results}")
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
            **({"seed": seeds[0]} if len(seeds) == 1 else {"seeds": seeds}),
            "trials": args.trials,
            "elapsed_s": elapsed,
        }
        if mesh is not None:
            payload["mesh"] = dict(mesh.shape)
            payload["processes"] = scale.process_count()
        with open(args.json, "w") as fh:
            json.dump(payload, fh, indent=2)
    return code
