"""Keras models for the course's networks, written with Keras 3 APIs only.

No backend-specific code lives here: the same functions build the same model on
TensorFlow, PyTorch and JAX. Import this module only after a backend is chosen.
"""

from __future__ import annotations

import keras
import numpy as np

from multibackend.course.networks import DenseNetworkSpec, Example, initial_weights

OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
}


def build_dense(
    spec: DenseNetworkSpec,
    *,
    weights: list[np.ndarray] | None = None,
    name: str | None = None,
) -> keras.Sequential:
    """Builds a `Sequential` stack of `Dense` layers for `spec`.

    Args:
        spec: Layer sizes and activations.
        weights: Optional initial weights in `get_weights()` order.
        name: Optional model name.

    Returns:
        The (uncompiled) model.
    """
    layers: list[keras.layers.Layer] = [keras.Input(shape=(spec.input_size,))]
    for units, activation in spec.hidden:
        layers.append(keras.layers.Dense(units, activation=activation))
        if spec.dropout > 0:
            layers.append(keras.layers.Dropout(spec.dropout))
    units, activation = spec.output
    layers.append(keras.layers.Dense(units, activation=activation))
    model = keras.Sequential(layers, name=name)
    if weights is not None:
        model.set_weights(weights)
    return model


def make_optimizer(
    name: str, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None
) -> keras.optimizers.Optimizer:
    """Creates an optimizer by name, with Keras's defaults unless a rate is given.

    Args:
        name: One of `OPTIMIZERS`.
        learning_rate: Learning rate or schedule, or None for the optimizer's default.

    Returns:
        A new optimizer instance.
    """
    optimizer_class = OPTIMIZERS[name]
    return optimizer_class() if learning_rate is None else optimizer_class(learning_rate=learning_rate)


def compile_example(model: keras.Model, example: Example, **compile_kwargs) -> keras.Model:
    """Compiles `model` with the course's loss, optimizer and metric for `example`.

    Args:
        model: The model to compile.
        example: The course example whose training settings apply.
        **compile_kwargs: Passed on to `model.compile` (e.g. `jit_compile`).

    Returns:
        The same model, compiled.
    """
    model.compile(
        loss=example.loss,
        optimizer=make_optimizer(example.optimizer, example.learning_rate),
        metrics=[example.metric],
        **compile_kwargs,
    )
    return model


def build_example(example: Example, seed: int, **compile_kwargs) -> keras.Model:
    """Builds and compiles a course example from the shared NumPy initial weights.

    Args:
        example: `networks.XOR` or `networks.MNIST`.
        seed: Seed of the initial weights (see `networks.initial_weights`).
        **compile_kwargs: Passed on to `model.compile`.

    Returns:
        The compiled model, identical in its starting point on every backend.
    """
    model = build_dense(example.network, weights=initial_weights(example.network, seed), name=example.name)
    return compile_example(model, example, **compile_kwargs)
