"""How many cores this process may use, and capping the compute threads of processes that share them.

Each backend sizes its thread pools to the machine's cores. Processes side by
side then oversubscribe them, and PyTorch's OpenMP threads spin while they
wait: measured here, two torch processes training one MNIST epoch each on 2
cores took 28.7 s per epoch with their default 2 threads, 3.6 s with 1 thread.
"""

from __future__ import annotations

import os


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
