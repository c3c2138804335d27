"""A genome's fitness: its network built and trained with Keras on the active backend.

Used by the search's objective (validation accuracy) and by the final step (test accuracy over seeds).
"""

from __future__ import annotations

import math

from multibackend.evolve.genome import Genome


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


def train_genome(genome: Genome, arrays: dict, seed: int):
    """Builds and trains a genome's model; returns it (Keras, active backend)."""
    import keras

    from multibackend.course.networks import initial_weights
    from multibackend.models import build_dense, make_optimizer

    keras.utils.set_random_seed(seed)
    spec = genome.network()
    model = build_dense(spec, weights=initial_weights(spec, seed))
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=make_optimizer(genome.optimizer, learning_rate(genome, len(arrays["x_train"]))),
        metrics=["accuracy"],
    )
    model.fit(arrays["x_train"], arrays["y_train"], epochs=genome.epochs, batch_size=genome.batch_size, verbose=0)
    return model
