"""Training loops written in the backend's own framework over a Keras model (`--trainer loop`).

`fit` pays for its generality every step: callbacks, metric objects, data
adapters and per-layer dispatch in Python. For the course's MNIST recipe
(RMSprop with Keras's defaults, sparse categorical crossentropy on a softmax
output) these loops train the very same Keras model the way each framework
runs fastest: PyTorch steps eagerly on the layers' own `torch.nn.Parameter`s;
JAX compiles a whole epoch (`stateless_call` in a `lax.scan`); TensorFlow runs
a whole epoch as one `tf.function`. JAX and TensorFlow use Keras's own
optimizer and loss; the PyTorch loop computes them as Keras does. Afterwards
the Keras model holds the trained weights and evaluates, predicts and saves
as usual.

Each backend's module has an `EpochTrainer`, which trains one epoch in a
given sample order; `fit_with_loop` drives it like `fit`, and the benchmark
alternates its epochs with other trainers'.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

EpochCallback = Callable[[int, float, dict], None]


class EpochTrainer(Protocol):
    """Trains a Keras model one epoch at a time with a framework's own loop."""

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        """Runs one epoch over the training samples in `order`, in batches.

        Args:
            order: A permutation of the training sample indices.

        Returns:
            The epoch's mean loss and accuracy over its batches, as `fit` reports them.
        """
        ...

    def sync_model(self) -> None:
        """Leaves the trained weights in the Keras model (where training did not update them in place)."""
        ...


def epoch_trainer(model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
    """The `EpochTrainer` of the active Keras backend for `model`.

    Args:
        model: A Keras model of Dense (and Dropout) layers with a softmax output.
        x_train: float32 `(n, features)` inputs.
        y_train: integer class labels `(n,)`.
        batch_size: Samples per update; the last batch of an epoch may be shorter.

    Returns:
        A trainer whose `train_epoch(order)` trains `model` on those samples.
    """
    import keras

    module = importlib.import_module(f"multibackend.keras_loops.{keras.backend.backend()}_loop")
    return module.EpochTrainer(model, x_train, y_train, batch_size)


def fit_with_loop(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
    shuffle: bool = True,
) -> dict:
    """Trains a Keras MNIST model with the loop of the active Keras backend.

    Args:
        model: A Keras model of Dense (and Dropout) layers with a softmax output.
        x_train: float32 `(n, features)` inputs.
        y_train: integer class labels `(n,)`.
        epochs: Epochs to train.
        batch_size: Samples per update; the last batch of an epoch may be shorter.
        seed: Seed of the shuffling order.
        on_epoch_end: Optional callable `(epoch, seconds, {"loss": ..., "accuracy": ...})`, called
            with the epoch's weights in the model.
        shuffle: Whether to shuffle the samples every epoch (as `fit` does by default).

    Returns:
        `{"loss": [...], "accuracy": [...]}` per epoch, like `History.history`.
    """
    trainer = epoch_trainer(model, x_train, y_train, batch_size)
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.perf_counter()
        loss, accuracy = trainer.train_epoch(rng.permutation(len(x_train)) if shuffle else np.arange(len(x_train)))
        seconds = time.perf_counter() - started
        trainer.sync_model()
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        if on_epoch_end is not None:
            on_epoch_end(epoch, seconds, {"loss": loss, "accuracy": accuracy})
    return history


def require_backend(name: str) -> None:
    """Raises `RuntimeError` unless Keras runs on backend `name`."""
    import keras

    if keras.backend.backend() != name:
        raise RuntimeError(f"the {name} loop needs Keras's {name} backend, not {keras.backend.backend()}")
