"""The torch backend: Keras on PyTorch (the project's default)."""

from __future__ import annotations

ORDER = 0  # its place in listings, reports and the test runs (the default backend first)
PACKAGE = "torch"
INSTALL_HINT = "pip install torch==2.13.0"
COLOR = "#ee4c2c"  # in plots
# Its data pipeline, which Keras 3 accepts on every backend: a file that uses only it is not pinned to this one.
DATA_PIPELINES = ("torch.utils.data",)
MODULES = ("torch",)  # what a job of another backend hides
STEPS_PER_EXECUTION_COMPILED = False  # Keras's torch trainer runs them one by one in Python
# Its loop runs batch normalization and shifts through their own `call` and smooths labels as the compiled loss does.
LOOP_TRAINS_LAYER_STATE = True
# The caller's variables that reach every verified run: this framework's own settings.
PASSED_ENVIRONMENT = ("TORCH_*", "PYTORCH_*", "KERAS_TORCH_DEVICE")


def environment(device: str, chosen: bool) -> dict[str, str | None]:
    """Keras's torch backend places weights where KERAS_TORCH_DEVICE says, whichever backend the process chose."""
    return {"KERAS_TORCH_DEVICE": "cuda" if device == "gpu" else "cpu"}


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.device_count() > 0)


def gpu_details() -> dict:
    import torch

    properties = torch.cuda.get_device_properties(0)
    return {"name": properties.name, "memory_bytes": int(properties.total_memory)}


def variable_device(value) -> str:
    return str(value.device)


def peak_gpu_memory_bytes() -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_initialized() else None


def wait_for_steps(model) -> None:
    """CUDA runs kernels behind Python's back; on the CPU a step has computed when it returns."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def set_tf32(enabled: bool) -> None:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def tf32_enabled() -> bool:
    import torch

    return bool(torch.backends.cuda.matmul.allow_tf32)


def epoch_trainer(model, x_train, y_train, batch_size: int):
    """The PyTorch loop for a compiled model (see `loop.EpochTrainer`)."""
    from multibackend.backends.torch.loop import EpochTrainer

    return EpochTrainer(model, x_train, y_train, batch_size)
