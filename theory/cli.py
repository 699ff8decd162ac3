"""The ``prefix-theory`` command line.

    prefix-theory verify [--seed S] [--trials N] [--theorem ID]... [--architecture NAME]...
                         [--method NAME]... [--json PATH]
    prefix-theory verify --model minilm [--out DIR] [--steps N] [--prefix-length N] [--trials N] [--seed S]
    prefix-theory derive THEOREM [--latex] | --list
    prefix-theory prove [THEOREM ...] [--negative-controls] [--json PATH]

Exit codes: 0 every verdict as expected, 1 some verdict unexpected, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from theory.errors import ToolkitError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_verify(sub):
    p = sub.add_parser(
        "verify", help="check every registered theorem on every registered architecture"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the random trials (default 0)")
    p.add_argument(
        "--trials", type=int, default=16, help="random models per row, vmapped (default 16)"
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
        help="print the theorem x architecture grid and save DIR/atlas.md and DIR/atlas.png (default .)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="import a module (dotted name or .py path) that registers variants first (repeatable)",
    )
    import pretrained.cli

    pretrained.cli.add_model_arguments(p)  # noqa: E401,E702  (--model: real weights)
    p.set_defaults(run=_run_verify)


def _run_verify(args) -> int:
    import pretrained.cli  # --model: the checks on real weights (pretrained/cli.py)

    if (code := pretrained.cli.run_if_model(args)) is not None:
        return code
    from theory.verify import format_table, run_verify

    for spec in args.plugin or ():  # user variants (docs/extending.md)
        from theory.zoo import load_plugin

        load_plugin(spec)
    start = time.perf_counter()
    results = run_verify(
        args.theorem, args.architecture, args.method, seed=args.seed, trials=args.trials
    )
    elapsed = time.perf_counter() - start
    print(format_table(results))
    print(f"elapsed {elapsed:.1f} s")
    if args.atlas is not None:
        from theory.atlas import write_atlas

        text, md_path, png_path = write_atlas(
            results, args.atlas, seed=args.seed, trials=args.trials, elapsed=elapsed
        )
        print(
            "\n"
            + text.split("\n## ")[0].rstrip()
            + f"\n\natlas written to {md_path} and {png_path}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "results": [r.to_json() for r in results],
                    "seed": args.seed,
                    "trials": args.trials,
                    "elapsed_s": elapsed,
                },
                fh,
                indent=2,
            )
    return 0 if all(r.as_expected for r in results) else 1


def _add_derive(sub):
    p = sub.add_parser("derive", help="print a theorem's derivation, every step machine-checked")
    p.add_argument("theorem", nargs="?", help="theorem id (see --list)")
    p.add_argument(
        "--list", action="store_true", help="list the registered theorems with their paper section"
    )
    p.add_argument("--all", action="store_true", help="every registered theorem")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    style.add_argument(
        "--markdown",
        action="store_true",
        help="Markdown (with --all: the document of docs/derivations.md: statement, assumptions, "
        "numeric check, derivation)",
    )
    p.add_argument("--output", metavar="PATH", help="write to PATH instead of printing")
    p.add_argument(
        "--substitute",
        action="store_true",
        help="evaluate the derivation at a random numeric instance next to the JAX check's values",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the --substitute instance (default 0)"
    )
    p.add_argument(
        "--architecture",
        default="paper",
        help="architecture of the --substitute JAX run (default paper)",
    )
    p.set_defaults(run=_run_derive)


def _run_derive(args) -> int:
    from theory.registry import THEOREMS, get_theorem

    if args.list:
        for thm in THEOREMS.values():
            print(f"{thm.id:28s} {thm.section:6s} {thm.statement}")
        return 0
    if args.all == bool(args.theorem):
        raise ToolkitError(
            "derive needs exactly one of: a theorem id, --all, --list; got "
            + (f"both {args.theorem!r} and --all" if args.all else "neither")
            + "; theorem ids: "
            + ", ".join(THEOREMS)
        )
    if args.substitute:
        from theory.architecture import get_architecture
        from theory.theorems.report import substitute

        if args.all or args.output or args.latex or args.markdown:
            raise ToolkitError(
                "--substitute takes one theorem id and prints text; got it with "
                + ", ".join(
                    f
                    for f, on in (
                        ("--all", args.all),
                        ("--output", args.output),
                        ("--latex", args.latex),
                        ("--markdown", args.markdown),
                    )
                    if on
                )
            )
        if args.seed < 0:
            raise ToolkitError(f"--seed must be an int >= 0, got {args.seed}")
        get_architecture(args.architecture)
        text = substitute(get_theorem(args.theorem), args.seed, args.architecture)
        print(text)
        return 1 if "DISAGREES" in text else 0
    style = "latex" if args.latex else "markdown" if args.markdown else "text"
    theorems = list(THEOREMS.values()) if args.all else [get_theorem(args.theorem)]
    if args.all and args.markdown:
        from theory.theorems.report import markdown_document

        text = markdown_document()
    else:
        text = "\n\n".join(thm.derivation().render(style) for thm in theorems)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        print(f"wrote {len(theorems)} derivation(s) to {args.output}")
    else:
        print(text)
    return 0 if all(thm.derivation().verified() for thm in theorems) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prefix-theory",
        description="Verify the theory of prefix-tuning (Petrov et al., 2024).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_verify(sub)
    _add_derive(sub)
    import experiments.cli

    experiments.cli.add_parser(sub)  # noqa: E401,E702  (prefix-theory experiment)
    import constructions.cli

    constructions.cli.add_parser(sub)  # noqa: E401,E702  (prefix-theory construct)
    import proofs.cli

    proofs.cli.add_parser(sub)  # prefix-theory prove (Coq)
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
