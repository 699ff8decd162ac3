"""Time and peak memory of ``prefix-theory construct unconditional`` against the length N, next to
the Python API doing the same construction and generation.

    .venv/bin/python benchmarks/bench_construct_memory.py [--n 256,512,1024,2048,4096]
                                                          [--ceiling-on 1024] [--json PATH]

Each measurement is a fresh process (its peak resident set size is the kernel's ``ru_maxrss``
of that one child, from ``os.wait4``): the command line with a random target of N printable
characters (``--ceiling auto``: the hard-prompt ceiling is enumerated up to N = 1,024, in
memory-bounded batches); the command line with ``--ceiling on`` for each N of ``--ceiling-on``;
and the API (``unconditional_model``, ``virtual_token``, ``greedy_generate``: the model and the
generation, no ceiling). The model is the Theorem-1 construction (one layer, d_model = 2N + 3),
so its weights alone grow as N^2 (about 16 N^2 numbers) and a forward pass as N^3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import time

API = """
import sys
import numpy as np
import theory
theory.configure_jax()
from constructions.unconditional import unconditional_model, virtual_token
from constructions.generate import greedy_generate
from constructions.vocab import ASCII
text = sys.argv[1]
c = unconditional_model(ASCII.size, len(text))
gen = greedy_generate(c, virtual_token(c, ASCII.encode(text, what="text")))
ok = ASCII.decode(np.asarray(gen.tokens)) == text
sys.exit(0 if ok and c.certificate.certified else 1)
"""


def target(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation
    return "".join(rng.choice(alphabet) for _ in range(n))


def measure(command: list[str]) -> dict:
    """Wall seconds, peak RSS (MiB) and exit code of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "exit": proc.returncode,
        "stderr_tail": err.strip().splitlines()[-1:] if err.strip() else [],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="256,512,1024,2048,4096", help="lengths N, comma-separated")
    parser.add_argument(
        "--ceiling-on", default="", help="lengths N at which to also run --ceiling on"
    )
    parser.add_argument("--json", help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    exe = os.path.join(os.path.dirname(sys.executable), "prefix-theory")
    cli = [exe] if os.path.exists(exe) else [sys.executable, "-m", "cli.main"]
    rows = []
    print(f"{os.cpu_count()} CPU cores; each row a fresh process\n")
    print("| N | what | wall s | CPU s | peak RSS MiB | exit |")
    print("|---:|---|---:|---:|---:|---:|")
    plan = [(int(n), "cli") for n in args.n.split(",") if n]
    plan += [(int(n), "cli --ceiling on") for n in args.ceiling_on.split(",") if n]
    plan += [(int(n), "api") for n in args.n.split(",") if n]
    for n, what in sorted(plan):
        text = target(n)
        if what == "api":
            command = [sys.executable, "-c", API, text]
        else:
            command = [*cli, "construct", "unconditional", text, "--quiet"]
            command += ["--ceiling", "on"] if what.endswith("on") else []
        row = {"N": n, "what": what, **measure(command)}
        rows.append(row)
        print(
            f"| {n} | {what} | {row['wall_s']} | {row['cpu_s']} | {row['peak_rss_mib']} | "
            f"{row['exit']} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
