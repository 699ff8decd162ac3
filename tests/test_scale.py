"""Checks at scale (docs/scale.md): the same results on 1, 2 and 4 devices and in a 2-process
run, a resumable sweep, and clear errors for bad devices and hosts options.

Sharded runs happen in subprocesses whose CPU is split into devices with
``--xla_force_host_platform_device_count``; the multi-process run talks over 127.0.0.1 only and
is bounded by a timeout that kills it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from cli.main import main
from cli.results import ResultsFile
from theory import distributed, runtime
from theory.runtime import POOL_ENV
from theory.verify import Result

ROOT = Path(__file__).resolve().parents[1]
FX = ROOT / "tests" / "fixtures" / "hf" / "llama"
TIMEOUT_S = 240
SAME = 1e-12  # float64 agreement demanded of a sharded run, relative above 1 (docs/scale.md)
# A small sweep: the prefix checks (bias_span's least squares rounds differently with the batch
# size each device gets) and the rank-1 fine-tuning control (its violations must reappear).
SWEEP = ["verify", "--architecture", "paper", "--method", "prefix", "--method"]
SWEEP += ["finetune_rank1_WQ", "--theorem", "relative_attention", "--theorem", "bias_span"]
SWEEP += ["--trials", "5"]  # padded to 6 on 2 devices, to 8 on 4; the padding dropped
HF = ["--model", f"hf:{FX / 'model'}", "--adapter", str(FX / "prefix")]


def _env(devices: int) -> dict:
    chosen = ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", *POOL_ENV)  # the command line chooses these
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONPATH"] = str(ROOT)
    return env


RUNS_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from cli.main import main
    from cli.interop import model_inputs
    from interop.checks import run_model_checks
    from interop.hf import load_hf
    from interop.peft import read_adapter

    argvs, fixture, out = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    codes = [main(argv) for argv in argvs]
    # one device, float64 only: what `verify --model hf:DIR --adapter A --trials 2` computes
    adapter = read_adapter(fixture / "prefix", load_hf(fixture / "model", "float32"))
    model = load_hf(fixture / "model", "float64")
    ids, mask, names = model_inputs(model, None, 0, adapter.n_virtual)
    report = run_model_checks(
        {"float64": model}, ids, mask, names, adapter=adapter, n_p=adapter.n_virtual, trials=2
    )
    (out / "hf.json").write_text(json.dumps(report.to_json()))
    print(json.dumps(codes))
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process with 4 CPU devices: the sweep and the Hugging Face checks on 1, 2, 4 devices."""
    out = tmp_path_factory.mktemp("scale")
    argvs = {  # a sharded run first: it sizes the CPU thread pool (theory/distributed.py)
        "sweep_4": SWEEP + ["--devices", "4", "--json", str(out / "sweep_4.json")],
        "sweep": SWEEP + ["--seeds", "0:3", "--json", str(out / "sweep.json")],
        "sweep_1": SWEEP + ["--devices", "1", "--json", str(out / "sweep_1.json")],
        "sweep_2": SWEEP
        + ["--devices", "2", "--seeds", "0:3", "--json", str(out / "sweep_2.json")],
        "hf_4": ["verify", *HF, "--trials", "2", "--mesh", "batch=2,model=2"]
        + ["--out", str(out / "hf_4")],
        "inspect": ["inspect", *HF, "--json", str(out / "inspect.json")],
        "inspect_4": ["inspect", *HF, "--devices", "4", "--json", str(out / "inspect_4.json")],
    }
    proc = subprocess.run(
        [sys.executable, "-c", RUNS_SCRIPT, json.dumps(list(argvs.values())), str(FX), str(out)],
        env=_env(4),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert dict(zip(argvs, codes, strict=True)) == dict.fromkeys(argvs, 0), proc.stdout[-3000:]
    assert "running on 4 devices (cpu), mesh batch=2 model=2" in proc.stdout
    return out


def sweep_rows(path, seed=0) -> list[dict]:
    return [r for r in json.loads(Path(path).read_text())["results"] if r["seed"] == seed]


def sweep_differences(rows, reference) -> list[str]:
    """What differs between two sweeps' rows: keys, verdicts, residuals beyond SAME, and the
    witness trial of a failing row (of a holding row it is the trial with the most rounding)."""
    if len(rows) != len(reference):
        return [f"{len(rows)} rows, expected {len(reference)}"]
    found = []
    for r, ref in zip(rows, reference, strict=True):
        name = f"{ref['theorem']}/{ref['architecture']}/{ref['method']}"
        for field in ("theorem", "architecture", "method", "seed", "trials", "verdict"):
            if r[field] != ref[field]:
                found.append(f"{name}: {field} {r[field]!r} != {ref[field]!r}")
        if abs(r["max_residual"] - ref["max_residual"]) > SAME * max(1.0, ref["max_residual"]):
            found.append(f"{name}: residual {r['max_residual']:.3e} != {ref['max_residual']:.3e}")
        if ref["verdict"] == "fails" and r["witness_trial"] != ref["witness_trial"]:
            found.append(f"{name}: witness {r['witness_trial']} != {ref['witness_trial']}")
        if not 0 <= r["witness_trial"] < ref["trials"]:
            found.append(f"{name}: witness {r['witness_trial']} is not one of the trials")
    return found


@pytest.mark.parametrize("run", ["sweep_1", "sweep_2", "sweep_4"])
def test_sweep_on_1_2_4_devices_equals_one_device(runs, run):
    reference = json.loads((runs / "sweep.json").read_text())["results"]  # seeds 0, 1, 2
    assert {r["verdict"] for r in reference} == {"holds", "fails"}  # both kinds of row compared
    rows = json.loads((runs / f"{run}.json").read_text())["results"]
    if run != "sweep_2":  # one seed
        reference = [r for r in reference if r["seed"] == 0]
    assert sweep_differences(rows, reference) == []
    assert json.loads((runs / f"{run}.json").read_text())["mesh"]["batch"] == int(run[-1])


def test_sweep_comparison_sees_another_seed(runs):
    """Negative control: seed 1's trials (same run, same devices) differ from seed 0's."""
    other = sweep_rows(runs / "sweep_2.json", seed=1)
    for r in other:
        r["seed"] = 0
    found = sweep_differences(other, sweep_rows(runs / "sweep.json"))
    assert any("residual" in f for f in found)


def test_hf_checks_and_inspect_sharded_over_heads_equal_one_device(runs):
    one = json.loads((runs / "hf.json").read_text())
    four = json.loads((runs / "hf_4" / "report.json").read_text())["report"]
    rows = [r for r in four["rows"] if r["dtype"] == "float64"]
    assert [(r["prefix"], r["verdict"]) for r in rows] == [
        (r["prefix"], r["verdict"]) for r in one["rows"]
    ] and len(rows) == 3
    for r, ref in zip(rows, one["rows"], strict=True):
        for q in ("attention", "output", "mass", "unconditional"):
            gap = np.max(np.abs(np.subtract(r[q], ref[q]))) if ref[q] else 0.0
            assert gap <= SAME, (r["prefix"], q, gap)
    # negative control: the same run's float32 prefix masses are not within SAME of float64's
    single = [r for r in four["rows"] if r["dtype"] == "float32"][:2]  # random, adapter
    gaps = [
        np.max(np.abs(np.subtract(r["mass"], ref["mass"])))
        for r, ref in zip(single, one["rows"][:2], strict=True)
    ]
    assert min(gaps) > SAME
    one, four = (json.loads((runs / f).read_text()) for f in ("inspect.json", "inspect_4.json"))
    assert four["value_rank"] == one["value_rank"] and four["bias_rank"] == one["bias_rank"]
    for q in ("prefix_mass_mean", "prefix_mass_max", "content_change"):
        assert np.max(np.abs(np.subtract(four[q], one[q]))) <= SAME, q


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_over_loopback_equal_one_process(runs, tmp_path):
    """2 processes x 2 CPU devices (jax.distributed over 127.0.0.1): the same rows as one
    process, printed and written by process 0 (into a results file too)."""
    flags = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    outputs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.main", *SWEEP, *flags, "--process-id", str(i)]
            + ["--json", str(outputs[i]), "--results", str(tmp_path / f"r{i}.jsonl")],
            env=_env(2),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for i in range(2)
    ]
    try:
        done = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:  # bounded: whatever is left after the timeout is killed
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in done]
    assert "4 devices (cpu), mesh batch=4 model=1, 2 processes" in done[0][0]
    assert "process 1: done" in done[1][0]
    assert not outputs[1].exists() and not (tmp_path / "r1.jsonl").exists()
    rows = sweep_rows(outputs[0])
    assert sweep_differences(rows, sweep_rows(runs / "sweep.json")) == []
    written = ResultsFile(tmp_path / "r0.jsonl", {"trials": 5, "shape": _shape()})
    assert sorted(written.done()) == sorted(
        (r["architecture"], r["theorem"], r["method"], r["seed"]) for r in rows
    )


