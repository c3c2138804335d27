"""The course's networks as plain data: layer sizes, parameter counts, NumPy initial weights.

Nothing here imports Keras, so the specs can be used before a backend is chosen
(for example by the evolutionary search's coordinator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DenseNetworkSpec:
    """A feed-forward, fully connected network.

    Attributes:
        input_size: Number of input features.
        hidden: `(units, activation)` per hidden layer.
        output: `(units, activation)` of the output layer.
        dropout: Dropout rate after each hidden layer (0 disables it).
    """

    input_size: int
    hidden: tuple[tuple[int, str], ...]
    output: tuple[int, str]
    dropout: float = 0.0

    @property
    def layer_sizes(self) -> list[int]:
        """Sizes of all layers, input first: e.g. `[784, 512, 10]`."""
        return [self.input_size, *(units for units, _ in self.hidden), self.output[0]]

    @property
    def dense_layers(self) -> list[tuple[int, str]]:
        """`(units, activation)` of each Dense layer, output included."""
        return [*self.hidden, self.output]

    @property
    def expected_params(self) -> int:
        """Trainable parameters by the course's formula `(I+1)*H + (H+1)*O`."""
        return dense_param_count(self.layer_sizes)


def dense_param_count(layer_sizes: list[int] | tuple[int, ...]) -> int:
    """Counts weights and biases of a dense network: sum of `(n_in + 1) * n_out`.

    Args:
        layer_sizes: Sizes of all layers, input first.

    Returns:
        The number of trainable parameters.
    """
    if len(layer_sizes) < 2 or any(int(n) < 1 for n in layer_sizes):
        raise ValueError(f"need at least two positive layer sizes, got {list(layer_sizes)}")
    return sum((n_in + 1) * n_out for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]))


def initial_weights(spec: DenseNetworkSpec, seed: int) -> list[np.ndarray]:
    """Draws Keras-style initial weights in NumPy, identical on every backend (`glorot_uniform_weights`).

    Args:
        spec: The network.
        seed: Seed of NumPy's default generator.

    Returns:
        The list of weight arrays.
    """
    return glorot_uniform_weights(spec.layer_sizes, seed)


def glorot_uniform_weights(sizes: list[int] | tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Glorot-uniform kernels (Keras's default) and zero biases drawn in NumPy, identical on every backend, all
    float32, in the order of `model.get_weights()`: kernel, bias, kernel, bias, ...

    Args:
        sizes: Sizes of all layers, input first.
        seed: Seed of NumPy's default generator.

    Returns:
        The list of weight arrays.
    """
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32))
        weights.append(np.zeros(fan_out, dtype=np.float32))
    return weights


@dataclass(frozen=True)
class Example:
    """A course example: its network and the way the course trains it."""

    name: str
    network: DenseNetworkSpec
    loss: str
    optimizer: str
    metric: str
    batch_size: int
    epochs: int
    learning_rate: float | None = None  # None: the optimizer's Keras default
    train_samples: int = field(default=0, compare=False)

    @property
    def updates_per_epoch(self) -> int:
        return -(-self.train_samples // self.batch_size)


XOR = Example(
    name="xor",
    network=DenseNetworkSpec(2, ((2, "tanh"),), (1, "tanh")),
    loss="mean_squared_error",
    optimizer="sgd",
    learning_rate=0.1,
    metric="binary_accuracy",
    batch_size=1,
    epochs=200,
    train_samples=4,
)

MNIST = Example(
    name="mnist",
    network=DenseNetworkSpec(28 * 28, ((512, "relu"),), (10, "softmax")),
    loss="sparse_categorical_crossentropy",
    optimizer="rmsprop",
    metric="accuracy",
    batch_size=128,
    epochs=20,
    train_samples=60_000,
)

EXAMPLES: dict[str, Example] = {XOR.name: XOR, MNIST.name: MNIST}

# The seed of the project's default shared initial weights.  For XOR it is a
# start from which the course's 800 SGD updates solve the problem on every
# backend; many other starts stall at accuracy 0.75 (see the solve rate).
DEFAULT_SEED = 4
