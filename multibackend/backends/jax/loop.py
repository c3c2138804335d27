"""A JAX training loop for a compiled Keras model on the jax backend: a jitted `lax.scan` over each epoch.

It calls the compiled optimizer's own `stateless_apply`, so any Keras optimizer trains as under `fit`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from multibackend.backends.base import SPARSE_CROSSENTROPY, batch_order, require_backend


class EpochTrainer:
    """Trains a Keras model with Keras's stateless API under `jax.jit`; see `multibackend.backends.base.EpochTrainer`."""

    def __init__(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int):
        require_backend("jax")
        import keras

        optimizer = model.optimizer  # the compiled one: its state is the model's after training
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        loss_function = keras.losses.get(SPARSE_CROSSENTROPY)

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

        @jax.jit
        def full_batches(state, inputs, labels, batches):
            def body(state, index):
                state, loss, correct = update(state, inputs[index], labels[index])
                return state, (loss, correct)

            return jax.lax.scan(body, state, batches)

        self.step, self.full_batches = jax.jit(update), full_batches
        self.variable_groups = (model.trainable_variables, model.non_trainable_variables, optimizer.variables)
        self.state = tuple([variable.value for variable in group] for group in self.variable_groups)
        self.inputs, self.labels = jnp.asarray(x_train), jnp.asarray(y_train.astype(np.int32))
        self.batch_size = batch_size

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        # From the Keras variables: a callback between epochs (a predict, an evaluate) may have replaced their
        # arrays and deleted the ones the state held (Keras's jitted steps donate them).
        self.state = tuple([variable.value for variable in group] for group in self.variable_groups)
        batches, rest = batch_order(order, self.batch_size)
        self.state, (losses, corrects) = self.full_batches(self.state, self.inputs, self.labels, batches)
        total_loss, correct = jnp.sum(losses) * self.batch_size, jnp.sum(corrects)
        if len(rest):
            self.state, loss, rest_correct = self.step(self.state, self.inputs[rest], self.labels[rest])
            total_loss, correct = total_loss + loss * len(rest), correct + rest_correct
        return float(total_loss) / len(order), float(correct) / len(order)

    def sync_model(self) -> None:
        """Writes the trained weights and optimizer state into the Keras variables (JAX arrays are immutable)."""
        for group, values in zip(self.variable_groups, self.state):
            for variable, value in zip(group, values):
                variable.assign(value)