def _shape() -> dict:
    from theory.trials import TrialShape

    return TrialShape()._asdict()


# A plug-in that kills its own process (SIGKILL: no clean-up) after the results file received
# KILL_AFTER units: the interruption lands at the same place in every run.
KILLER = textwrap.dedent("""
    import os, signal
    from cli.results import ResultsFile

    KILL_AFTER = {kill_after}
    _append = ResultsFile.append

    def append(self, results):
        _append(self, results)
        append.count = getattr(append, "count", 0) + 1
        if append.count == KILL_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)

    ResultsFile.append = append
""")
RESUME = [*SWEEP, "--seeds", "0:3"]  # 3 units (paper x 3 seeds) of 4 results each


def test_interrupted_sweep_resumes_where_it_stopped(runs, tmp_path, capsys):
    results = tmp_path / "sweep.jsonl"
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(kill_after=2))
    argv = [*RESUME, "--results", str(results)]
    killed = subprocess.run(
        [sys.executable, "-m", "cli.main", *argv, "--plugin", str(killer)],
        env=_env(1),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    lines = results.read_text().splitlines()
    assert len(lines) == 1 + 2 * 4  # the header and the 2 units written before the kill
    # an interruption can also cut a line short: it is dropped when the sweep resumes
    with open(results, "a") as fh:
        fh.write('{"model": "paper", "theorem": "relat')
    assert main([*argv, "--json", str(tmp_path / "all.json")]) == 0
    out = capsys.readouterr().out
    assert "8 of 12 results already there; resuming" in out
    assert "(4 results computed, 8 resumed)" in out
    rows = json.loads((tmp_path / "all.json").read_text())["results"]
    # the resumed sweep equals the same sweep run without interruption
    assert rows == json.loads((runs / "sweep.json").read_text())["results"]
    assert len(results.read_text().splitlines()) == 1 + 12
    assert main([*argv]) == 0  # nothing left to run
    assert "(0 results computed, 12 resumed)" in capsys.readouterr().out


def test_results_file_refuses_another_sweep_or_file(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    ResultsFile(path, {"trials": 2}).append(
        [Result("t", "a", "m", "holds", "holds", 0.0, 2, 1e-10, 0, 0, "")]
    )
    assert ResultsFile(path, {"trials": 2}).done() == {("a", "t", "m", 0)}
    assert main([*RESUME, "--results", str(path)]) == 2  # trials 2 but another trial shape
    assert "rows of different sweeps are not comparable" in capsys.readouterr().err
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    assert main([*RESUME, "--results", str(other)]) == 2
    assert "expected a prefix-theory results file" in capsys.readouterr().err
    assert other.read_text() == "my notes\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--devices", "0"], "argument --devices: expected an int >= 1, got '0'"),
        (["--devices", "two"], "argument --devices: expected an int >= 1, got 'two'"),
        (["--devices", "2", "--mesh", "batch=2"], "not allowed with argument"),
        (["--mesh", "batch=0"], "--mesh: expected a size >= 1 for axis 'batch', got '0'"),
        (["--mesh", "rows=2"], "with AXIS one of batch, model, got 'rows=2'"),
        (["--mesh", "batch=2,batch=2"], "axis 'batch' given twice"),
        (["--devices", "64"], "needs 64 devices; JAX sees"),
        (["--coordinator", "127.0.0.1:1234"], "go together"),
        (["--num-processes", "2"], "go together"),
        (
            ["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
            "--coordinator: expected HOST:PORT",
        ),
        (
            ["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"],
            "--process-id: expected an int in 0..1",
        ),
        (
            ["--devices", "3", "--coordinator", "127.0.0.1:1", "--num-processes", "2"]
            + ["--process-id", "0"],
            "3 devices cannot be split evenly over --num-processes 2",
        ),
        (["--process-id", "-1"], "argument --process-id: expected an int >= 0"),
        (["--seeds", "5:2"], "--seeds: expected A:B (A < B"),
        (["--seeds", "0:3,2"], "expected each seed once"),
        (["--seed", "1", "--seeds", "0:2"], "not allowed with argument"),
        (["--model", "minilm", "--devices", "2"], "--model minilm runs on one device"),
        (["--model", f"hf:{FX / 'model'}", "--seeds", "0:2"], "--seeds applies to"),
        (["--atlas", "--seeds", "0:2"], "--atlas draws one seed's grid"),
    ],
)
def test_bad_devices_and_hosts_options_exit_2(argv, message, capsys):
    jax.devices()  # the backend exists already: these runs must not change this process
    try:
        code = main(["verify", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_inspect_takes_the_devices_options(capsys):
    argv = ["inspect", *HF, "--mesh", "model=3"]
    assert main(argv) == 2
    assert "mesh batch=1, model=3 needs 3 devices; JAX sees" in capsys.readouterr().err


def test_several_cpu_devices_get_room_in_the_thread_pool(monkeypatch):
    """XLA's CPU pool is sized for several devices before JAX starts, unless the user sized it."""
    monkeypatch.setattr(runtime, "_backends_initialized", lambda: False)
    monkeypatch.setitem(runtime._pool_size_set, "threads", None)
    for name in POOL_ENV:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.protect_cpu_pool(1) and "PJRT_NPROC" not in os.environ
    assert distributed.protect_cpu_pool(4)
    assert int(os.environ["PJRT_NPROC"]) == max(os.cpu_count(), 4 * 32)
    monkeypatch.setenv("PJRT_NPROC", "3")  # the user's choice stays
    assert not distributed.protect_cpu_pool(4) and os.environ["PJRT_NPROC"] == "3"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=6")
    monkeypatch.delenv("JAX_NUM_CPU_DEVICES", raising=False)
    assert jax.config.jax_num_cpu_devices == -1  # this process never chose a count
    assert distributed.host_device_count() == 6
