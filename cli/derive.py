"""``prefix-theory derive``: a theorem's derivation, every step machine-checked."""

from __future__ import annotations

from cli import validate
from cli.progress import Progress
from theory.errors import ToolkitError


def add_parser(sub) -> None:
    p = sub.add_parser("derive", help="print a theorem's derivation, every step machine-checked")
    p.add_argument("theorem", nargs="?", help="theorem id (see --list)")
    p.add_argument(
        "--list", action="store_true", help="list the registered theorems with their section"
    )
    p.add_argument("--all", action="store_true", help="every registered theorem")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    style.add_argument(
        "--markdown",
        action="store_true",
        help="Markdown (with --all: the document docs/derivations.md: statement, assumptions, "
        "numeric check, controls, derivation)",
    )
    p.add_argument("--output", metavar="PATH", help="write to PATH instead of printing")
    p.add_argument(
        "--substitute",
        action="store_true",
        help="evaluate the derivation at a random numeric instance next to the JAX check's values",
    )
    p.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="seed of the --substitute instance, in [0, 2^32) (default 0)",
    )
    p.add_argument(
        "--architecture",
        default=None,
        help="architecture of the --substitute JAX run (default paper, or the first one the "
        "theorem applies to)",
    )
    p.set_defaults(run=run)


def _list_rows(theorems) -> str:
    return "\n".join(f"{thm.id:28s} {thm.section:6s} {thm.statement}" for thm in theorems)


def run(args) -> int:
    from theory.registry import ARCHITECTURES, THEOREMS

    if args.list:
        print(_list_rows(THEOREMS.values()))
        return 0
    if args.all == bool(args.theorem):
        got = f"both {args.theorem!r} and --all" if args.all else "neither"
        raise ToolkitError(
            f"derive needs exactly one of: a theorem id, --all, --list; got {got}; "
            "theorem ids: " + ", ".join(THEOREMS)
        )
    if args.substitute:
        return _run_substitute(args, THEOREMS, ARCHITECTURES)
    validate.output_file(args.output, "--output")
    style = "latex" if args.latex else "markdown" if args.markdown else "text"
    theorems = list(THEOREMS.values()) if args.all else [THEOREMS.lookup(args.theorem)]
    if args.all and args.markdown:
        from render.derivations import markdown_document

        text = markdown_document()
    else:
        text = "\n\n".join(_with_coq(thm, style) for thm in theorems)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        print(f"wrote {len(theorems)} derivation(s) to {args.output}")
    else:
        print(text)
    return 0 if all(thm.derivation().verified() for thm in theorems) else 1


def _with_coq(theorem, style: str) -> str:
    """The sympy derivation, then (plain text) the Coq statements that prove it in general."""
    text = theorem.derivation().render(style)
    if style != "text" or theorem.coq is None:
        return text
    from proofs.catalogue import coq_statement

    return f"{text}\n\n{coq_statement(theorem.id)}"


def _run_substitute(args, theorems, architectures) -> int:
    from render.derivations import substitute_text
    from theory.instance import substitute

    used = [
        flag
        for flag, on in (
            ("--all", args.all),
            ("--output", args.output),
            ("--latex", args.latex),
            ("--markdown", args.markdown),
        )
        if on
    ]
    if used:
        raise ToolkitError(
            "--substitute takes one theorem id and prints text; got it with " + ", ".join(used)
        )
    theorem = theorems.lookup(args.theorem)
    if args.architecture is not None:
        architectures.lookup(args.architecture)
    inputs = {}
    if theorem.id == "capacity":  # the constructions attain the counts the theorem states
        from constructions.capacity import counts

        inputs["construction_counts"] = counts(3, 3)
    with Progress.for_args(args) as progress:
        instance = substitute(theorem, args.seed, args.architecture, progress=progress, **inputs)
    print(substitute_text(instance))
    return 0 if instance.as_expected else 1
