"""The ``prefix-theory`` command line.

    prefix-theory verify [--seed S | --seeds SPEC] [--trials N] [--theorem ID]...
                         [--architecture NAME]... [--method NAME]... [--json PATH]
                         [--atlas [DIR]] [--plugin MODULE]... [--results PATH]
                         [--devices N | --mesh SPEC]
                         [--coordinator HOST:PORT --num-processes P --process-id I]
    prefix-theory verify --model minilm [--out DIR] [--steps N] [--prefix-length N] ...
    prefix-theory derive THEOREM [--latex|--markdown] [--substitute] | --all | --list
    prefix-theory prove [THEOREM ...] [--negative-controls] [--json PATH]
    prefix-theory construct unconditional|map|pairs|certificate|ceiling ...
    prefix-theory experiment NAME|all [--quick|--full] ...
    prefix-theory verify --model hf:DIR [--adapter ADAPTER_DIR] [--text FILE] ...
    prefix-theory inspect --model hf:DIR --adapter ADAPTER_DIR [--text FILE] [--json P] [--png P]
    prefix-theory export --model hf:DIR --context FILE.npz --out ADAPTER_DIR [--force]
    prefix-theory export --experiment-checkpoint CKPT [--base CKPT] --out DIR [--force]

Exit codes (every subcommand):
  0  every verdict as expected (every claim holds, every certificate certified)
  1  some verdict unexpected or missing (an ERROR row: a check raised, a residual is not
     finite, a context had no effect), a claim fails, or a certificate does not certify
  2  usage or input error: a one-line message says what was expected and what was given
  3  internal error: a one-line message and the file the full traceback was written to
     (``--debug`` prints the traceback instead)

The statements being checked are in docs/theory.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from theory.errors import ToolkitError

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

EPILOG = """exit codes: 0 all as expected; 1 a verdict unexpected or missing (ERROR row), a claim
fails or a certificate does not certify; 2 usage or input error (one line; nothing written);
3 internal error (traceback written to a file; --debug prints it). Progress goes to stderr when
it is a terminal (--quiet: none). Statements: docs/theory.md. Plug-ins: --plugin, or
$PREFIX_THEORY_PLUGINS."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    """``--debug`` and ``--quiet`` on the main parser and every subcommand (either place works),
    and the exit codes in every ``--help``."""
    default = False if top else argparse.SUPPRESS  # a subcommand does not reset the main's value
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="on an internal error, print the full traceback",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        default=default,
        help="no progress on stderr (progress is shown only when stderr is a terminal)",
    )
    if not top:
        parser.epilog = EPILOG
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_common(child, top=False)


def build_parser() -> argparse.ArgumentParser:
    from cli import construct, derive, experiment, interop, prove, verify

    parser = _Parser(
        prog="prefix-theory",
        description="Verify the theory of prompting and prefix-tuning (Petrov et al., 2024).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    verify.add_parser(sub)
    derive.add_parser(sub)
    prove.add_parser(sub)
    experiment.add_parser(sub)
    construct.add_parser(sub)
    interop.add_parsers(sub)
    _add_common(parser, top=True)
    return parser


def _internal_error(exc: BaseException, debug: bool) -> int:
    """Report an unexpected exception in one line (the traceback goes to a file)."""
    text = "".join(traceback.format_exception(exc))
    if debug:
        sys.stderr.write(text)
        return EXIT_INTERNAL
    fd, path = tempfile.mkstemp(prefix="prefix-theory-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    first = str(exc).splitlines()[0] if str(exc) else ""
    print(
        f"prefix-theory: internal error: {type(exc).__name__}: {first} "
        f"(full traceback in {path}; rerun with --debug to print it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code,
    argparse's own included (2 for a usage error, 0 for ``--help``)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else EXIT_OK
    try:
        import theory
        from cli import scale

        # float64 and the XLA CPU workarounds (theory/runtime.py); training needs no LAPACK pool
        theory.configure_jax(lapack_pool=getattr(args, "lapack_pool", True))
        if getattr(args, "check", None) is not None:
            args.check(args)  # option values, before any process or device is set up
        scale.start(args)  # jax.distributed and devices: before anything computes (cli/scale.py)
        theory.load_env_plugins()
        return args.run(args)
    except ToolkitError as exc:
        print(f"prefix-theory: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into a program that stopped reading (head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("prefix-theory: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _internal_error(exc, args.debug)


if __name__ == "__main__":
    sys.exit(main())
