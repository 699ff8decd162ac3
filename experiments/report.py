"""Results as JSON (one file per experiment) and one Markdown table next to the paper's numbers."""

from __future__ import annotations

import glob
import json
import os


def _pct(x):
    return "" if x is None else f"{100 * x:.1f}%"


def write_json(result: dict, out: str) -> str:
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{result['name']}.json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=2, default=float)
    return path


def markdown(results: list[dict]) -> str:
    """The Markdown report of a list of experiment records."""
    lines = ["# Prefix-tuning vs fine-tuning vs LoRA: results next to the paper's", ""]
    if results:
        r0 = results[0]
        lines += [
            (
                f"Mode `{r0['mode']}`, seed {r0['seed']}, accuracy = exact match of the whole "
                f"10-token greedy output on {r0['n_eval']} test-split inputs. Paper figures from "
                "docs/theory.md §4."
            ),
            "",
        ]
        env = r0.get("environment")
        if env:
            lines += [
                (
                    f"Environment: JAX {env.get('jax')} (jaxlib {env.get('jaxlib')}), optax "
                    f"{env.get('optax')}, NumPy {env.get('numpy')}, {env.get('cpu')} "
                    f"({env.get('simd', 'vector extension not recorded')}), "
                    f"{env.get('cores')} cores, XLA_FLAGS `{env.get('xla_flags')}`. The same "
                    "command and seed reproduce these figures bit for bit on this machine; "
                    "another CPU or JAX release rounds differently and training amplifies that, "
                    "so expect figures within the spread over seeds, not identical ones."
                ),
                "",
            ]
    for res in results:
        trained = sum(r["train_seconds"] or 0 for r in res["rows"])
        lines += [
            f"## {res['title']}",
            "",
            (
                f"Model: {res['model']}. Wall time {res['seconds']} s "
                f"(training in this invocation {trained:.0f} s; resumed checkpoints cost ~0)."
            ),
            "",
        ]
        if res["rows"]:
            lines += [
                "| setting | params | steps (paper) | batch | lr | accuracy (ours) | paper |",
                "|---|---:|---:|---:|---:|---|---|",
            ]
            for row in res["rows"]:
                ours = ", ".join(f"{t} {_pct(a)}" for t, a in row["accuracy"].items())
                paper = ", ".join(f"{t} {_pct(a)}" for t, a in row["paper"].items()) or "-"
                steps = f"{row['steps']} ({row['paper_steps'] if row['paper_steps'] else '-'})"
                lines.append(
                    f"| {row['setting']} | {row['n_params']:,} | {steps} | "
                    f"{row.get('batch') or '-'} | {row['lr']:g} | {ours} | {paper} |"
                )
            lines.append("")
        if res.get("cross_task"):
            tasks = list(next(iter(res["cross_task"].values())))
            lines += [
                "Cross-task matrix (row: prefix trained on, column: task evaluated):",
                "",
                "| prefix \\ task | " + " | ".join(tasks) + " |",
                "|---|" + "---:|" * len(tasks),
            ]
            for p, accs in res["cross_task"].items():
                lines.append(f"| {p} | " + " | ".join(_pct(accs[t]) for t in tasks) + " |")
            lines.append("")
        lines += ["| claim | ours | target | holds |", "|---|---:|---:|---|"]
        for c in res["claims"]:
            value = (
                f"{c['value']:g}" if abs(c["value"]) > 1 or c["value"] == 0 else _pct(c["value"])
            )
            target = _pct(c["target"]) if 0 < c["target"] <= 1 else f"{c['target']:g}"
            lines.append(
                f"| {_cell(c['claim'])} | {value} | {c['op']} {target} | "
                f"{'yes' if c['holds'] else 'NO'} |"
            )
        lines.append("")
        ev = res.get("evidence")
        if ev:
            png = ev.get("png")
            rest = {k: v for k, v in ev.items() if k != "png"}
            lines += [f"Evidence: `{json.dumps(rest, default=float)}`", ""]
            if png:
                lines += [f"![{res['name']}]({png})", ""]
    return "\n".join(lines)


def _claim_value(c) -> str:
    v = c["value"]
    return f"{v:g}" if abs(v) > 1 or v == 0 or c["target"] > 1 else _pct(v)


def _cell(text: str) -> str:
    """``text`` inside a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def seeds_markdown(runs: dict) -> str:
    """Every claim for several seeds: ``runs`` maps seed -> the output directory of a run
    of the same mode with that seed.  Each seed's figure, the spread (max - min) and whether
    the claim holds for every seed."""
    seeds = sorted(runs)
    per_seed = {seed: {r["name"]: r for r in load_results(runs[seed])} for seed in seeds}
    names = [n for n in per_seed[seeds[0]] if all(n in per_seed[s] for s in seeds)]
    lines = [
        f"## Every claim for {len(seeds)} seeds",
        "",
        "The same mode and code with seeds " + ", ".join(str(s) for s in seeds) + " (the seed "
        "sets the initialisations, the data stream and the test inputs).",
        "",
        "| experiment | claim | target | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | spread | holds for every seed |",
        "|---|---|---:|" + "---:|" * len(seeds) + "---:|---|",
    ]
    for name in names:
        for i, c in enumerate(per_seed[seeds[0]][name]["claims"]):
            cs = [per_seed[s][name]["claims"][i] for s in seeds]
            values = [x["value"] for x in cs]
            spread = max(values) - min(values)
            spread_s = _pct(spread) if 0 < c["target"] <= 1 else f"{spread:g}"
            target = _pct(c["target"]) if 0 < c["target"] <= 1 else f"{c['target']:g}"
            lines.append(
                f"| {name} | {_cell(c['claim'])} | {c['op']} {target} | "
                + " | ".join(_claim_value(x) for x in cs)
                + f" | {spread_s} | {'yes' if all(x['holds'] for x in cs) else 'NO'} |"
            )
    lines.append("")
    return "\n".join(lines)


def load_results(out: str) -> list[dict]:
    """The experiment records ``{out}/*.json``, in the order of the experiments."""
    from experiments.suite import EXPERIMENTS

    order = list(EXPERIMENTS)
    results = []
    for path in glob.glob(os.path.join(out, "*.json")):
        with open(path) as fh:
            res = json.load(fh)
        if res.get("name") in EXPERIMENTS:
            results.append(res)
    results.sort(key=lambda r: order.index(r["name"]))
    return results


def write_markdown(out: str, seed_runs: dict | None = None) -> str:
    """Collect every ``{out}/*.json`` experiment record into ``{out}/results.md``; with
    ``seed_runs`` ({seed: directory}, this run included), also the table over seeds."""
    text = markdown(load_results(out))
    if seed_runs and len(seed_runs) > 1:
        text += "\n" + seeds_markdown(seed_runs)
    path = os.path.join(out, "results.md")
    with open(path, "w") as fh:
        fh.write(text)
    return path
