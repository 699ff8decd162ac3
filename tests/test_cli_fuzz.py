"""Command-line fuzz test: Hypothesis draws argument lists for every subcommand.

Values are drawn valid and invalid alike (numbers out of range or not numbers, huge seeds,
NaN and infinite temperatures, unknown and misspelt names, unwritable, missing and existing
paths, plug-ins that do not load, flags that do not combine, stray options). The property, for
every drawn command line:

* no traceback reaches the user and the exit code is 0, 1 or 2 (never 3, an internal error);
* an exit code of 2 (usage or input error) leaves no file written.

The command runs in this process (``cli.main.main``) with a fresh folder as the working
directory, pre-filled with the inputs the paths point to. Valid command lines run for real when
they are cheap (tiny ``--trials``, small constructions, the test fixtures); the few whose work
takes minutes (training, Coq compilation, the real-weight sweep) stop where that work would
start, once their input has passed every check. Each subcommand gets its own examples
(``FUZZ_EXAMPLES`` per subcommand, 15 by default; ``FUZZ_EXAMPLES=200 pytest
tests/test_cli_fuzz.py`` draws more).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from cli.main import main
from theory.registry import THEOREMS

ROOT = Path(__file__).resolve().parents[1]
GPT2 = ROOT / "tests" / "fixtures" / "hf" / "gpt2"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))  # per subcommand


class ReachedWork(BaseException):
    """Raised where minutes of work would start: every check before it has passed."""


@pytest.fixture
def heavy_work_stopped(monkeypatch):
    import experiments.runner
    import pretrained.parity
    import proofs.runner

    def stop(*args, **kwargs):
        raise ReachedWork

    monkeypatch.setattr(experiments.runner.Runner, "__init__", stop)
    monkeypatch.setattr(proofs.runner, "prove", stop)
    monkeypatch.setattr(pretrained.parity, "parity", stop)
    monkeypatch.delenv("PREFIX_THEORY_PLUGINS", raising=False)


def one_of(*values):
    return st.sampled_from(values)


def rarely(value, never=None, weight: int = 5):
    """``value`` one time in ``weight``, else ``never``."""
    return st.sampled_from([never] * (weight - 1) + [value])


# values, valid and not ("{tmp}" is the example's working folder)
INTS = one_of("-1", "0", "1", "2", "3", "x", "1.5", "", "99999999999999999999999")
SMALL = one_of("-1", "0", "1", "2", "3", "x", "")
SIZES = one_of("-1", "0", "1", "2", "3", "x", "100000")  # 100000: weights too large to build
SEEDS = one_of("0", "7", str(2**32 - 1), str(2**32), "-1", "99999999999999999999999", "1e3")
TEMPERATURES = one_of("-1", "0", "nan", "inf", "-inf", "0.5", "30", "1e6", "1e308", "x")
FILES = one_of(
    "{tmp}/out.json",
    "{tmp}/existing.txt",
    "{tmp}/dir",
    "{tmp}/missing/x.json",
    "/proc/x",
    "",
    "{tmp}/existing.txt/below",
)
DIRS = one_of("{tmp}/new", "{tmp}/dir", "{tmp}/full", "{tmp}/existing.txt", "/proc/x", "")
THEOREM_NAMES = one_of(*list(THEOREMS)[:3], "nope", "relative-attention", "")
ARCH_NAMES = one_of("paper", "gpt", "gtp", "broken-denominator", "")
METHOD_NAMES = one_of("prefix", "kv_prefix", "finetune_rank1_WQ", "prefx")
PLUGINS = one_of("no_such_plugin_module", "{tmp}/broken_plugin.py", "{tmp}/missing.py", "")
MODELS = one_of("minilm", f"hf:{GPT2 / 'model'}", "hf:{tmp}/dir", "hf:", "gpt2", "nope")
STRAY = one_of("--nope", "extra", "-x", "--", "--seed")


@st.composite
def options(draw, table):
    """Some of ``table`` ({flag: value strategy or None for a flag without value}), in a drawn
    order, each flag at most twice."""
    argv = []
    flags = draw(st.lists(st.sampled_from(sorted(table)), max_size=5))
    for flag in flags:
        argv.append(flag)
        if table[flag] is not None:
            argv.append(draw(table[flag]))
    return argv


@st.composite
def verify_args(draw):
    # always one or two architectures named: a default run takes a minute
    argv = ["verify", "--architecture", draw(ARCH_NAMES)]
    argv += draw(
        options(
            {
                "--architecture": ARCH_NAMES,
                "--theorem": THEOREM_NAMES,
                "--method": METHOD_NAMES,
                "--trials": SMALL,
                "--seed": SEEDS,
                "--json": FILES,
                "--atlas": DIRS,
                "--plugin": PLUGINS,
                "--model": MODELS,
                "--out": DIRS,
                "--steps": INTS,
                "--prefix-length": SMALL,
                "--adapter": one_of(str(GPT2 / "prefix"), "{tmp}/dir"),
                "--text": one_of("{tmp}/existing.txt", "{tmp}/missing.txt"),
            }
        )
    )
    if "--trials" not in argv:
        argv += ["--trials", "1"]
    return argv


@st.composite
def derive_args(draw):
    argv = ["derive"] + draw(st.lists(THEOREM_NAMES, max_size=2))
    argv += draw(
        options(
            {
                "--list": None,
                "--all": None,
                "--latex": None,
                "--markdown": None,
                "--output": FILES,
                "--seed": SEEDS,
                "--architecture": ARCH_NAMES,
            }
        )
    )
    return argv + draw(rarely(["--substitute"], [], weight=4))


@st.composite
def prove_args(draw):
    argv = ["prove"] + draw(st.lists(one_of("relative_attention", "nope", ""), max_size=2))
    return argv + draw(
        options(
            {
                "--list": None,
                "--negative-controls": None,
                "--each-theorem": None,
                "--json": FILES,
                "--build-dir": DIRS,
                "--jobs": INTS,
            }
        )
    )


@st.composite
def experiment_args(draw):
    argv = ["experiment", draw(one_of("new_attention", "all", "sorting", ""))]
    return argv + draw(
        options(
            {
                "--quick": None,
                "--full": None,
                "--out": DIRS,
                "--seed": SEEDS,
                "--fresh": None,
                "--no-progress": None,
            }
        )
    )


COMMON_CONSTRUCT = {"--T": TEMPERATURES, "--dtype": one_of("float64", "float32", "float16")}


@st.composite
def construct_args(draw):
    kinds = ("unconditional", "map", "pairs", "certificate", "ceiling")
    kind = draw(one_of(*kinds, *kinds, "nope"))
    argv = ["construct", kind]
    if kind == "unconditional":
        argv.append(draw(one_of("hello", "", "h\u00e9llo", "ab", "x" * 40)))
        table = {
            "--N": SIZES,
            "--vocab": one_of("printable", "graphic", "ascii"),
            "--method": one_of("jacobi", "sequential", "newton"),
            "--section3": None,
            "--ceiling": one_of("auto", "on", "off", "maybe"),
        }
    elif kind == "map":
        argv += draw(
            one_of(
                ["--example", "swapcase"],
                ["--example", "zoo"],
                ["--json", "{tmp}/map.json"],
                ["--json", "{tmp}/existing.txt"],
                ["--json", "{tmp}/missing.json"],
                [],
            )
        )
        table = {"--input": one_of("a", "ab", "\u00e9", ""), "--vocab": one_of("graphic", "x")}
    elif kind == "pairs":
        table = {
            "--V": one_of("2", "3", "0", "1", "x", "-4", "4096"),
            "--seed": SEEDS,
            "--digits": SMALL,
            "--exact": None,
        }
    elif kind == "certificate":
        argv.append(draw(one_of("unconditional", "conditional", "two_token", "nope")))
        table = {
            "--V": one_of("2", "3", "95", "0", "1", "x", "1000000"),
            "--N": INTS,
            "--exact": None,
            "--derive": None,
        }
    else:
        table = {"--V": one_of("2", "3", "0", "x"), "--N": SIZES}
    if kind in ("pairs", "ceiling") and "--N" not in argv:
        argv += draw(rarely([], ["--N", "2"], weight=3))  # mostly small models
    if kind == "ceiling" and "--V" not in argv:
        argv += ["--V", "3"]
    return argv + draw(options({**table, **COMMON_CONSTRUCT}))


@st.composite
def inspect_args(draw):
    argv = ["inspect"]
    argv += draw(rarely([], ["--model", f"hf:{GPT2 / 'model'}"], weight=6))
    argv += draw(rarely([], ["--adapter", str(GPT2 / "prefix")], weight=6))
    table = {
        "--model": MODELS,
        "--adapter": one_of(str(GPT2 / "prompt"), "{tmp}/dir", "{tmp}/missing"),
        "--text": one_of("{tmp}/existing.txt", "{tmp}/missing.txt", "{tmp}/dir"),
        "--json": FILES,
        "--png": FILES,
        "--seed": SEEDS,
        "--dtype": one_of("float64", "float32", "int8"),
    }
    return argv + draw(options(table))


@st.composite
def export_args(draw):
    argv = ["export"]
    argv += draw(rarely([], ["--model", f"hf:{GPT2 / 'model'}"], weight=6))
    argv += draw(rarely([], ["--context", "{tmp}/context.npz"], weight=6))
    table = {
        "--model": MODELS,
        "--context": one_of("{tmp}/context.npz", "{tmp}/bad.npz", "{tmp}/existing.txt"),
        "--out": DIRS,
        "--task-type": one_of("CAUSAL_LM", "SEQ_2_SEQ_LM", "nope"),
        "--force": None,
    }
    return argv + draw(options(table))


SUBCOMMANDS = {
    "verify": verify_args,
    "derive": derive_args,
    "prove": prove_args,
    "experiment": experiment_args,
    "construct": construct_args,
    "inspect": inspect_args,
    "export": export_args,
}


@st.composite
def command_lines(draw, subcommand: str):
    argv = draw(SUBCOMMANDS[subcommand]())
    argv += draw(rarely([draw(STRAY)], [], weight=6))
    argv += draw(rarely(["--quiet"], [], weight=3))
    env = draw(rarely(draw(PLUGINS), None, weight=8))
    return argv, env


def populate(tmp: Path) -> None:
    """The inputs the drawn paths point to."""
    (tmp / "existing.txt").write_text("The cat sits on the mat.\n")
    (tmp / "dir").mkdir()
    (tmp / "full").mkdir()
    (tmp / "full" / "kept.txt").write_text("keep me\n")
    (tmp / "broken_plugin.py").write_text("def f(:\n")
    (tmp / "map.json").write_text(json.dumps({"a": "b", "c": "d"}))
    np.savez(tmp / "context.npz", embeddings=np.zeros((2, 32), np.float32))
    np.savez(tmp / "bad.npz", weights=np.zeros(3))


def snapshot(tmp: Path) -> dict:
    return {
        str(p.relative_to(tmp)): (p.is_dir(), None if p.is_dir() else p.read_bytes())
        for p in sorted(tmp.rglob("*"))
    }


def run(argv, env) -> tuple[object, str]:
    """``main(argv)`` with ``$PREFIX_THEORY_PLUGINS = env``: (exit code or "work", stderr)."""
    err = io.StringIO()
    old = os.environ.pop("PREFIX_THEORY_PLUGINS", None)
    if env is not None:
        os.environ["PREFIX_THEORY_PLUGINS"] = env
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: usage errors and --help
                code = exc.code
            except ReachedWork:
                code = "work"
    finally:
        os.environ.pop("PREFIX_THEORY_PLUGINS", None)
        if old is not None:
            os.environ["PREFIX_THEORY_PLUGINS"] = old
    return code, err.getvalue()


@pytest.mark.parametrize("subcommand", list(SUBCOMMANDS))
@pytest.mark.usefixtures("heavy_work_stopped")
def test_no_traceback_exit_0_1_2_and_usage_errors_write_nothing(subcommand):
    @settings(
        max_examples=2 * EXAMPLES if subcommand == "construct" else EXAMPLES,  # five commands
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(command_lines(subcommand))
    def check(case):
        argv, env = case
        cwd = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="fuzz-") as name:
            tmp = Path(name)
            populate(tmp)
            argv = [a.replace("{tmp}", name) for a in argv]
            env = env.replace("{tmp}", name) if env is not None else None
            note(f"argv: {argv}, PREFIX_THEORY_PLUGINS={env!r}")
            before = snapshot(tmp)
            os.chdir(tmp)
            try:
                code, err = run(argv, env)
            finally:
                os.chdir(cwd)
            note(f"exit {code}; stderr: {err[-2000:]}")
            event(f"{' '.join(argv[:2] if argv[0] == 'construct' else argv[:1])}: exit {code}")
            if os.environ.get("FUZZ_LOG"):  # one line per command line, to see what was drawn
                with open(os.environ["FUZZ_LOG"], "a") as log:
                    log.write(json.dumps({"argv": argv, "env": env, "exit": code}) + "\n")
            assert "Traceback" not in err
            assert code in (0, 1, 2, "work"), err
            if code == 2:
                assert err.strip(), "a usage error says what was wrong"
                assert snapshot(tmp) == before, "a usage error wrote or changed files"

    check()
