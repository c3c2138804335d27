"""How many cores this process may use, and capping the compute threads of processes that share them.

Each backend sizes its thread pools to the machine's cores. Processes side by
side then oversubscribe them, and PyTorch's OpenMP threads spin while they
wait: measured here, two torch processes training one MNIST epoch each on 2
cores took 28.7 s per epoch with their default 2 threads, 3.6 s with 1 thread.
JAX has no such variable: XLA's CPU runtime sizes its thread pool by the cores
the process may run on, so processes side by side each get their own cores
(`core_shares`, `pin_to_cores`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_limits(processes: int, environ: dict | None = None) -> dict[str, str]:
    """Environment variables that give each of `processes` side-by-side processes its share of the cores.

    Args:
        processes: How many compute processes will run at once.
        environ: The environment they start from (default: this process's); a limit it sets already is kept.

    Returns:
        The variables to add (empty when one process runs alone).
    """
    environ = os.environ if environ is None else environ
    if processes <= 1:
        return {}
    threads = str(max(1, available_cores() // processes))
    limits = {
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
    }
    if threads == "1" and "xla_cpu_multi_thread_eigen" not in environ.get("XLA_FLAGS", ""):
        limits["XLA_FLAGS"] = f"{environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
    return {key: value for key, value in limits.items() if key not in environ or key == "XLA_FLAGS"}


def core_shares(processes: int) -> list[tuple[int, ...]]:
    """The cores this process may use, split into one disjoint share per process for `processes` side by side.

    Args:
        processes: How many compute processes will run at once.

    Returns:
        `processes` shares of equally many cores, in core order; empty when one process runs alone, when there are
        fewer cores than processes, or where the system cannot pin a process.
    """
    if processes <= 1 or not hasattr(os, "sched_setaffinity"):
        return []
    cores = sorted(os.sched_getaffinity(0))
    size = len(cores) // processes
    return [tuple(cores[index * size : (index + 1) * size]) for index in range(processes)] if size else []


def pin_to_cores(cores: Sequence[int]) -> None:
    """Runs this process on `cores` only: its calling thread now, and the threads started from it from now on.

    XLA's CPU runtime sizes its thread pool by the cores a process may run on, and neither
    `--xla_cpu_multi_thread_eigen=false` nor any other flag limits it. Two JAX search workers on 2 cores then ran
    each epoch of a small network (35-374, batch 50) in 0.65-0.68 s, pinned to a core each in 0.42-0.43 s; torch's,
    already limited to a thread each, took the same time either way.

    Args:
        cores: The cores; empty leaves the process as it is.
    """
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


@contextlib.contextmanager
def pinned_to_cores(cores: Sequence[int]) -> Iterator[None]:
    """`pin_to_cores` for the block's length: afterwards the calling thread may use the cores it had again (a
    framework that started its threads inside the block keeps them as they were started)."""
    before = os.sched_getaffinity(0) if cores and hasattr(os, "sched_getaffinity") else None
    pin_to_cores(cores)
    try:
        yield
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
