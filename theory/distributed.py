"""The devices and processes of a run, set up by entry points before JAX computes.

* :func:`initialize`: one process of a multi-process run (several hosts, or several processes
  on one host) via ``jax.distributed.initialize``; afterwards ``jax.devices()`` lists every
  process's devices and a :mod:`theory.sharding` mesh spans them.
* :func:`request_cpu_devices`: split the host CPU into ``n`` XLA devices (what
  ``--xla_force_host_platform_device_count=n`` does), so sharded runs work without an
  accelerator.  GPU and TPU backends are not affected.
* :func:`protect_cpu_pool`: room in XLA's CPU thread pool for several devices at once.
  jaxlib's batched LAPACK kernels (SVD, QR, Cholesky, ...; jaxlib 0.10.2) split their batch
  over XLA's intra-op thread pool and block their own pool thread until the parts finish.
  When every thread of the pool is blocked so, nothing runs the parts and the process hangs
  with every thread idle.  The pool has one thread per core (2 on a 2-core host), and N CPU
  devices run N programs at once on it: ``verify --devices 4`` on 2 cores hung this way.
  XLA sizes the pool from ``$PJRT_NPROC``; with many threads per device the pool never runs
  out (the extra threads idle; results are the same).

Both must run before JAX creates its backends (its first computation or ``jax.devices()``);
like :func:`theory.configure_jax` they change the process, so only entry points call them.
"""

from __future__ import annotations

import ipaddress
import os

import jax

from theory.errors import ToolkitError
from theory.runtime import _backends_initialized, size_cpu_pool

HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def parse_coordinator(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(HOST, PORT)``; ToolkitError naming what was wrong."""
    host, colon, port = (address or "").rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ToolkitError(
            "--coordinator: expected HOST:PORT (port 1-65535, e.g. 127.0.0.1:1234), "
            f"got {address!r}"
        )
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_process_flags(coordinator, num_processes, process_id) -> None:
    """All three given (or none); ``0 <= process_id < num_processes``."""
    flags = ("--coordinator", "--num-processes", "--process-id")
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ToolkitError(
            "--coordinator, --num-processes and --process-id go together (every process gets "
            "the same --coordinator HOST:PORT and --num-processes P, and its own --process-id); "
            "got only " + ", ".join(f for f, g in zip(flags, given, strict=True) if g)
        )
    if not any(given):
        return
    parse_coordinator(coordinator)
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ToolkitError(f"--num-processes: expected an int >= 1, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ToolkitError(
            f"--process-id: expected an int in 0..{num_processes - 1} (--num-processes "
            f"{num_processes}), got {process_id!r}"
        )


def initialize(coordinator: str, num_processes: int, process_id: int, timeout_s: int = 300) -> None:
    """Join a run of ``num_processes`` processes coordinated by process 0 at ``coordinator``.

    Process 0 serves at HOST:PORT: on a loopback HOST it listens on that address only, else on
    every interface (as JAX does).  Every process waits up to ``timeout_s`` for the others.
    """
    check_process_flags(coordinator, num_processes, process_id)
    if _backends_initialized():
        raise ToolkitError(
            "jax.distributed must be initialised before JAX computes; call "
            "theory.distributed.initialize() first"
        )
    host, port = parse_coordinator(coordinator)
    bind = f"{host}:{port}" if is_loopback(host) else None
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=timeout_s,
        coordinator_bind_address=bind,
    )


def host_device_count_chosen() -> bool:
    """Whether the user already chose how many CPU devices the host has."""
    return (
        HOST_DEVICE_FLAG in os.environ.get("XLA_FLAGS", "")
        or "JAX_NUM_CPU_DEVICES" in os.environ
        or jax.config.jax_num_cpu_devices >= 0
    )


def request_cpu_devices(n: int) -> bool:
    """Give the CPU backend ``n`` devices (this process's), unless the user chose a count or JAX
    has started; returns whether it did."""
    if not isinstance(n, int) or n < 1:
        raise ToolkitError(f"CPU devices: expected an int >= 1, got {n!r}")
    if n == 1 or host_device_count_chosen() or _backends_initialized():
        return False
    jax.config.update("jax_num_cpu_devices", n)
    return True


def host_device_count() -> int:
    """The CPU devices this process will have, as chosen so far (1 unless set)."""
    if jax.config.jax_num_cpu_devices >= 0:
        return jax.config.jax_num_cpu_devices
    if os.environ.get("JAX_NUM_CPU_DEVICES", "").isdigit():
        return int(os.environ["JAX_NUM_CPU_DEVICES"])
    for flag in os.environ.get("XLA_FLAGS", "").split():
        name, _, value = flag.partition("=")
        if name == HOST_DEVICE_FLAG and value.isdigit():
            return int(value)
    return 1


def protect_cpu_pool(local_devices: int) -> bool:
    """Size XLA's CPU thread pool for ``local_devices`` devices (see :mod:`theory.runtime`)
    unless the user sized it or JAX has started; returns whether it did."""
    if local_devices <= 1:
        return False
    return size_cpu_pool(local_devices)
