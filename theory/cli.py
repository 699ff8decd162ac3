"""The ``prefix-theory`` command line.

    prefix-theory verify [--seed S] [--trials N] [--theorem ID]... [--architecture NAME]...
                         [--method NAME]... [--json PATH]
    prefix-theory verify --model minilm [--out DIR] [--steps N] [--prefix-length N] [--trials N] [--seed S]
    prefix-theory derive THEOREM [--latex] | --list

Exit codes: 0 every verdict as expected, 1 some verdict unexpected, 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from theory.errors import ToolkitError


class _Parser(argparse.ArgumentParser):
    def error(self, message):                      # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_verify(sub):
    p = sub.add_parser("verify", help="check every registered theorem on every registered architecture")
    p.add_argument("--seed", type=int, default=0, help="base seed of the random trials (default 0)")
    p.add_argument("--trials", type=int, default=16, help="random models per row, vmapped (default 16)")
    p.add_argument("--theorem", action="append", help="theorem id (repeatable; default all)")
    p.add_argument("--architecture", action="append", help="architecture name (repeatable; default all)")
    p.add_argument("--method", action="append", help="adaptation method (repeatable; default all)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--atlas", nargs="?", const=".", metavar="DIR",
                   help="print the theorem x architecture grid and save DIR/atlas.md and DIR/atlas.png (default .)")
    p.add_argument("--plugin", action="append", metavar="MODULE",
                   help="import a module (dotted name or .py path) that registers variants first (repeatable)")
    import pretrained.cli; pretrained.cli.add_model_arguments(p)  # noqa: E401,E702  (--model: real weights)
    p.set_defaults(run=_run_verify)


def _run_verify(args) -> int:
    import pretrained.cli  # --model: the checks on real weights (pretrained/cli.py)
    if (code := pretrained.cli.run_if_model(args)) is not None:
        return code
    from theory.verify import format_table, run_verify
    for spec in args.plugin or ():      # user variants (docs/extending.md)
        from theory.zoo import load_plugin
        load_plugin(spec)
    start = time.perf_counter()
    results = run_verify(args.theorem, args.architecture, args.method, seed=args.seed, trials=args.trials)
    elapsed = time.perf_counter() - start
    print(format_table(results))
    print(f"elapsed {elapsed:.1f} s")
    if args.atlas is not None:
        from theory.atlas import write_atlas
        text, md_path, png_path = write_atlas(results, args.atlas, seed=args.seed, trials=args.trials,
                                              elapsed=elapsed)
        print("\n" + text.split("\n## ")[0].rstrip() + f"\n\natlas written to {md_path} and {png_path}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": [r.to_json() for r in results], "seed": args.seed, "trials": args.trials,
                       "elapsed_s": elapsed}, fh, indent=2)
    return 0 if all(r.as_expected for r in results) else 1


def _add_derive(sub):
    p = sub.add_parser("derive", help="print a theorem's derivation, every step machine-checked")
    p.add_argument("theorem", nargs="?", help="theorem id (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered theorems")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    p.set_defaults(run=_run_derive)


def _run_derive(args) -> int:
    from theory.registry import THEOREMS, get_theorem
    if args.list:
        for thm in THEOREMS.values():
            print(f"{thm.id:28s} {thm.section:6s} {thm.statement}")
        return 0
    if not args.theorem:
        raise ToolkitError("derive needs a theorem id (or --list); expected one of: " + ", ".join(THEOREMS))
    derivation = get_theorem(args.theorem).derivation()
    print(derivation.render("latex" if args.latex else "text"))
    return 0 if derivation.verified() else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prefix-theory", description="Verify the theory of prefix-tuning (Petrov et al., 2024).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_verify(sub)
    _add_derive(sub)
    import experiments.cli; experiments.cli.add_parser(sub)  # noqa: E401,E702  (prefix-theory experiment)
    import constructions.cli; constructions.cli.add_parser(sub)  # noqa: E401,E702  (prefix-theory construct)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import theory  # noqa: F401  (enables float64, registers everything)
        return args.run(args)
    except ToolkitError as exc:
        print(f"prefix-theory: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
