"""Reference training loops written directly in each framework, for the course's MNIST network.

Each loop trains `784 -> Dense(512, relu) -> Dense(10, softmax)` with RMSprop
as Keras computes it (`w -= lr * g / sqrt(v + eps)`, learning rate 1e-3,
rho 0.9, epsilon 1e-7), sparse categorical crossentropy and batch 128, from the same NumPy initial weights as
the Keras model. They are the baseline of `multibackend-bench` and double as
course material: this is how backpropagation updates the weights, step by step.

Each backend's module has a `NativeTrainer`, written as a user of that
framework would write a fast loop: PyTorch steps eagerly; JAX and TensorFlow
compile a whole epoch into one call. `train` drives one for whole epochs.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from typing import Protocol

import numpy as np

LEARNING_RATE = 1e-3
RHO = 0.9
EPSILON = 1e-7


class NativeTrainer(Protocol):
    """The course network in one framework, trained one epoch at a time."""

    def train_epoch(self, order: np.ndarray) -> float:
        """Runs one epoch over the training samples in `order`, in batches; returns its mean loss."""
        ...

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        """The predicted class of every row of `x`."""
        ...


def has_native_trainer(backend: str) -> bool:
    """Whether `backend` has a native loop here (`<backend>_loop.py`): a backend may have none."""
    return importlib.util.find_spec(f"{__name__}.{backend}_loop") is not None


def native_trainer(
    backend: str, x_train: np.ndarray, y_train: np.ndarray, weights: list[np.ndarray], batch_size: int
) -> NativeTrainer:
    """The native trainer of `backend` ("torch", "jax" or "tensorflow").

    Args:
        backend: Which framework's loop.
        x_train: float32 `(n, 784)` inputs.
        y_train: integer class labels `(n,)`.
        weights: Initial `[kernel1, bias1, kernel2, bias2]`, Keras layout (kernels are `(in, out)`).
        batch_size: Samples per update; the last batch of an epoch may be shorter.

    Returns:
        A trainer holding its own copy of the network.
    """
    module = importlib.import_module(f"multibackend.bench.native.{backend}_loop")
    return module.NativeTrainer(x_train, y_train, weights, batch_size)


def train(backend: str, x_train, y_train, x_test, y_test, weights, epochs: int, batch_size: int, seed: int = 0) -> dict:
    """Trains the course network with `backend`'s native loop, shuffling every epoch.

    Returns:
        `{"epoch_seconds": [...], "loss": [...], "test_accuracy": float}`.
    """
    trainer = native_trainer(backend, x_train, y_train, weights, batch_size)
    rng = np.random.default_rng(seed)
    epoch_seconds, losses = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        losses.append(trainer.train_epoch(rng.permutation(len(x_train))))
        epoch_seconds.append(time.perf_counter() - started)
    test_accuracy = float(np.mean(trainer.predict_classes(x_test) == y_test))
    return {"epoch_seconds": epoch_seconds, "loss": losses, "test_accuracy": test_accuracy}
