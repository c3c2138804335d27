"""Training loops written in the backend's own framework over a compiled Keras model (`--trainer loop`).

A labelled fast path beside Keras `fit`, never in its place: `fit` is what the
course writes and what the project proves on every backend. `fit` pays for its
generality every step (callbacks, metric objects, data adapters, per-layer
dispatch in Python); for a compiled stack of Dense and Dropout layers with a
softmax output and sparse categorical crossentropy, these loops train the very
same Keras model the way each framework runs fastest: PyTorch steps eagerly on
the layers' own `torch.nn.Parameter`s (a layer with state of its own through
its own `call`); JAX compiles a whole epoch of the steps `fit` takes (the
model's `compute_loss_and_updates` in a `lax.scan`); TensorFlow runs a whole
epoch of the model's own call and `compute_loss` as one `tf.function`. All
three also train a batch normalization, `models.RandomShift` and a categorical
crossentropy with label smoothing.

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

import numpy as np

from multibackend.backends import backend, has_loop
from multibackend.backends.base import EpochTrainer, LoopUnsupported, check_trainable


def epoch_trainer(model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
    """The `EpochTrainer` of the active Keras backend for a compiled `model`.

    Args:
        model: A compiled Keras model that `check_loop_trains` accepts.
        x_train: float32 `(n, features)` inputs.
        y_train: integer class labels `(n,)`.
        batch_size: Samples per update; the last batch of an epoch may be shorter.

    Returns:
        A trainer whose `train_epoch(order)` trains `model` on those samples.
    """
    check_loop_trains(model)
    return _framework_trainer(model, x_train, y_train, batch_size)


def check_loop_trains(model) -> str:
    """`check_trainable` for the active backend's loop: the name under which it reports the accuracy.

    Raises:
        LoopUnsupported: naming the first setting that loop cannot train.
    """
    import keras

    name = keras.backend.backend()
    if not has_loop(name):
        raise LoopUnsupported(f"the {name} backend has no framework loop (train with fit)")
    return check_trainable(model, layer_state=backend(name).LOOP_TRAINS_LAYER_STATE)


def loop_trains(model) -> bool:
    """Whether the active backend's loop trains the compiled `model` exactly as `fit` would."""
    try:
        check_loop_trains(model)
    except LoopUnsupported:
        return False
    return True


def _active_backend():
    import keras

    return backend(keras.backend.backend())


def _framework_trainer(model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int) -> EpochTrainer:
    """The active backend's `EpochTrainer` for a model already checked by `check_loop_trains`."""
    return _active_backend().epoch_trainer(model, x_train, y_train, batch_size)


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
        model: A compiled Keras model that `check_loop_trains` accepts.
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

    accuracy_name = check_loop_trains(model)
    trainer = _framework_trainer(model, x_train, y_train, batch_size)
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=-(-len(x_train) // batch_size),
    )
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
