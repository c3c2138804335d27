"""Choosing the Keras backend and the device before Keras is imported.

Keras fixes its backend at import time (`KERAS_BACKEND`), and each framework
reads its device settings at import too, so everything here must run first.
Only this module and `devices.py` know backend-specific details.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from multibackend.runtime.errors import UsageError

BACKENDS = ("torch", "tensorflow", "jax")
DEFAULT_BACKEND = "torch"
DEVICES = ("auto", "cpu", "gpu")

# What to install when a backend's package is missing (CPU builds; see README for CUDA).
INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0",
    "tensorflow": "pip install tensorflow-cpu==2.21.0",
    "jax": "pip install jax==0.10.2",
}


def quiet_framework_logs() -> None:
    """Silences TensorFlow's C++ start-up chatter; must run before TensorFlow is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def installed_backends() -> list[str]:
    """Backends whose framework package can be imported in this environment."""
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


def check_backend(name: str) -> None:
    """Raises `UsageError` unless `name` is a known, installed backend."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if importlib.util.find_spec("keras") is None:
        raise UsageError("keras is not installed: pip install keras==3.15.1")
    if importlib.util.find_spec(name) is None:
        raise UsageError(f"backend {name!r} is not installed: {INSTALL_HINTS[name]} (or use nox: nox -s mnist-{name})")


def select_backend(name: str, device: str = "cpu") -> None:
    """Fixes the Keras backend and the frameworks' device settings for this process.

    Must run before the first `import keras`. If Keras is already imported with
    the same backend this is a no-op; with another backend it is an error,
    because Keras cannot switch backends inside one process.

    Args:
        name: One of `BACKENDS`.
        device: `"cpu"` or `"gpu"` (already resolved, see `devices.resolve_device`).
    """
    if name not in BACKENDS:
        check_backend(name)
    if "keras" in sys.modules:
        active = sys.modules["keras"].backend.backend()
        if active != name:
            raise UsageError(
                f"keras is already imported with backend {active!r} in this process; "
                f"start a new process with KERAS_BACKEND={name}"
            )
        return
    check_backend(name)
    os.environ["KERAS_BACKEND"] = name
    quiet_framework_logs()
    # Several runs may share one GPU: never let JAX or TensorFlow take all its memory.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if device == "cpu":
        os.environ["KERAS_TORCH_DEVICE"] = "cpu"
        os.environ["JAX_PLATFORMS"] = "cpu"
        if name == "tensorflow":
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    elif device == "gpu":
        os.environ["KERAS_TORCH_DEVICE"] = "cuda"
        os.environ.pop("JAX_PLATFORMS", None)
        if name == "jax":
            os.environ["JAX_PLATFORMS"] = "cuda"
