"""Which device a backend can use, and proof of where the work really ran.

The probes import the framework (not Keras) so that `auto` can be resolved
before Keras is imported; the proofs inspect a trained Keras variable.
"""

from __future__ import annotations

import glob
import os
import platform

from multibackend import backends
from multibackend.runtime.errors import UsageError


def nvidia_driver_present() -> bool:
    """Whether this machine exposes an NVIDIA driver at all (checked without importing a framework)."""
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def gpu_available(backend: str) -> bool:
    """Whether `backend`'s framework sees a usable GPU in this process."""
    if not nvidia_driver_present():
        return False  # no framework import: no start-up cost or log chatter on CPU machines
    from multibackend.runtime.backend import quiet_framework_logs

    quiet_framework_logs()
    try:
        return bool(backends.backend(backend).gpu_available())
    except Exception:  # noqa: BLE001 - a framework that cannot reach a GPU raises many kinds
        return False


def this_backend_sees_a_gpu() -> bool:
    """Whether the backend that this process fixed (`KERAS_BACKEND`) sees a usable GPU; a job's function."""
    return gpu_available(os.environ["KERAS_BACKEND"])


def resolve_device(backend: str, requested: str) -> str:
    """Turns `auto|cpu|gpu` into `cpu` or `gpu`, refusing a GPU that is not there.

    Args:
        backend: The backend that will run.
        requested: `"auto"`, `"cpu"` or `"gpu"`.

    Returns:
        `"cpu"` or `"gpu"`.
    """
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "gpu"):
        raise UsageError(f"unknown device {requested!r} (choose from auto, cpu, gpu)")
    if gpu_available(backend):
        return "gpu"
    if requested == "gpu":
        raise UsageError(
            f"--device gpu: no usable GPU for backend {backend!r} on this machine (use --device cpu or auto)"
        )
    return "cpu"


def cpu_name() -> str:
    """The processor's model name and core count, e.g. `AMD EPYC 9B14 (2 cores)`."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"


def variable_device(variable) -> str:
    """Where a Keras variable's tensor lives, as the framework names it."""
    import keras

    return backends.backend(keras.backend.backend()).variable_device(variable.value)


def device_kind(framework_device: str) -> str:
    """Classifies a framework's device string as `gpu` or `cpu`."""
    lowered = framework_device.lower()
    return "gpu" if ("cuda" in lowered or "gpu" in lowered) else "cpu"


def gpu_details(backend: str) -> dict:
    """Name and memory of the first GPU as the backend's framework reports them."""
    return backends.backend(backend).gpu_details()


def set_tf32(backend: str, enabled: bool) -> None:
    """Turns TensorFloat-32 matmuls on or off (off for cross-backend comparisons)."""
    backends.backend(backend).set_tf32(enabled)


def tf32_enabled(backend: str) -> bool:
    """Whether TensorFloat-32 matmuls may be used on a GPU by this backend."""
    return backends.backend(backend).tf32_enabled()
