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

Every loop has the signature of `fit_with_loop`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

EpochCallback = Callable[[int, float, dict], None]


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
        on_epoch_end: Optional callable `(epoch, seconds, {"loss": ..., "accuracy": ...})`.
        shuffle: Whether to shuffle the samples every epoch (as `fit` does by default).

    Returns:
        `{"loss": [...], "accuracy": [...]}` per epoch, like `History.history`.
    """
    import keras

    module = importlib.import_module(f"multibackend.keras_loops.{keras.backend.backend()}_loop")
    return module.fit_with_loop(model, x_train, y_train, epochs, batch_size, seed, on_epoch_end, shuffle)
