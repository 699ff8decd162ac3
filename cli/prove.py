"""``prefix-theory prove [THEOREM ...]``: compile the Coq development and report every theorem.

Exit codes: 0 every requested theorem proved (and, with --negative-controls, every false
variant rejected by coqc), 1 some theorem failed, 2 usage error (unknown theorem id) or coqc
missing (the message gives the apt-get command).
"""

from __future__ import annotations

import sys

from cli import validate


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "prove",
        help="compile the Coq proofs of the theorems (general dimension) and report each one",
    )
    p.add_argument(
        "theorems", nargs="*", metavar="THEOREM", help="theorem ids (default: every one)"
    )
    p.add_argument(
        "--list", action="store_true", help="list the theorem ids with their Coq theorems"
    )
    p.add_argument(
        "--negative-controls",
        action="store_true",
        help="also check that coqc rejects the false variants (proofs/negative)",
    )
    p.add_argument(
        "--each-theorem",
        action="store_true",
        help="Print Assumptions on every exported theorem separately (about 1 s each; default: "
        "once on a term using all of them, which shows the union)",
    )
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument(
        "--build-dir",
        metavar="DIR",
        help="compile in DIR and keep it (default: a temporary directory)",
    )
    p.add_argument(
        "--jobs",
        type=validate.int_at_least(1),
        default=2,
        help="coqc processes at a time (default 2)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from proofs.catalogue import ENTRIES
    from proofs.errors import CoqNotFound, ProofsError
    from proofs.runner import prove

    if args.list:
        for entry in ENTRIES.values():
            tag = "" if entry.registered else "  (not a registered theorem)"
            print(f"{entry.theorem_id:26s} {', '.join(entry.names)}{tag}")
        return 0
    validate.output_file(args.json, "--json")
    validate.output_dir(args.build_dir, "--build-dir")
    try:
        report = prove(
            args.theorems,
            args.build_dir,
            args.jobs,
            controls=args.negative_controls,
            each_theorem=args.each_theorem,
        )
    except (ProofsError, CoqNotFound) as exc:
        print(f"prefix-theory prove: error: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report.ok else 1
