"""Training loops written in the backend's own framework over a compiled Keras model (`--trainer loop`).

A labelled fast path beside Keras `fit`, never in its place: `fit` is what the
course writes and what the project proves on every backend. `fit` pays for its
generality every step (callbacks, metric objects, data adapters, per-layer
dispatch in Python); for a compiled stack of Dense and Dropout layers with a
softmax output and sparse categorical crossentropy, these loops train the very
same Keras model the way each framework runs fastest: PyTorch steps eagerly on
the layers' own `torch.nn.Parameter`s; JAX compiles a whole epoch
(`stateless_call` in a `lax.scan`); TensorFlow runs a whole epoch as one
`tf.function`.

They honour `model.compile`: the compiled optimizer is the one that trains
(JAX and TensorFlow call its own update; PyTorch computes plain RMSprop as
Keras's torch backend does, on that optimizer's own state, and hands any other
optimizer to Keras), and `iterations` and the slots hold Keras's values after
training, so saving, reloading and training on work as after `fit`. What a loop
cannot train exactly is refused with `LoopUnsupported`. Progress, history and
user callbacks go through `keras.callbacks.CallbackList`, once per epoch (the
loops run an epoch in one call, so there are no per-batch callbacks).
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numpy as np

from multibackend.runtime.errors import UsageError

# The compiled loss and metrics a loop trains and reports: the labels are class indices.
SPARSE_CROSSENTROPY = "sparse_categorical_crossentropy"
ACCURACY_METRICS = ("accuracy", "sparse_categorical_accuracy")
# Dense settings whose effect (extra loss terms, projections, low-rank updates) the loops do not compute.
DENSE_EXTRAS = ("kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                "bias_constraint", "lora_rank")  # fmt: skip


class LoopUnsupported(UsageError):
    """A model or compile setting that the framework loop cannot train exactly as `fit` would."""


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
        """Leaves the trained weights and optimizer state in the Keras model (where training did not
        update them in place)."""
        ...


def check_trainable(model) -> str:
    """Checks that a loop trains `model` exactly as its `compile` asks.

    Args:
        model: A Keras model.

    Returns:
        The name under which the accuracy is reported (`accuracy` or
        `sparse_categorical_accuracy`, as compiled).

    Raises:
        LoopUnsupported: naming the first setting the loop cannot train.
    """
    import keras

    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise LoopUnsupported("the framework loop trains a compiled model: call model.compile(...) first")
    config = model._compile_config.config
    if config.get("loss_weights") is not None or config.get("weighted_metrics"):
        raise LoopUnsupported("the framework loop does not train loss_weights or weighted_metrics")
    if _loss_name(model.loss) != SPARSE_CROSSENTROPY:
        raise LoopUnsupported(f"the framework loop trains {SPARSE_CROSSENTROPY} on integer labels, not {model.loss!r}")
    metrics = [metric if isinstance(metric, str) else getattr(metric, "name", repr(metric))
               for metric in config.get("metrics") or []]  # fmt: skip
    if len(metrics) > 1 or any(metric not in ACCURACY_METRICS for metric in metrics):
        raise LoopUnsupported(f"the framework loop reports loss and one of {', '.join(ACCURACY_METRICS)}, "
                              f"not metrics {metrics}")  # fmt: skip
    layers = list(model.layers)
    for layer in layers:
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Dropout)):
            raise LoopUnsupported(f"the framework loop trains Dense and Dropout layers, not {type(layer).__name__}")
        extras = [name for name in DENSE_EXTRAS if getattr(layer, name, None) is not None]
        if isinstance(layer, keras.layers.Dense) and (extras or not layer.use_bias):
            raise LoopUnsupported(f"the framework loop trains plain Dense layers with a bias, not {layer.name!r} "
                                  f"with {', '.join(extras) or 'use_bias=False'}")  # fmt: skip
    if not layers or not isinstance(layers[-1], keras.layers.Dense) or layers[-1].activation.__name__ != "softmax":
        raise LoopUnsupported("the framework loop needs a model that ends in a Dense layer with softmax activation")
    return metrics[0] if metrics else "accuracy"


def _loss_name(loss) -> str | None:
    """The name of a compiled loss when it is plain sparse categorical crossentropy on probabilities."""
    import keras

    if isinstance(loss, str):
        return SPARSE_CROSSENTROPY if loss in (SPARSE_CROSSENTROPY, "SparseCategoricalCrossentropy") else loss
    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        config = loss.get_config()
        plain = not config.get("from_logits") and config.get("ignore_class") is None and config.get("axis", -1) == -1
        if plain and config.get("reduction") == "sum_over_batch_size":
            return SPARSE_CROSSENTROPY
    return None


def epoch_trainer(model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
    """The `EpochTrainer` of the active Keras backend for a compiled `model`.

    Args:
        model: A compiled Keras model that `check_trainable` accepts.
        x_train: float32 `(n, features)` inputs.
        y_train: integer class labels `(n,)`.
        batch_size: Samples per update; the last batch of an epoch may be shorter.

    Returns:
        A trainer whose `train_epoch(order)` trains `model` on those samples.
    """
    check_trainable(model)
    return _framework_trainer(model, x_train, y_train, batch_size)


def _framework_trainer(model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
    """The active backend's `EpochTrainer` for a model already checked by `check_trainable`."""
    import keras

    module = importlib.import_module(f"multibackend.training.loops.{keras.backend.backend()}_loop")
    return module.EpochTrainer(model, x_train, y_train, batch_size)


def fit_with_loop(
    model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list | None = None,
    verbose: int | str = "auto",
    shuffle: bool = True,
):
    """Trains a compiled Keras model with the loop of the active Keras backend, reporting like `fit`.

    Args:
        model: A compiled Keras model that `check_trainable` accepts.
        x_train: float32 `(n, features)` inputs.
        y_train: integer class labels `(n,)`.
        epochs: Epochs to train.
        batch_size: Samples per update; the last batch of an epoch may be shorter.
        seed: Seed of the shuffling order (NumPy's, the same on every backend).
        callbacks: Keras callbacks; their epoch and train hooks are called as `fit` calls them.
        verbose: As in `fit`: 0 silent, 1 progress bar, 2 one line per epoch, "auto" = 1.
        shuffle: Whether to shuffle the samples every epoch (as `fit` does by default).

    Returns:
        The `keras.callbacks.History` of the run, as `fit` returns it.
    """
    import keras

    accuracy_name = check_trainable(model)
    trainer = _framework_trainer(model, x_train, y_train, batch_size)
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=-(-len(x_train) // batch_size),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        loss, accuracy = trainer.train_epoch(rng.permutation(len(x_train)) if shuffle else np.arange(len(x_train)))
        trainer.sync_model()
        callback_list.on_epoch_end(epoch, {accuracy_name: accuracy, "loss": loss})
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history


def batch_order(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits one epoch's sample order into full batches and the short last batch.

    Args:
        order: A permutation of the sample indices.
        batch_size: Samples per batch.

    Returns:
        `(batches, rest)`: int32 indices of shape `(n // batch_size, batch_size)`
        and the remaining `n % batch_size` indices (possibly empty).
    """
    full = len(order) // batch_size * batch_size
    order = order.astype(np.int32)
    return order[:full].reshape(-1, batch_size), order[full:]


def require_backend(name: str) -> None:
    """Raises `RuntimeError` unless Keras runs on backend `name`."""
    import keras

    if keras.backend.backend() != name:
        raise RuntimeError(f"the {name} loop needs Keras's {name} backend, not {keras.backend.backend()}")
