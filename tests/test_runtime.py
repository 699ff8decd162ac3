"""``import theory`` leaves the process alone; ``theory.configure_jax()`` sets float64 and the XLA
CPU deadlock workaround (theory/runtime.py), and that workaround does its job."""

import os
import subprocess
import sys
import textwrap

import jax

from theory import runtime

# The smallest graph seen to deadlock with XLA CPU's default scheduler (jaxlib 0.10.2): the
# hard-prompt, soft-prompt and prefix checks of `paper` compiled as one function with only the
# backend optimisation off (verify's options also turn the fusion emitters off). The deadlock is
# intermittent: without the flag (or with it set to true) this graph hung in 4 of 7 runs, with
# the flag in none, so a pass is evidence, not proof. The control without the flag is not run:
# it would hang at random, and a fixed jaxlib would fail it.
DEADLOCK_SCRIPT = textwrap.dedent("""
    import jax, theory
    theory.configure_jax()
    from theory.verify import groups_function, plan, trial_keys
    from theory.trials import TrialShape
    keys = trial_keys(0, 16)
    methods = ("hard_prompt", "soft_prompt", "prefix")
    groups = [g for g in plan(architectures=["paper"]) if g[1] in methods]
    compiled = jax.jit(groups_function(groups, TrialShape())).lower(keys).compile(
        compiler_options={"xla_backend_optimization_level": 0})
    jax.device_get(compiled(keys))
    print("finished")
""")

IMPORT_SCRIPT = textwrap.dedent("""
    import os, sys
    before = dict(os.environ)
    import jax
    import theory, cli.main, render.atlas, render.derivations
    import constructions, experiments, pretrained
    assert not jax.config.jax_enable_x64, "import changed jax_enable_x64"
    assert dict(os.environ) == before, "import changed the environment"
    assert not [m for m in sys.modules if m.startswith("prefix_theory_plugin_")]
    theory.configure_jax()
    assert jax.config.jax_enable_x64
    print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""))
""")


def _run(script: str, **env):
    # no compilation cache (conftest.py): the deadlock check must compile its graph itself
    environ = {
        k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240, env=environ
    )


def test_import_changes_nothing_and_configure_sets_both(tmp_path):
    plugin = tmp_path / "plugin_that_must_not_load.py"
    plugin.write_text("raise RuntimeError('loaded on import')\n")
    proc = _run(IMPORT_SCRIPT, PREFIX_THEORY_PLUGINS=str(plugin))
    assert proc.returncode == 0, proc.stderr[-2000:]
    flags = proc.stdout.strip().splitlines()[-1]
    for name, value in runtime.XLA_CPU_FLAGS.items():
        assert f"--{name}={value}" in flags


def test_test_suite_runs_configured():
    assert jax.config.jax_enable_x64  # conftest.py calls theory.configure_jax()
    for name, value in runtime.XLA_CPU_FLAGS.items():
        assert f"--{name}={value}" in os.environ["XLA_FLAGS"]


def test_a_graph_that_deadlocked_now_finishes():
    proc = _run(DEADLOCK_SCRIPT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finished" in proc.stdout


def test_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_concurrency_optimized_scheduler=true")
    runtime.apply_xla_cpu_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


POOL_SCRIPT = textwrap.dedent("""
    import os, sys
    import cli.experiment, cli.main, cli.verify
    def report(args):
        print("PJRT_NPROC=" + os.environ.get("PJRT_NPROC", "default"))
        return 0
    cli.experiment.run = cli.verify.run = report
    sys.exit(cli.main.main(sys.argv[1:]))
""")


def _pool_of(*argv):
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", *runtime.POOL_ENV)}
    proc = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT, *argv],
        capture_output=True,
        text=True,
        timeout=240,
        env=environ,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_training_keeps_xlas_default_pool_and_verification_gets_room_for_lapack():
    assert _pool_of("experiment", "new_attention", "--quick") == "PJRT_NPROC=default"
    threads = max(os.cpu_count() or 1, runtime.POOL_THREADS_PER_DEVICE)
    assert _pool_of("verify", "--theorem", "single_prefix") == f"PJRT_NPROC={threads}"
