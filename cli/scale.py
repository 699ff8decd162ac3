"""The devices and hosts options of ``verify`` and ``inspect`` (docs/scale.md).

    --devices N                  spread the work over N devices
    --mesh batch=B,model=M       the same, naming the mesh axes (theory/sharding.py)
    --coordinator HOST:PORT --num-processes P --process-id I
                                 one process of a P-process run (jax.distributed)

:func:`start` runs in ``cli.main`` after ``theory.configure_jax()`` and before plug-ins load or
anything computes: ``jax.distributed.initialize`` and the host CPU device count only take
effect before JAX creates its backends.  The option values are checked before that, so a bad
value is a one-line error (exit 2) that never waits for other processes.
"""

from __future__ import annotations

import argparse

from theory.errors import ToolkitError

DEST = ("devices", "mesh", "coordinator", "num_processes", "process_id")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}")
        return value

    return parse


def add_scale_arguments(parser, devices_help: str) -> None:
    """Add the devices and hosts options to a subcommand's parser."""
    g = parser.add_argument_group("devices and hosts (docs/scale.md)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--devices", type=_int_at_least(1), metavar="N", help=devices_help)
    where.add_argument(
        "--mesh",
        metavar="SPEC",
        help="a device mesh batch=B,model=M (either axis optional): trials and inputs are split "
        "over batch, a loaded model's parameters over model (heads, MLP hidden units, vocabulary)",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="multi-process run: address of process 0 (jax.distributed); with --num-processes "
        "and --process-id",
    )
    g.add_argument(
        "--num-processes", type=_int_at_least(1), metavar="P", help="processes in the run"
    )
    g.add_argument("--process-id", type=_int_at_least(0), metavar="I", help="this process, 0..P-1")


def requested(args) -> bool:
    """Whether any devices or hosts option was given."""
    return any(getattr(args, d, None) is not None for d in DEST)


def check(args) -> dict | None:
    """Check the options' values (nothing touches JAX); the parsed ``--mesh`` or None."""
    from theory.distributed import check_process_flags
    from theory.sharding import mesh_size, parse_mesh

    check_process_flags(args.coordinator, args.num_processes, args.process_id)
    sizes = parse_mesh(args.mesh) if args.mesh is not None else None
    n = mesh_size(sizes) if sizes is not None else args.devices
    processes = args.num_processes or 1
    if n is not None and n % processes:
        raise ToolkitError(
            f"{'--mesh' if sizes is not None else '--devices'}: {n} devices cannot be split "
            f"evenly over --num-processes {processes} (each process contributes the same number)"
        )
    return sizes


def start(args) -> None:
    """Join the multi-process run and give the CPU backend its devices (before JAX computes)."""
    if not requested(args):
        return
    from theory import distributed
    from theory.sharding import mesh_size

    sizes = check(args)
    n = mesh_size(sizes) if sizes is not None else args.devices
    if n is not None:  # without an accelerator, split the host CPU into as many devices
        distributed.request_cpu_devices(n // (args.num_processes or 1))
    # several CPU devices share one thread pool: make room (theory/distributed.py says why)
    distributed.protect_cpu_pool(distributed.host_device_count())
    if args.coordinator is not None:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)


def mesh_for(args, devices_axis: str):
    """The mesh the options ask for (``--devices N``: N along ``devices_axis``; a multi-process
    run without either option: every device along it), or None to run as before."""
    if not requested(args):
        return None
    import jax

    from theory.sharding import make_mesh, parse_mesh

    if args.mesh is not None:
        return make_mesh(parse_mesh(args.mesh))
    return make_mesh({devices_axis: args.devices or jax.device_count()})


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def is_main_process() -> bool:
    """Whether this process prints and writes the results (process 0, or the only one)."""
    import jax

    return jax.process_index() == 0


def describe(mesh) -> str:
    """``"4 devices (cpu), mesh batch=2 model=2, 2 processes"``."""
    import jax

    devices = mesh.devices.flat
    first = next(iter(devices))
    text = f"{mesh.size} devices ({first.platform}), mesh " + " ".join(
        f"{a}={s}" for a, s in mesh.shape.items()
    )
    if jax.process_count() > 1:
        text += f", {jax.process_count()} processes"
    return text
