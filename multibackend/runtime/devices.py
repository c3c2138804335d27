"""Which device a backend can use, and proof of where the work really ran.

The probes import the framework (not Keras) so that `auto` can be resolved
before Keras is imported; the proofs inspect a trained Keras variable.
"""

from __future__ import annotations

import glob
import os
import platform

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
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available() and torch.cuda.device_count() > 0)
        if backend == "jax":
            import jax

            return len(jax.devices("gpu")) > 0
        if backend == "tensorflow":
            import tensorflow as tf

            return len(tf.config.list_physical_devices("GPU")) > 0
    except Exception:  # noqa: BLE001 - a framework that cannot reach a GPU raises many kinds
        return False
    return False


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

    value = variable.value
    backend = keras.backend.backend()
    if backend == "torch":
        return str(value.device)
    if backend == "jax":
        return ",".join(sorted(str(device) for device in value.devices()))
    return str(value.device)


def device_kind(framework_device: str) -> str:
    """Classifies a framework's device string as `gpu` or `cpu`."""
    lowered = framework_device.lower()
    return "gpu" if ("cuda" in lowered or "gpu" in lowered) else "cpu"


def gpu_details(backend: str) -> dict:
    """Name and memory of the first GPU as the backend's framework reports them."""
    if backend == "torch":
        import torch

        properties = torch.cuda.get_device_properties(0)
        return {"name": properties.name, "memory_bytes": int(properties.total_memory)}
    if backend == "jax":
        import jax

        device = jax.devices("gpu")[0]
        stats = device.memory_stats() or {}
        return {"name": device.device_kind, "memory_bytes": int(stats.get("bytes_limit", 0)) or None}
    import tensorflow as tf

    gpu = tf.config.list_physical_devices("GPU")[0]
    details = tf.config.experimental.get_device_details(gpu)
    return {"name": details.get("device_name", gpu.name), "memory_bytes": None}


def set_tf32(backend: str, enabled: bool) -> None:
    """Turns TensorFloat-32 matmuls on or off (off for cross-backend comparisons)."""
    if backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", None if enabled else "float32")
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(enabled)


def tf32_enabled(backend: str) -> bool:
    """Whether TensorFloat-32 matmuls may be used on a GPU by this backend."""
    if backend == "torch":
        import torch

        return bool(torch.backends.cuda.matmul.allow_tf32)
    if backend == "jax":
        import jax

        return jax.config.jax_default_matmul_precision not in ("float32", "highest")
    import tensorflow as tf

    return bool(tf.config.experimental.tensor_float_32_execution_enabled())
