"""The course's MNIST network trained in plain JAX (a jitted `lax.scan` over each epoch, RMSprop written out)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from multibackend.native import EPSILON, LEARNING_RATE, RHO, batch_order


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


def train(x_train, y_train, x_test, y_test, weights, epochs: int, batch_size: int, seed: int = 0) -> dict:
    """Trains with a jitted JAX epoch; see `multibackend.native` for the contract."""
    params = [jnp.asarray(w) for w in weights]
    velocities = [jnp.zeros_like(p) for p in params]
    inputs, labels = jnp.asarray(x_train), jnp.asarray(y_train.astype(np.int32))
    rng = np.random.default_rng(seed)
    epoch_seconds, losses = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        batches, rest = batch_order(rng.permutation(len(x_train)), batch_size)
        params, velocities, batch_losses = _full_batches(params, velocities, inputs, labels, batches)
        total = jnp.sum(batch_losses) * batch_size
        if len(rest):
            params, velocities, loss = _step(params, velocities, inputs[rest], labels[rest])
            total = total + loss * len(rest)
        losses.append(float(total) / len(x_train))
        epoch_seconds.append(time.perf_counter() - started)
    predicted = np.asarray(jnp.argmax(_forward(params, jnp.asarray(x_test)), axis=1))
    return {"epoch_seconds": epoch_seconds, "loss": losses, "test_accuracy": float(np.mean(predicted == y_test))}
