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
    "adamw": keras.optimizers.AdamW,
}


class GivenValues(keras.initializers.Initializer):
    """Starts a variable from an array drawn elsewhere (in NumPy, the same on every backend).

    The arrays go in as they are: building a layer with Keras's random initializers and then setting its weights
    compiled a random draw per new shape on JAX (about 0.15 s a layer: a search trial built in 0.73 s, now 0.13 s).
    """

    def __init__(self, values: np.ndarray):
        self.values = values

    def __call__(self, shape, dtype=None):
        if tuple(shape) != self.values.shape:
            raise ValueError(f"initial values of shape {self.values.shape} for a variable of shape {tuple(shape)}")
        return keras.ops.convert_to_tensor(self.values, dtype=dtype)


@keras.saving.register_keras_serializable(package="multibackend")
class RandomShift(keras.layers.Layer):
    """Shifts each flattened square image by a random whole number of pixels, in training only.

    Each image moves by its own `(dy, dx)`, each in `[-max_pixels, max_pixels]`, the pixels shifted in are 0.
    A shift is one gather from the image padded with zeros (`keras.ops.take_along_axis`), a few hundred reads an
    image on any backend: `keras.layers.RandomTranslation`'s interpolated transform took 20 times a small network's
    whole training epoch on this machine's CPU (25 s against 1.3 s for 50,000 images, JAX), and two 0/1
    shift-matrix products per image (the same images) a sixth more of a search trial's time than the gather.
    At test time it passes the images through: the network is a dense network on the raw pixels.

    Args:
        max_pixels: The largest shift in each direction.
        seed: Seed of the shifts' generator.
    """

    def __init__(self, max_pixels: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_pixels = int(max_pixels)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.max_pixels == 0:
            return inputs
        margin = self.max_pixels
        side = int(round(inputs.shape[-1] ** 0.5))
        wide = side + 2 * margin
        images = keras.ops.reshape(inputs, (-1, side, side))
        padded = keras.ops.reshape(
            keras.ops.pad(images, ((0, 0), (margin, margin), (margin, margin))), (-1, wide * wide)
        )
        offsets = keras.random.randint((2, keras.ops.shape(padded)[0]), -margin, margin + 1, seed=self.generator)
        # Pixel (i, j) of a moved image is pixel (i - dy, j - dx) of the image: (i - dy + margin, j - dx + margin) padded.
        pixels = keras.ops.arange(side * side)
        unmoved = (pixels // side + margin) * wide + pixels % side + margin
        return keras.ops.take_along_axis(
            padded, unmoved[None, :] - offsets[0][:, None] * wide - offsets[1][:, None], axis=1
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_pixels": self.max_pixels, "seed": self.seed}


def shift_pixels(shift: float, input_size: int) -> int:
    """The largest move, in pixels, of a square image of `input_size` pixels shifted by `shift` of its side (at
    least 1 pixel when `shift` is positive; 0: no shifts)."""
    return max(1, round(shift * input_size**0.5)) if shift > 0 else 0


def build_dense(
    spec: DenseNetworkSpec,
    *,
    weights: list[np.ndarray] | None = None,
    name: str | None = None,
    input_dropout: float = 0.0,
    batch_norm: bool = False,
    shift: float = 0.0,
) -> keras.Sequential:
    """Builds a `Sequential` stack of `Dense` layers for `spec`.

    The options regularize a small network in training only; at test time it is the same dense network on the
    raw pixels (dropout and shifts are inactive, a batch normalization applies its kept statistics).

    Args:
        spec: Layer sizes and activations.
        weights: Optional initial weights of the `Dense` layers, `[kernel, bias, kernel, bias, ...]`.
        name: Optional model name.
        input_dropout: Dropout rate on the inputs (0: none).
        batch_norm: A `BatchNormalization` after each hidden layer.
        shift: Random shifts of square images during training (`RandomShift`), as a fraction of their side: 0.1
            moves a 28x28 digit by up to 3 pixels each way.

    Returns:
        The (uncompiled) model.
    """
    count = len(spec.hidden) + 1
    if weights is not None and len(weights) != 2 * count:
        raise ValueError(f"{len(weights)} initial weights for {count} Dense layers (a kernel and a bias each)")

    def dense(index: int, units: int, activation: str) -> keras.layers.Dense:
        if weights is None:
            return keras.layers.Dense(units, activation=activation)
        kernel, bias = weights[2 * index : 2 * index + 2]
        return keras.layers.Dense(
            units, activation=activation, kernel_initializer=GivenValues(kernel), bias_initializer=GivenValues(bias)
        )

    layers: list[keras.layers.Layer] = [keras.Input(shape=(spec.input_size,))]
    if shift > 0:
        layers.append(RandomShift(shift_pixels(shift, spec.input_size)))
    if input_dropout > 0:
        layers.append(keras.layers.Dropout(input_dropout))
    for index, (units, activation) in enumerate(spec.hidden):
        layers.append(dense(index, units, activation))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
        if spec.dropout > 0:
            layers.append(keras.layers.Dropout(spec.dropout))
    layers.append(dense(len(spec.hidden), *spec.output))
    model = keras.Sequential(layers, name=name)
    if weights is not None:
        # The given values were drawn as Keras's defaults draw them: a saved model names those (and not the arrays).
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                layer.kernel_initializer = keras.initializers.GlorotUniform()
                layer.bias_initializer = keras.initializers.Zeros()
    return model


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
    weight_decay: float | None = None,
) -> keras.optimizers.Optimizer:
    """Creates an optimizer by name, with Keras's defaults unless a rate is given.

    Args:
        name: One of `OPTIMIZERS`.
        learning_rate: Learning rate or schedule, or None for the optimizer's default.
        weight_decay: Decoupled weight decay (None: the optimizer's default, none but for AdamW).

    Returns:
        A new optimizer instance.
    """
    options = {
        **({"learning_rate": learning_rate} if learning_rate is not None else {}),
        **({"weight_decay": weight_decay} if weight_decay is not None else {}),
    }
    return OPTIMIZERS[name](**options)


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
