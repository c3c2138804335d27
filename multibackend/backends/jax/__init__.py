"""The jax backend: Keras on JAX."""

from __future__ import annotations

ORDER = 2  # its place in listings, reports and the test runs
PACKAGE = "jax"
INSTALL_HINT = "pip install jax==0.10.2"
COLOR = "#2a6fdb"  # in plots
MODULES = ("jax", "jaxlib")  # what a job of another backend hides
STEPS_PER_EXECUTION_COMPILED = True  # steps_per_execution runs in one compiled call
LOOP_TRAINS_LAYER_STATE = True  # its loop steps with the model's own compute_loss_and_updates
# The caller's variables that reach every verified run: this framework's own settings.
PASSED_ENVIRONMENT = ("JAX_*", "XLA_*")


def environment(device: str, chosen: bool) -> dict[str, str | None]:
    """JAX takes every platform it finds unless told: the CPU in a CPU run, CUDA when it runs on the GPU."""
    if device == "cpu":
        return {"JAX_PLATFORMS": "cpu"}
    return {"JAX_PLATFORMS": "cuda" if chosen else None}


def gpu_available() -> bool:
    import jax

    return len(jax.devices("gpu")) > 0


def gpu_details() -> dict:
    import jax

    device = jax.devices("gpu")[0]
    stats = device.memory_stats() or {}
    return {"name": device.device_kind, "memory_bytes": int(stats.get("bytes_limit", 0)) or None}


def variable_device(value) -> str:
    return ",".join(sorted(str(device) for device in value.devices()))


def peak_gpu_memory_bytes() -> int | None:
    import jax

    gpus = [device for device in jax.local_devices() if device.platform == "gpu"]
    stats = (gpus[0].memory_stats() or {}) if gpus else {}
    return int(stats["peak_bytes_in_use"]) if "peak_bytes_in_use" in stats else None


def wait_for_steps(model) -> None:
    """Keras's JAX trainer keeps the training state off the model until an epoch ends: the state's arrays are the
    last dispatched step's outputs."""
    import jax

    jax.block_until_ready(getattr(model, "_jax_state", None) or [v.value for v in model.trainable_variables])


def set_tf32(enabled: bool) -> None:
    import jax

    jax.config.update("jax_default_matmul_precision", None if enabled else "float32")


def tf32_enabled() -> bool:
    import jax

    return jax.config.jax_default_matmul_precision not in ("float32", "highest")


def epoch_trainer(model, x_train, y_train, batch_size: int):
    """The JAX loop for a compiled model (see `loop.EpochTrainer`)."""
    from multibackend.backends.jax.loop import EpochTrainer

    return EpochTrainer(model, x_train, y_train, batch_size)
