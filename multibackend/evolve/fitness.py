"""A genome's fitness: its network built and trained with Keras on the active backend.

Used by the search's objective (validation accuracy) and by the final step (test accuracy over seeds).
"""

from __future__ import annotations

from multibackend.evolve.genome import Genome


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
        optimizer=make_optimizer(genome.optimizer, genome.learning_rate),
        metrics=["accuracy"],
    )
    model.fit(arrays["x_train"], arrays["y_train"], epochs=genome.epochs, batch_size=genome.batch_size, verbose=0)
    return model
