"""``prefix-theory construct``: run the capacity constructions of docs/theory.md §2.

    prefix-theory construct unconditional "I love transformers!" [--N N] [--T T] [--dtype float32]
                                         [--section3]
    prefix-theory construct map (--example swapcase|animals | --json FILE) [--input C] [--T T]
    prefix-theory construct pairs [--V 10] [--seed 0] [--digits K] [--exact] [--T T]
    prefix-theory construct certificate unconditional|conditional|two_token --V V [--N N] [--T T]
                                        [--derive]
    prefix-theory construct ceiling [--V V] [--N N]

Every model is a weight construction of ``theory.model.forward``; every run prints
the certificate of the model it used. Exit 0 when the output is right and the certificate
certifies, 1 otherwise (a wrong output, or NOT CERTIFIED), 2 on bad input.
"""

from __future__ import annotations

import numpy as np

from cli import validate
from cli.progress import Progress
from theory.errors import ToolkitError

DTYPES = ("float64", "float32")
CEILING_AUTO_MAX_N = 1024  # --ceiling auto: enumerate the hard tokens up to this N (minutes)


def add_parser(subparsers) -> None:
    """Add the ``construct`` subcommand."""
    p = subparsers.add_parser(
        "construct", help="weight constructions: one virtual token controls the output (§2)"
    )
    sub = p.add_subparsers(dest="construction", required=True, parser_class=type(p))

    u = sub.add_parser(
        "unconditional", help="Theorem 1: one virtual token makes the model emit TEXT"
    )
    u.add_argument("text", help="the sequence to generate (characters of the vocabulary)")
    u.add_argument("--N", type=validate.int_at_least(1), help="model length N (default: len(TEXT))")
    _common(u)
    u.add_argument(
        "--vocab",
        choices=("printable", "graphic"),
        default="printable",
        help="printable: space + the 94 graphic ASCII characters (default); graphic: the 94 only",
    )
    u.add_argument(
        "--method",
        choices=("jacobi", "sequential"),
        default="jacobi",
        help="greedy decoding algorithm",
    )
    u.add_argument(
        "--section3",
        action="store_true",
        help="also run the registered §3 theorem checks on this model with its virtual token",
    )
    u.add_argument(
        "--ceiling",
        choices=("auto", "on", "off"),
        default="auto",
        help="enumerate the hard-prompt ceiling (every single hard token generates N tokens, "
        f"in memory-bounded batches): auto = when N <= {CEILING_AUTO_MAX_N} (default)",
    )
    u.set_defaults(run=_run_unconditional)

    m = sub.add_parser(
        "map", help="Theorem 2: virtual tokens encode a map from a user token to a response"
    )
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--example", help="built-in map: swapcase | animals (capitals -> animals, small -> foods)"
    )
    src.add_argument(
        "--json", metavar="FILE", help='user map, a JSON object {"a": "response", ...}'
    )
    m.add_argument("--input", help="respond to this one character (default: print the whole table)")
    m.add_argument(
        "--vocab",
        choices=("printable", "graphic"),
        default="printable",
        help="printable: space + the 94 graphic ASCII characters (default); graphic: the 94 only",
    )
    _common(m)
    m.set_defaults(run=_run_map)

    t = sub.add_parser(
        "pairs", help="two user tokens: a random map [V]^2 -> [V] decoded by the model's MLP"
    )
    t.add_argument(
        "--V", type=validate.int_at_least(2), default=10, help="vocabulary size (default 10)"
    )
    t.add_argument(
        "--seed",
        type=validate.seed,
        default=0,
        help="seed of the random map, in [0, 2^32) (default 0)",
    )
    t.add_argument(
        "--digits",
        type=validate.int_at_least(1),
        help="base-B digits packed per coordinate (default: V, or the dtype's most)",
    )
    t.add_argument(
        "--exact",
        action="store_true",
        help="exact (rational/interval) evaluation: any V and digits",
    )
    _common(t)
    t.set_defaults(run=_run_pairs)

    c = sub.add_parser(
        "certificate", help="print a construction's certificate (and its derivation)"
    )
    c.add_argument("kind", choices=("unconditional", "conditional", "two_token"))
    c.add_argument(
        "--V", type=validate.int_at_least(2), default=95, help="vocabulary size (default 95)"
    )
    c.add_argument(
        "--N",
        type=validate.int_at_least(1),
        default=20,
        help="N (unconditional), N0 (conditional), digits (two_token)",
    )
    c.add_argument("--exact", action="store_true", help="two_token: exact mode")
    c.add_argument("--derive", action="store_true", help="also print the sympy derivation")
    _common(c)
    c.set_defaults(run=_run_certificate)

    h = sub.add_parser(
        "ceiling", help="hard-prompt ceiling: every single hard token vs one virtual token"
    )
    h.add_argument(
        "--V", type=validate.int_at_least(2), default=95, help="vocabulary size (default 95)"
    )
    h.add_argument(
        "--N", type=validate.int_at_least(1), default=20, help="sequence length (default 20)"
    )
    _common(h)
    h.set_defaults(run=_run_ceiling)


