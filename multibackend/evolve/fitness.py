"""A genome's fitness: its network built and trained with Keras on the active backend.

Used by the search's objective (validation accuracy) and by the final step (test accuracy over seeds).
A search's trial trains with the framework loop where it trains the model exactly as `fit` would (the fast path,
which `multibackend parity` and `tests/training/test_keras_loops.py` check against `fit`), else with Keras `fit`; the
final step always with `fit`.
"""

from __future__ import annotations

import math

import numpy as np

from multibackend.evolve.genome import Genome

FIT, LOOP = "fit", "loop"


def learning_rate(genome: Genome, train_images: int):
    """The genome's learning rate: a number, or a cosine decay to 0 over all of its training steps.

    Args:
        genome: The genome.
        train_images: Images per epoch (the decay's length depends on them).

    Returns:
        A float or a `keras.optimizers.schedules.CosineDecay`.
    """
    if genome.schedule == "constant":
        return genome.learning_rate
    import keras

    steps = genome.epochs * math.ceil(train_images / genome.batch_size)
    return keras.optimizers.schedules.CosineDecay(genome.learning_rate, decay_steps=steps)


def build_genome(genome: Genome, seed: int, train_images: int):
    """The genome's compiled model, its Dense layers started from the shared NumPy weights of `seed`."""
    import keras

    from multibackend.course.networks import initial_weights
    from multibackend.models import build_dense, make_optimizer

    keras.utils.set_random_seed(seed)
    spec = genome.network()
    model = build_dense(
        spec,
        weights=initial_weights(spec, seed),
        input_dropout=genome.input_dropout,
        batch_norm=genome.batch_norm,
        shift=genome.shift,
    )
    smoothing = genome.label_smoothing
    model.compile(
        # Keras's sparse crossentropy has no label smoothing; the categorical one on one-hot labels is the same loss.
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        if smoothing
        else "sparse_categorical_crossentropy",
        optimizer=make_optimizer(
            genome.optimizer,
            learning_rate(genome, train_images),
            weight_decay=genome.weight_decay if genome.optimizer == "adamw" else None,
        ),
        metrics=["accuracy"],
    )
    return model


def train_genome(
    genome: Genome,
    arrays: dict,
    seed: int,
    *,
    fast_path: bool = False,
    whole_batches: bool = False,
    callbacks=None,
):
    """Builds and trains a genome's model on `arrays`' training images (Keras, active backend).

    Args:
        genome: What to build and how to train it.
        arrays: `x_train`, `y_train` (integer labels).
        seed: Seed of the initial weights, the dropout and shift draws and the sample order.
        fast_path: Train with the active backend's framework loop when it trains the model exactly as `fit` would
            (`training.loops.loop_trains`: every genome of the search space, on every backend).
        whole_batches: Train on the first images that fill whole batches (at most `batch_size - 1` fewer): a
            search's trials, which then compile one training step, not a second one for a short last batch.
        callbacks: Keras callbacks, called at each epoch's end by either trainer.

    Returns:
        `(model, trainer)`: the trained model, and `fit` or `loop`.
    """
    import keras

    from multibackend.training.loops import fit_with_loop, loop_trains

    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if whole_batches:
        x_train, y_train = (
            array[: len(x_train) // genome.batch_size * genome.batch_size] for array in (x_train, y_train)
        )
    model = build_genome(genome, seed, len(x_train))
    if fast_path and loop_trains(model):
        fit_with_loop(model, x_train, y_train, genome.epochs, genome.batch_size, seed, callbacks=callbacks, verbose=0)
        return model, LOOP
    labels = keras.utils.to_categorical(y_train, 10) if genome.label_smoothing else y_train
    model.fit(x_train, labels, epochs=genome.epochs, batch_size=genome.batch_size, verbose=0, callbacks=callbacks)
    return model, FIT


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """The share of `x` whose most probable class is `y` (integer labels): the same for every loss and trainer."""
    # One batch up to 10,000 images: the 10,000 validation or test images compile one prediction step, not two.
    predicted = np.asarray(model.predict(x, batch_size=min(len(x), 10_000), verbose=0)).argmax(axis=1)
    return float(np.mean(predicted == y))
