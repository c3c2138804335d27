"""Reference training loops written directly in each framework, for the course's MNIST network.

Each loop trains `784 -> Dense(512, relu) -> Dense(10, softmax)` with RMSprop
as Keras computes it (`w -= lr * g / sqrt(v + eps)`, learning rate 1e-3,
rho 0.9, epsilon 1e-7), sparse categorical crossentropy and batch 128, from the same NumPy initial weights as
the Keras model. They are the baseline of `multibackend bench` and double as
course material: this is how backpropagation updates the weights, step by step.

Every loop has the signature of `train`:

    train(x_train, y_train, x_test, y_test, weights, epochs, batch_size, seed)
        -> {"epoch_seconds": [...], "test_accuracy": float, "loss": [...]}

Each is written as a user of that framework would write a fast loop: PyTorch
steps eagerly; JAX and TensorFlow compile a whole epoch into one call.
"""

from __future__ import annotations

import numpy as np

LEARNING_RATE = 1e-3
RHO = 0.9
EPSILON = 1e-7


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