def _vocab(args):
    from constructions.vocab import ASCII, GRAPHIC, Vocabulary

    return ASCII if args.vocab == "printable" else Vocabulary(GRAPHIC)


def _common(p) -> None:
    p.add_argument(
        "--T",
        type=validate.temperature,
        help="inverse temperature in (0, 1e6] (default: smallest certified value, rounded up, + 1)",
    )
    p.add_argument(
        "--dtype", choices=DTYPES, default="float64", help="dtype of the weights (default float64)"
    )


def _header(c) -> str:
    a = c.arch
    return (
        f"construction {c.kind}: V={c.V}, T={c.T:g}, {np.dtype(c.dtype).name}; model: "
        f"{a.n_layers} layer, {a.n_heads} head(s), d_model={a.d_model}, ReLU MLP "
        f"depth {a.mlp_depth} width {a.d_mlp}, n_ctx={a.n_ctx} (theory.model.forward)"
    )


def _repeat(context, batch: int):
    """``context`` with a leading batch axis of ``batch`` copies."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (batch,) + x.shape), context)


def _margin(logits) -> np.ndarray:
    top2 = np.sort(np.asarray(logits), axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def _run_unconditional(args) -> int:
    from constructions.ceiling import hard_token_ceiling
    from constructions.generate import greedy_generate
    from constructions.unconditional import unconditional_model, virtual_token

    ASCII = _vocab(args)
    if not args.text:
        raise ToolkitError("text: expected at least one character, got an empty string")
    ids = ASCII.encode(args.text, what="text")
    N = len(ids) if args.N is None else args.N
    if N < len(ids):
        raise ToolkitError(
            f"text: {len(ids)} characters is longer than N={N}; use --N {len(ids)} or more"
        )
    c = unconditional_model(ASCII.size, N, args.T, dtype=args.dtype)
    ctx = virtual_token(c, ids)
    with Progress.for_args(args) as progress:
        progress(f"construct unconditional: greedy generation of {N} tokens ({args.method})")
        gen = greedy_generate(c, ctx, method=args.method)
        out = np.asarray(gen.tokens)
    print(_header(c))
    print(f"vocabulary: {ASCII.describe()} ({ASCII.size} tokens) + BOS")
    shown = ", ".join(f"{v:.4f}" for v in np.asarray(ctx.embeddings[0, : min(N, 8)]))
    print(f"virtual token s = (Y_i / V) = ({shown}{', ...' if N > 8 else ''})  [+ zeros elsewhere]")
    print(f"{'step':>4}  {'content so far':<24} -> next   attn on s   logit margin")
    margins, mass = _margin(gen.logits), np.asarray(gen.virtual_mass)
    for i in range(N):
        so_far = ASCII.decode(out[:i])
        so_far = "<BOS> " + repr(so_far if len(so_far) <= 16 else "..." + so_far[-13:])
        print(
            f"{i + 1:>4}  {so_far:<24} -> {ASCII.decode(out[i : i + 1])!r:<6} "
            f"{mass[i]:.6f}    {margins[i]:.3e}"
        )
    text = ASCII.decode(out[: len(ids)])
    ok = text == args.text
    print(
        f"generated: {text!r}  ({'matches' if ok else 'DOES NOT match'} "
        f"the target; {int(gen.passes)} forward passes, {args.method})"
    )
    print(c.certificate.summary())
    if args.ceiling == "on" or (args.ceiling == "auto" and N <= CEILING_AUTO_MAX_N):
        with Progress.for_args(args) as progress:
            print(hard_token_ceiling(c, progress).summary(c))
    else:
        print(
            f"hard-prompt ceiling: not enumerated at N={N} (--ceiling on: {c.arch.d_vocab} "
            f"generations of {N} tokens, in memory-bounded batches; auto enumerates up to "
            f"N={CEILING_AUTO_MAX_N}); a single hard token gives at most {c.arch.d_vocab} "
            f"completions, one virtual token reaches all V^N = {c.V}^{N}"
        )
    if args.section3:
        from constructions.checks import section3_residuals
        from theory.tolerances import TOL_F64

        res = section3_residuals(c, ctx, [c.bos] + list(out[:-1]))
        print(
            "§3 checks on this model: "
            + ", ".join(
                f"{tid} residual {r:.2e} ({'holds' if r <= TOL_F64 else 'VIOLATED'})"
                for tid, r in res.items()
            )
        )
    return 0 if ok and c.certificate.certified else 1


def _run_map(args) -> int:

    from constructions.ceiling import hard_token_ceiling
    from constructions.conditional import conditional_model, map_tokens
    from constructions.examples import example_map, load_map, map_table
    from constructions.generate import generate_in_batches

    ASCII = _vocab(args)
    defaulted = []
    if args.example is not None:
        mapping = example_map(args.example, ASCII)
    else:
        mapping, defaulted = load_map(args.json, ASCII)
    table = map_table(mapping, ASCII)
    N0 = table.shape[1]
    inputs = np.arange(ASCII.size)
    if args.input is not None:
        if len(args.input) != 1:
            raise ToolkitError(f"--input: expected one character, got {args.input!r}")
        inputs = np.array(ASCII.encode(args.input, what="--input"))
    c = conditional_model(ASCII.size, N0, args.T, dtype=args.dtype)
    ctx = map_tokens(c, table)
    with Progress.for_args(args) as progress:
        out = generate_in_batches(
            c, lambda rows: _repeat(ctx, len(rows)), inputs[:, None], progress, "responses"
        )
    print(_header(c))
    print(
        f"map: {args.example or args.json}; responses of "
        f"up to N0={N0} token(s), {N0} virtual token(s)"
    )
    if defaulted:
        print(f"note: {len(defaulted)} characters not in the map file respond with themselves")
    wrong = 0
    for x, row in zip(inputs, out, strict=False):
        got, want = ASCII.decode(row), ASCII.decode(table[x])
        if N0 > 1:  # responses are padded with spaces to N0
            got, want = got.rstrip(), want.rstrip()
        wrong += got != want
        flag = "" if got == want else f"   WRONG (expected {want!r})"
        print(f"  {ASCII.chars[x]!r} -> {got!r}{flag}")
    print(f"{len(inputs) - wrong}/{len(inputs)} responses correct")
    print(c.certificate.summary())
    if N0 == 1:
        with Progress.for_args(args) as progress:
            print(hard_token_ceiling(c, progress).summary(c))
    return 0 if wrong == 0 and c.certificate.certified else 1


def _run_pairs(args) -> int:

    from constructions.generate import generate_in_batches
    from constructions.two_token import (
        all_pairs,
        exact_two_token_table,
        pair_token,
        two_token_model,
    )

    c = two_token_model(args.V, args.digits, args.T, dtype=args.dtype, exact=args.exact)
    table = np.random.default_rng(args.seed).integers(0, c.V, (c.V, c.V))
    pairs = all_pairs(c.V)
    if args.exact:
        out = exact_two_token_table(c, table, pairs)
        how = "exact mode (rational/interval arithmetic)"
    else:
        ctx = pair_token(c, table)
        with Progress.for_args(args) as progress:
            out = generate_in_batches(
                c, lambda rows: _repeat(ctx, len(rows)), pairs, progress, "inputs"
            )[:, 0]
        how = f"{np.dtype(c.dtype).name}, batched"
    print(_header(c))
    print(
        f"random map [V]^2 -> [V] (seed {args.seed}); base B={c.extra['B']}, {c.extra['k']} "
        f"digits per coordinate, {c.extra['G']} coordinate(s) per first token"
    )
    correct = out == table[pairs[:, 0], pairs[:, 1]]
    if c.V <= 16:
        print("outputs (row x1, column x2; * marks an error):")
        for x1 in range(c.V):
            cells = [
                f"{o:>2}{'' if ok else '*'}"
                for o, ok in zip(
                    out[x1 * c.V : (x1 + 1) * c.V], correct[x1 * c.V : (x1 + 1) * c.V], strict=False
                )
            ]
            print("  " + " ".join(cells))
    print(f"{int(correct.sum())}/{len(pairs)} inputs correct ({how})")
    print(c.certificate.summary())
    return 0 if correct.all() and c.certificate.certified else 1


def _run_certificate(args) -> int:
    from constructions.certificates import derivation, scalar_certificate
    from constructions.conditional import conditional_model
    from constructions.two_token import two_token_model
    from constructions.unconditional import default_temperature

    if args.kind == "two_token":
        c = two_token_model(args.V, args.N, args.T, dtype=args.dtype, exact=args.exact)
        cert = c.certificate
    else:
        if args.T is None:
            T = (
                default_temperature(args.V, args.N, args.dtype)
                if args.kind == "unconditional"
                else conditional_model(args.V, args.N, None, dtype=args.dtype).T
            )
        else:
            T = args.T
        cert = scalar_certificate(args.kind, args.V, args.N, T, args.dtype)
    print(cert.summary())
    ok = cert.certified
    if args.derive:
        d = derivation(args.kind)
        print()
        print(d.render("text"))
        ok = ok and d.verified()
    return 0 if ok else 1


def _run_ceiling(args) -> int:
    from constructions.ceiling import hard_token_ceiling
    from constructions.unconditional import unconditional_model

    c = unconditional_model(args.V, args.N, args.T, dtype=args.dtype)
    with Progress.for_args(args) as progress:
        ceiling = hard_token_ceiling(c, progress)
    print(_header(c))
    print(ceiling.summary(c))
    return 0 if c.certificate.certified else 1
