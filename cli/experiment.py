"""``prefix-theory experiment NAME|all [--quick|--full] [--out DIR] [--seed S] [--fresh]``.

Runs the docs/theory.md §4 experiments, prints the Markdown table, writes
``{out}/{name}.json``, ``{out}/results.md``, PNGs and checkpoints (``{out}/checkpoints``;
a rerun resumes them).  Exit 0 when every claim holds (always in --quick mode), 1 otherwise, 2 on
usage errors.
"""

from __future__ import annotations

import os
import sys
import time

from cli import validate


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="train and evaluate the prefix-tuning experiments (docs/theory.md §4)"
    )
    p.add_argument(
        "name", help="experiment: new_attention, elicit, combine, lora, prefix_attention, or all"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="mode",
        help="tiny models, minutes (CI, notebooks); claims are not expected to hold",
    )
    mode.add_argument(
        "--full",
        action="store_const",
        const="full",
        dest="mode",
        help="the paper's model sizes and iteration counts (for a GPU)",
    )
    p.add_argument("--out", help="output directory (default runs/<mode>)")
    p.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="seed of every draw: init, data, test set, in [0, 2^32) (default 0)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="retrain from scratch, replacing this run's checkpoints (default: resume them)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (as --quiet; they are shown only when stderr is a terminal)",
    )
    p.add_argument(
        "--seed-runs",
        nargs="+",
        metavar="SEED=DIR",
        default=(),
        help="output directories of the same experiments run with other seeds: results.md "
        "then tabulates every claim for each seed, with the spread",
    )
    # training uses no batched LAPACK, and XLA's default CPU pool runs it fastest
    p.set_defaults(run=run, mode="default", lapack_pool=False)


def run(args) -> int:
    from experiments import report
    from experiments.runner import Runner
    from experiments.suite import EXPERIMENTS, get_experiment
    from theory.errors import ToolkitError

    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    seed_runs = {}
    for item in args.seed_runs:
        seed, _, path = item.partition("=")
        if not seed.strip().lstrip("-").isdigit() or not path or not os.path.isdir(path):
            raise ToolkitError(
                f"--seed-runs: expected SEED=DIR with an integer seed and an existing "
                f"directory, got {item!r}"
            )
        seed_runs[int(seed)] = path
    for name in names:
        get_experiment(name)  # unknown names fail before any training
    validate.output_dir(args.out or os.path.join("runs", args.mode), "--out")
    tty = getattr(sys.stderr, "isatty", None)
    progress = bool(tty and tty()) and not (args.no_progress or args.quiet)
    runner = Runner(args.mode, out=args.out, seed=args.seed, fresh=args.fresh, progress=progress)
    start = time.perf_counter()
    ok = True
    for name in names:
        result = get_experiment(name)(runner)
        report.write_json(result, runner.out)
        ok &= all(c["holds"] for c in result["claims"])
        for c in result["claims"]:
            print(
                f"[{'ok' if c['holds'] else 'FAILS'}] {name}: "
                f"{c['claim']}: {c['value']:.4g} {c['op']} {c['target']:g}"
            )
    md = report.write_markdown(runner.out, {**seed_runs, args.seed: runner.out})
    print(f"results: {md}  (elapsed {time.perf_counter() - start:.1f} s, mode {args.mode})")
    if args.mode == "quick":
        print("quick mode: tiny models, the claims are reported but not expected to hold (exit 0)")
        return 0
    return 0 if ok else 1
