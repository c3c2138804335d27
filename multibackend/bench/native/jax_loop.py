"""The course's MNIST network trained in plain JAX (a jitted `lax.scan` over each epoch, RMSprop written out)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from multibackend.backends.base import batch_order
from multibackend.bench.native import EPSILON, LEARNING_RATE, RHO


def _forward(params, x):
    hidden = jax.nn.relu(x @ params[0] + params[1])
    return hidden @ params[2] + params[3]


def _loss(params, x, y):
    log_probabilities = jax.nn.log_softmax(_forward(params, x))
    return -jnp.mean(jnp.take_along_axis(log_probabilities, y[:, None], axis=1))


def _update(params, velocities, x, y):
    loss, grads = jax.value_and_grad(_loss)(params, x, y)
    velocities = [RHO * v + (1 - RHO) * g * g for v, g in zip(velocities, grads)]
    params = [p - LEARNING_RATE * g / jnp.sqrt(v + EPSILON) for p, g, v in zip(params, grads, velocities)]
    return params, velocities, loss


_step = jax.jit(_update)


@jax.jit
def _full_batches(params, velocities, inputs, labels, batches):
    # One compiled call per epoch: Python dispatches once, not once per batch.
    def body(carry, index):
        params, velocities, loss = _update(*carry, inputs[index], labels[index])
        return (params, velocities), loss

    (params, velocities), losses = jax.lax.scan(body, (params, velocities), batches)
    return params, velocities, losses


class NativeTrainer:
    """A jitted JAX epoch; see `multibackend.bench.native.NativeTrainer`."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, weights: list[np.ndarray], batch_size: int):
        self.params = [jnp.asarray(w) for w in weights]
        self.velocities = [jnp.zeros_like(p) for p in self.params]
        self.inputs, self.labels = jnp.asarray(x_train), jnp.asarray(y_train.astype(np.int32))
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> float:
        batches, rest = batch_order(order, self.batch_size)
        self.params, self.velocities, batch_losses = _full_batches(
            self.params, self.velocities, self.inputs, self.labels, batches
        )
        total = jnp.sum(batch_losses) * self.batch_size
        if len(rest):
            self.params, self.velocities, loss = _step(
                self.params, self.velocities, self.inputs[rest], self.labels[rest]
            )
            total = total + loss * len(rest)
        return float(total) / len(order)

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(jnp.argmax(_forward(self.params, jnp.asarray(x)), axis=1))
