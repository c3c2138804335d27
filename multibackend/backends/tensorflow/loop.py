"""A TensorFlow training loop for a compiled Keras model on the tensorflow backend: one `tf.function` per epoch.

Each step is the one `fit` takes on TensorFlow: the model's own call (which carries a batch normalization's
statistics and a random layer's seed), its `compute_loss` (the compiled loss, label smoothing included) and the
compiled optimizer's own `apply`, so any Keras optimizer trains as under `fit`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from multibackend.backends.base import one_hot_labels, require_backend


class EpochTrainer:
    """Trains a Keras model with `GradientTape` in a compiled epoch; see `multibackend.backends.base.EpochTrainer`."""

    def __init__(self, model, x_train: np.ndarray, y_train: np.ndarray, batch_size: int):
        require_backend("tensorflow")
        optimizer = model.optimizer  # the compiled one: its state is the model's after training
        variables = model.trainable_variables
        if not optimizer.built:
            optimizer.build(variables)
        classes = model.output_shape[-1] if one_hot_labels(model) else None
        inputs, labels = tf.constant(x_train), tf.constant(y_train.astype(np.int32))

        def targets(y):
            return y if classes is None else tf.one_hot(y, classes, dtype=inputs.dtype)

        # The compiled loss builds itself on its first call: eagerly here, not inside the traced epoch.
        model.compute_loss(y=targets(labels[:1]), y_pred=model(inputs[:1], training=False), training=False)

        @tf.function
        def epoch_function(order):
            total_loss, correct = tf.constant(0.0), tf.constant(0, tf.int64)
            for start in tf.range(0, tf.shape(order)[0], batch_size):
                index = order[start : start + batch_size]
                x, y = tf.gather(inputs, index), tf.gather(labels, index)
                with tf.GradientTape() as tape:
                    probabilities = model(x, training=True)
                    loss = model.compute_loss(x=x, y=targets(y), y_pred=probabilities, training=True)
                optimizer.apply(tape.gradient(loss, variables), variables)
                total_loss += loss * tf.cast(tf.shape(index)[0], tf.float32)
                predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
                correct += tf.reduce_sum(tf.cast(predicted == y, tf.int64))
            return total_loss, correct

        self.epoch_function = epoch_function

    def train_epoch(self, order: np.ndarray) -> tuple[float, float]:
        total_loss, correct = self.epoch_function(tf.constant(np.asarray(order, dtype=np.int32)))
        return float(total_loss) / len(order), float(correct) / len(order)

    def sync_model(self) -> None:
        """Nothing to do: the loop updates the model's own variables."""
