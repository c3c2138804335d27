"""Serve `keras.datasets.mnist.load_data()` from the project's verified local copy.

Course code calls `mnist.load_data()`, which downloads `mnist.npz` and checks
it against a fixed SHA-256; offline that fails, and a file we wrote ourselves
would be rejected. `install()` replaces only that one function, in this
process, with `multibackend.course.data.load_mnist` (same arrays, same dtypes and
shapes, every source file hash-checked). It touches no file: not the user's
Keras cache, not the script. It patches lazily, when Keras's `mnist` module is
first imported, so a script that never uses it is unaffected.

For a smoke run (`multibackend verify --smoke`) it serves the first images of
each split only, so that a hand-written training loop is short too. Course
code often reshapes with the full length written out
(`train_images.reshape((60000, 28 * 28))`); those slices read such a length as
their own (see `DatasetSlice`).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from multibackend.runtime.import_hooks import on_import

KERAS_MNIST = "keras.src.datasets.mnist"
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
OPTION_HINT = "turn the offline datasets on: multibackend verify --offline-datasets on"


@dataclass(frozen=True)
class Sample:
    """How many images of each split a smoke run is served."""

    train: int = 1024
    test: int = 512


class DatasetSlice(np.ndarray):
    """The first rows of a dataset split that remembers the split's full length.

    `reshape` reads a leading dimension equal to the full length as the slice's
    own length, so that `x_train.reshape((60000, 784))` works on a smoke run's
    1,024 images. Everything else is NumPy's.
    """

    full_length: int | None

    def __array_finalize__(self, obj) -> None:
        self.full_length = getattr(obj, "full_length", None)

    def reshape(self, *shape, **kwargs):  # type: ignore[override]
        dims = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if (
            dims
            and self.full_length is not None
            and dims[0] == self.full_length
            and self.ndim
            and (len(self) != self.full_length)
        ):
            dims = (len(self), *dims[1:])
        return super().reshape(tuple(dims), **kwargs)


def dataset_slice(array: np.ndarray, length: int) -> DatasetSlice:
    """The first `length` rows of `array` as a `DatasetSlice` (a copy: writable, like Keras's arrays)."""
    part = np.array(array[:length]).view(DatasetSlice)
    part.full_length = len(array)
    return part


_sample: Sample | None = None
_on_load: Callable[[], None] | None = None


def offline_load_data(path: str = "mnist.npz"):
    """Drop-in for `keras.datasets.mnist.load_data()` that never downloads.

    Args:
        path: Accepted for compatibility with Keras; the local copy is used.

    Returns:
        `(x_train, y_train), (x_test, y_test)` as uint8 NumPy arrays (their first rows in a smoke run).
    """
    from multibackend.course.data import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(allow_download=False)
    if _on_load is not None:
        _on_load()
    if _sample is None:
        return (x_train, y_train), (x_test, y_test)
    train, test = _sample.train, _sample.test
    return (
        (dataset_slice(x_train, train), dataset_slice(y_train, train)),
        (dataset_slice(x_test, test), dataset_slice(y_test, test)),
    )


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


def install(sample: Sample | None = None, on_load: Callable[[], None] | None = None) -> None:
    """Makes `keras.datasets.mnist.load_data()` use the verified local copy in this process.

    Args:
        sample: Serve only this many images of each split (a smoke run); None serves them all.
        on_load: Called each time the data is served.
    """
    global _sample, _on_load
    _sample, _on_load = sample, on_load
    on_import(KERAS_MNIST, _patch)


def installed() -> bool:
    """Whether `install()` is in effect in this process."""
    module = sys.modules.get(KERAS_MNIST)
    if module is not None:
        return module.load_data is offline_load_data
    from multibackend.runtime.import_hooks import watched

    return watched(KERAS_MNIST, _patch)


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
