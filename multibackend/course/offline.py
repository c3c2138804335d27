"""Serve `keras.datasets.mnist.load_data()` from the project's verified local copy.

Course code calls `mnist.load_data()`, which downloads `mnist.npz` and checks
it against a fixed SHA-256; offline that fails, and a file we wrote ourselves
would be rejected. `install()` replaces only that one function, in this
process, with `multibackend.course.data.load_mnist` (same arrays, same dtypes and
shapes, every source file hash-checked). It touches no file: not the user's
Keras cache, not the script. It patches lazily, when Keras's `mnist` module is
first imported, so a script that never uses it is unaffected.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import socket
import sys

KERAS_MNIST = "keras.src.datasets.mnist"
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
OPTION_HINT = "turn the offline datasets on: multibackend verify --offline-datasets on"


def offline_load_data(path: str = "mnist.npz"):
    """Drop-in for `keras.datasets.mnist.load_data()` that never downloads.

    Args:
        path: Accepted for compatibility with Keras; the local copy is used.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as uint8 NumPy arrays.
    """
    from multibackend.course.data import load_mnist

    return load_mnist(allow_download=False)


def _patch(module) -> None:
    if module.load_data is offline_load_data:
        return
    original = module.load_data
    offline_load_data.__wrapped_original__ = original
    module.load_data = offline_load_data
    # Keras's public modules (keras.datasets.mnist, its tf_keras twin) hold their own reference.
    for name, public in list(sys.modules.items()):
        if (
            name.startswith("keras")
            and name.endswith("datasets.mnist")
            and getattr(public, "load_data", None) is original
        ):
            public.load_data = offline_load_data


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches Keras's mnist module right after it is imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname != KERAS_MNIST:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def install() -> None:
    """Makes `keras.datasets.mnist.load_data()` use the verified local copy in this process."""
    if KERAS_MNIST in sys.modules:
        _patch(sys.modules[KERAS_MNIST])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def installed() -> bool:
    """Whether `install()` is in effect in this process."""
    module = sys.modules.get(KERAS_MNIST)
    if module is not None:
        return module.load_data is offline_load_data
    return any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path)


def download_host_reachable(timeout: float = 3.0) -> bool:
    """Whether Keras's dataset host answers on its HTTPS port."""
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def resolve_option(option: str) -> bool:
    """Turns `--offline-datasets auto|on|off` into on/off (`auto`: on when the host is unreachable)."""
    if option == "on":
        return True
    if option == "off":
        return False
    return not download_host_reachable()
