"""A JAX training loop for a compiled Keras model on the jax backend: a jitted `lax.scan` over each epoch.

Each step is the one `fit` takes on JAX: the model's own `compute_loss_and_updates` (Keras's JAX trainer: the
compiled loss and the layers' state that is not trained, such as a batch normalization's statistics or a random
layer's seed) and the compiled optimizer's `stateless_apply`, so any Keras optimizer trains as under `fit`. What
`fit` adds around it (metric objects, callbacks each batch, data adapters, a Python call each step) is what the loop
leaves out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from multibackend.backends.base import batch_order, one_hot_labels, require_backend


class EpochTrainer:
    """Trains a Keras model with Keras's stateless API under `jax.jit`; see `multibackend.backends.base.EpochTrainer`."""

    def __init__(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int):
        require_backend("jax")
        optimizer = model.optimizer  # the compiled one: its state is the model's after training
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        classes = model.output_shape[-1] if one_hot_labels(model) else None
        gradient_function = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)

        def update(state, x, y):
            trainable, non_trainable, optimizer_state, metrics_state = state
            targets = y if classes is None else jax.nn.one_hot(y, classes, dtype=x.dtype)
            (_, (loss, probabilities, non_trainable, metrics_state)), grads = gradient_function(
                trainable,
                non_trainable,
                metrics_state,
                x,
                targets,
                None,
                training=True,
                optimizer_variables=optimizer_state,
            )
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
            correct = jnp.sum(jnp.argmax(probabilities, axis=1) == y)
            return (trainable, non_trainable, optimizer_state, metrics_state), loss, correct

        @jax.jit
        def full_batches(state, inputs, labels, batches):
            def body(state, index):
                state, loss, correct = update(state, inputs[index], labels[index])
                return state, (loss, correct)

            return jax.lax.scan(body, state, batches)

        self.step, self.full_batches = jax.jit(update), full_batches
        # The metrics' variables only pass through (the loop reports its own loss and accuracy); they are not synced.
        self.variable_groups = (
            model.trainable_variables,
            model.non_trainable_variables,
            optimizer.variables,
            model.metrics_variables,
        )
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
        """Writes the trained weights, the layers' other state and the optimizer's into the Keras variables (JAX
        arrays are immutable)."""
        for group, values in zip(self.variable_groups[:3], self.state[:3]):
            for variable, value in zip(group, values):
                variable.assign(value)
