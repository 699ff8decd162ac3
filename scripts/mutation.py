"""Mutation score of the property tests: semantic bugs planted in the core, one at a time.

    python scripts/mutation.py [--out docs/mutation.md] [--only NAME ...] [--timeout S]

Each mutant is one textual change to a module of ``theory/`` (the kind of bug a reviewer fears:
a scale or temperature applied to some keys only, a mask off by one, prefixes at the wrong
positions, a norm applied to the wrong tensor, keys and values swapped, the comparison made
vacuous, the expected value computed from the wrong quantity). For each, the repository is
copied to a temporary folder, the change applied there, and ``pytest property_tests -x`` run on
the copy: the mutant is *killed* when a test fails. The report (``docs/mutation.md``) lists
every mutant, its diff and the test that killed it; the exit code is 0 only when every mutant
is killed.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("theory", "property_tests", "conftest.py", "pyproject.toml")


@dataclass(frozen=True)
class Mutant:
    name: str
    why: str
    path: str
    old: str
    new: str


MUTANTS = (
    Mutant(
        "temperature on content keys only",
        "the inverse temperature T reaches the content logits but not the prefix logits",
        "theory/attention.py",
        "    logits = scaled_logits(q, k, arch, bias)\n    e, _ = masked_exp(logits, mask)\n"
        "    return logits, safe_divide(e, e.sum(-1, keepdims=True))",
        "    logits = scaled_logits(q, k, arch, bias)\n"
        "    logits = jnp.where(virtual[None, None, :], logits / arch.temperature, logits)\n"
        "    e, _ = masked_exp(logits, mask)\n"
        "    return logits, safe_divide(e, e.sum(-1, keepdims=True))",
    ),
    Mutant(
        "1/sqrt(d_head) on content keys only",
        "the prefix logits are not divided by sqrt(d_head)",
        "theory/attention.py",
        "    logits = scaled_logits(q, k, arch, bias)\n    e, _ = masked_exp(logits, mask)\n"
        "    return logits, safe_divide(e, e.sum(-1, keepdims=True))",
        "    logits = scaled_logits(q, k, arch, bias)\n"
        "    logits = jnp.where(virtual[None, None, :], logits * jnp.sqrt(q.shape[-1]), logits)\n"
        "    e, _ = masked_exp(logits, mask)\n"
        "    return logits, safe_divide(e, e.sum(-1, keepdims=True))",
    ),
    Mutant(
        "causal mask off by one",
        "a query also sees the next position",
        "theory/attention.py",
        "(seq[None, :] <= seq[:, None])",
        "(seq[None, :] <= seq[:, None] + 1)",
    ),
    Mutant(
        "sliding window off by one",
        "the window admits one key too many",
        "theory/attention.py",
        "< arch.window)",
        "<= arch.window)",
    ),
    Mutant(
        "key padding ignored",
        "the key mask is dropped from the visibility matrix",
        "theory/attention.py",
        "visible = jnp.broadcast_to(key_mask[None, :], (N, N))",
        "visible = jnp.ones((N, N), bool)",
    ),
    Mutant(
        "virtual positions start at 1",
        "the prefix positions are shifted by one",
        "theory/model.py",
        "positions = jnp.concatenate([jnp.arange(n_p), position_offset + jnp.arange(n)])",
        "positions = jnp.concatenate([jnp.arange(n_p) + 1, position_offset + jnp.arange(n)])",
    ),
    Mutant(
        "layer-0 prefix in every layer",
        "every layer receives the prefix states of layer 0",
        "theory/model.py",
        "resid = resid.at[:n_p].set(context.states[l].astype(resid.dtype))",
        "resid = resid.at[:n_p].set(context.states[0].astype(resid.dtype))",
    ),
    Mutant(
        "hard prompt reversed",
        "the prompt tokens are embedded in reverse order",
        "theory/model.py",
        "virtual_embed = W_E[context.tokens]",
        "virtual_embed = W_E[context.tokens[::-1]]",
    ),
    Mutant(
        "KV-prefix keys and values swapped",
        "the free keys are used as values and the values as keys",
        "theory/attention.py",
        "        k = k.at[:n_p].set(jnp.swapaxes(keys, 0, 1).astype(k.dtype))\n"
        "        v = v.at[:n_p].set(jnp.swapaxes(values, 0, 1).astype(v.dtype))",
        "        k = k.at[:n_p].set(jnp.swapaxes(values, 0, 1).astype(k.dtype))\n"
        "        v = v.at[:n_p].set(jnp.swapaxes(keys, 0, 1).astype(v.dtype))",
    ),
    Mutant(
        "grouped heads mapped to the wrong key/value head",
        "heads are assigned to key/value heads by tiling instead of blocks",
        "theory/attention.py",
        "    k_rep = jnp.repeat(k, group, axis=1)\n    v_rep = jnp.repeat(v, group, axis=1)",
        "    k_rep = jnp.tile(k, (1, group, 1))\n    v_rep = jnp.tile(v, (1, group, 1))",
    ),
    Mutant(
        "ALiBi slopes off by one head",
        "head h gets the slope of head h - 1",
        "theory/positional.py",
        "jnp.arange(1, n_heads + 1)",
        "jnp.arange(0, n_heads)",
    ),
    Mutant(
        "pre-LN with the MLP's norm",
        "the attention input is normalised with ln2's parameters",
        "theory/blocks.py",
        'h = apply_norm(bp["ln1"], resid_pre, arch) if arch.norm == "pre" else resid_pre',
        'h = apply_norm(bp.get("ln2", bp["ln1"]), resid_pre, arch) if arch.norm == "pre" else '
        "resid_pre",
    ),
    Mutant(
        "prefix states normalised twice",
        "a Prefix's state is LayerNormed before it is set, then again by the block",
        "theory/model.py",
        "resid = resid.at[:n_p].set(context.states[l].astype(resid.dtype))",
        "resid = resid.at[:n_p].set(\n"
        "                (context.states[l] - context.states[l].mean(-1, keepdims=True))\n"
        "                .astype(resid.dtype)\n"
        "            )",
    ),
    Mutant(
        "RoPE ignores the position of the virtual keys",
        "queries and keys are rotated by the content offset only",
        "theory/attention.py",
        "    q = rotate(arch, q, positions)\n    k = rotate(arch, k, positions)",
        "    q = rotate(arch, q, positions)\n    k = rotate(arch, k, jnp.maximum(positions, 1))",
    ),
    Mutant(
        "comparison made vacuous",
        "the base attention is rebuilt from the adapted one, so every comparison is 0",
        "theory/compare.py",
        "attn_res.append(jnp.max(jnp.abs(to_content - c[..., None] * base[PATTERN])))",
        "attn_res.append(jnp.max(jnp.abs(to_content - c[..., None] * (to_content / "
        "jnp.where(c > 0, c, 1)[..., None]))))",
    ),
    Mutant(
        "bias from the wrong positions",
        "the predicted bias reads the values of the last positions, not the virtual ones",
        "theory/compare.py",
        "v_prefix = jnp.repeat(adapted[V][:n_p], group, axis=1)",
        "v_prefix = jnp.repeat(adapted[V][-max(n_p, 1) :][:n_p], group, axis=1)",
    ),
    Mutant(
        "prefix mass from the content columns",
        "the factor c_i is computed from the wrong columns",
        "theory/compare.py",
        "mass = to_prefix.sum(-1)  # [H, n]",
        "mass = pattern[:, :, -max(n_p, 1) :][:, :, :n_p].sum(-1)  # [H, n]",
    ),
    Mutant(
        "soft prompt without positions",
        "the soft prompt's embeddings skip the position codes",
        "theory/model.py",
        "virtual_embed = context.embeddings.astype(W_E.dtype)",
        "virtual_embed = context.embeddings.astype(W_E.dtype) - (\n"
        '            params["embed"]["W_pos"][:n_p] if "W_pos" in params["embed"] else 0.0\n'
        "        )",
    ),
)


def copy_repository(dest: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)


def apply(mutant: Mutant, root: Path) -> str:
    """Apply ``mutant`` under ``root``; returns its unified diff."""
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(
            f"mutant {mutant.name!r}: expected the snippet once in {mutant.path}, "
            f"found it {count} times (the code changed: update the mutant)"
        )
    new_text = text.replace(mutant.old, mutant.new)
    path.write_text(new_text)
    diff = difflib.unified_diff(
        text.splitlines(), new_text.splitlines(), mutant.path, mutant.path, n=0, lineterm=""
    )
    return "\n".join(line for line in diff if not line.startswith(("---", "+++")))


def run_tests(root: Path, timeout: int) -> tuple[bool, str]:
    """``(killed, what killed it)`` for the property tests run on the copy at ``root``."""
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PREFIX_THEORY_PLUGINS", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "property_tests"]
    try:
        proc = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return True, f"timeout after {timeout} s (counted as killed: the tests did not pass)"
    if proc.returncode == 0:
        return False, "survived"
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
    errors = re.findall(r"^ERROR (\S+)", proc.stdout, re.M)
    return True, (failed or errors or [proc.stdout.strip().splitlines()[-1]])[0]


def report(rows) -> str:
    killed = sum(row[1] for row in rows)
    lines = [
        "# Mutation score of the property tests",
        "",
        "Generated by `make mutation` (`scripts/mutation.py`). Each mutant is a semantic bug "
        "planted in the core (`theory/`), one at a time, in a copy of the repository; "
        "`pytest property_tests -x` runs on the copy and the mutant is *killed* when a test "
        "fails. The property tests are the channel users run, and they include an independent "
        "numpy reference of the first layer with every context method "
        "(`property_tests/reference.py`).",
        "",
        f"**{killed} of {len(rows)} mutants killed.**",
        "",
        "| mutant | what it breaks | killed by | seconds |",
        "|---|---|---|---|",
    ]
    for mutant, was_killed, by, seconds, _ in rows:
        verdict = f"`{by}`" if was_killed else "**SURVIVED**"
        lines.append(f"| {mutant.name} | {mutant.why} | {verdict} | {seconds:.0f} |")
    lines += ["", "## Diffs", ""]
    for mutant, *_, diff in rows:
        lines += [f"### {mutant.name} (`{mutant.path}`)", "", "```diff", diff, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "mutation.md"))
    parser.add_argument("--only", nargs="*", help="run only the mutants with these names")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutant")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    rows = []
    for mutant in chosen:
        with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
            root = Path(tmp)
            copy_repository(root)
            diff = apply(mutant, root)
            start = time.perf_counter()
            killed, by = run_tests(root, args.timeout)
            seconds = time.perf_counter() - start
        rows.append((mutant, killed, by, seconds, diff))
        print(
            f"{'killed  ' if killed else 'SURVIVED'} {mutant.name}: {by} ({seconds:.0f} s)",
            flush=True,
        )
    Path(args.out).write_text(report(rows))
    killed = sum(row[1] for row in rows)
    print(f"{killed}/{len(rows)} mutants killed; report: {args.out}")
    return 0 if killed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
