"""A JAX training loop for a Keras model on the jax backend: a jitted `lax.scan` over each epoch."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from multibackend.native import batch_order


def fit_with_loop(model, x_train, y_train, epochs, batch_size, seed, on_epoch_end=None, shuffle=True) -> dict:
    """Trains with Keras's stateless API under `jax.jit`; see `multibackend.keras_loops.fit_with_loop`."""
    import keras

    if keras.backend.backend() != "jax":
        raise RuntimeError("the JAX loop needs the jax backend")
    optimizer = keras.optimizers.RMSprop()
    optimizer.build(model.trainable_variables)
    loss_function = keras.losses.get("sparse_categorical_crossentropy")

    def compute_loss(trainable, non_trainable, x, y):
        probabilities, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return jnp.mean(loss_function(y, probabilities)), (probabilities, non_trainable)

    gradient_function = jax.value_and_grad(compute_loss, has_aux=True)

    def update(state, x, y):
        trainable, non_trainable, optimizer_state = state
        (loss, (probabilities, non_trainable)), grads = gradient_function(trainable, non_trainable, x, y)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        correct = jnp.sum(jnp.argmax(probabilities, axis=1) == y)
        return (trainable, non_trainable, optimizer_state), loss, correct

    step = jax.jit(update)

    @jax.jit
    def full_batches(state, inputs, labels, batches):
        def body(state, index):
            state, loss, correct = update(state, inputs[index], labels[index])
            return state, (loss, correct)

        return jax.lax.scan(body, state, batches)

    variable_groups = (model.trainable_variables, model.non_trainable_variables, optimizer.variables)
    state = tuple([variable.value for variable in group] for group in variable_groups)
    inputs, labels = jnp.asarray(x_train), jnp.asarray(y_train.astype(np.int32))
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(len(x_train)) if shuffle else np.arange(len(x_train))
        batches, rest = batch_order(order, batch_size)
        state, (losses, corrects) = full_batches(state, inputs, labels, batches)
        total_loss, correct = jnp.sum(losses) * batch_size, jnp.sum(corrects)
        if len(rest):
            state, loss, rest_correct = step(state, inputs[rest], labels[rest])
            total_loss, correct = total_loss + loss * len(rest), correct + rest_correct
        history["loss"].append(float(total_loss) / len(x_train))
        history["accuracy"].append(float(correct) / len(x_train))
        if on_epoch_end is not None:
            on_epoch_end(epoch, time.perf_counter() - started, {name: values[-1] for name, values in history.items()})
    for group, values in zip(variable_groups, state):
        for variable, value in zip(group, values):
            variable.assign(value)
    return history
