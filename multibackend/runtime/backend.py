"""Choosing the Keras backend and the device before Keras is imported.

Keras fixes its backend at import time (`KERAS_BACKEND`), and each framework
reads its device settings at import too, so everything here must run first.
What differs between backends is each one's own (`multibackend.backends`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile

from multibackend import backends
from multibackend.runtime.errors import UsageError

BACKENDS = backends.NAMES
DEFAULT_BACKEND = "torch"
DEVICES = ("auto", "cpu", "gpu")

# What to install when a backend's package is missing (CPU builds; see the docs for CUDA).
INSTALL_HINTS = {name: backends.backend(name).INSTALL_HINT for name in BACKENDS}


def quiet_framework_logs() -> None:
    """Silences TensorFlow's C++ start-up chatter; must run before TensorFlow is first imported.

    `TF_CPP_MIN_LOG_LEVEL` quiets TensorFlow's own log, but TensorFlow 2.21's libraries also log through Abseil
    before anything initializes it, and that goes to the process's stderr whatever the level: on a CPU with
    AVX-512 each `import tensorflow` wrote four lines ("oneDNN custom operations are on..."), before the one
    line of a refused command too. So TensorFlow's import, wherever it happens (Keras imports it lazily from
    `set_random_seed` and its data adapters), runs with stderr captured, and what it wrote is shown only if the
    import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport("tensorflow"))


class _QuietImport(importlib.abc.MetaPathFinder):
    """Imports one top-level package with the process's stderr (file descriptor 2) captured."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path, target=None):
        if fullname != self.package:
            return None
        # The spec the other finders give, wherever they are: a framework hidden after this finder stays hidden.
        others = (finder for finder in sys.meta_path if finder is not self and hasattr(finder, "find_spec"))
        spec = next((found for finder in others if (found := finder.find_spec(fullname, path, target))), None)
        if spec is not None and spec.loader is not None:
            spec.loader = _CapturedStderrLoader(spec.loader)
        return spec


class _CapturedStderrLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # the package's own, for its resources
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            except BaseException:
                _restore_stderr(saved)
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
                raise
            _restore_stderr(saved)


def _restore_stderr(saved: int) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def installed_backends() -> list[str]:
    """Backends whose framework package can be imported in this environment."""
    return backends.installed()


def chosen_backends(requested: list[str] | None) -> list[str]:
    """The backends a command runs: the requested ones (each once), or every installed one.

    Args:
        requested: Backend names as the user gave them, or None (or empty) for every installed backend.

    Returns:
        The names, in the order given (or `BACKENDS`' order).

    Raises:
        UsageError: for an unknown name, or a requested backend that is not installed here.
    """
    available = installed_backends()
    if not requested:
        return [name for name in BACKENDS if name in available]
    chosen = list(dict.fromkeys(requested))
    for name in chosen:
        if name not in BACKENDS:
            raise UsageError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
        if name not in available:
            raise UsageError(
                f"backend {name!r} is not installed here (installed: {', '.join(available) or 'none'}): "
                f"{INSTALL_HINTS[name]}"
            )
    return chosen


def check_backend(name: str) -> None:
    """Raises `UsageError` unless `name` is a known, installed backend."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if importlib.util.find_spec("keras") is None:
        raise UsageError("keras is not installed: pip install keras==3.15.1")
    if importlib.util.find_spec(backends.backend(name).PACKAGE) is None:
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
    for other in BACKENDS:  # every framework the process may import, the chosen one's own way
        for key, value in backends.backend(other).environment(device, chosen=other == name).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_keras():
    """Imports Keras on the backend that `select_backend` fixed.

    Returns:
        The `keras` module.

    Raises:
        UsageError: when Keras or its framework is installed but cannot be imported: a broken environment, exit 2.
    """
    name = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
    try:
        import keras
    except Exception as error:  # noqa: BLE001 - a broken install raises anything: ImportError, OSError, ...
        first = str(error).strip().splitlines()[:1]
        raise UsageError(
            f"keras on the {name} backend cannot be imported ({type(error).__name__}: {first[0] if first else ''}); "
            f"the install looks broken: reinstall it ({INSTALL_HINTS.get(name, 'pip install keras')})"
        ) from None
    return keras


class _Absent(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (hidden: not this job's backend)", name=spec.name)

    def exec_module(self, module):  # never reached
        raise ModuleNotFoundError(module.__name__)


class _HideFrameworks(importlib.abc.MetaPathFinder):
    def __init__(self, hidden: set[str]):
        self.hidden = hidden

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.hidden:
            return importlib.machinery.ModuleSpec(fullname, _Absent(), origin=None)
        return None


def hide_other_frameworks(name: str) -> None:
    """Makes the frameworks of the other backends look uninstalled in this process, as in a venv of one backend.

    Keras imports JAX wherever it is installed (its Orbax checkpoint callback): in an environment with every
    backend, a torch or TensorFlow process would load JAX too (0.8-1.0 s of CPU and about 105 MiB here).

    Args:
        name: The backend whose framework stays importable, with the modules its Keras backend imports itself
            (`USES_MODULES`: Keras's NumPy backend takes JAX's `lax`).
    """
    kept = set(getattr(backends.backend(name), "USES_MODULES", ())) if name in BACKENDS else set()
    hidden = {module for other in BACKENDS if other != name for module in backends.backend(other).MODULES} - kept
    sys.meta_path.insert(0, _HideFrameworks(hidden))
