"""A TensorFlow training loop for a Keras model on the tensorflow backend: one `tf.function` per epoch."""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf


def fit_with_loop(model, x_train, y_train, epochs, batch_size, seed, on_epoch_end=None, shuffle=True) -> dict:
    """Trains with `GradientTape` in a compiled epoch; see `multibackend.keras_loops.fit_with_loop`."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("the TensorFlow loop needs the tensorflow backend")
    optimizer = keras.optimizers.RMSprop()
    variables = model.trainable_variables
    optimizer.build(variables)
    loss_function = keras.losses.get("sparse_categorical_crossentropy")
    inputs, labels = tf.constant(x_train), tf.constant(y_train.astype(np.int32))

    @tf.function
    def epoch_function(order):
        total_loss, correct = tf.constant(0.0), tf.constant(0, tf.int64)
        for start in tf.range(0, tf.shape(order)[0], batch_size):
            index = order[start : start + batch_size]
            x, y = tf.gather(inputs, index), tf.gather(labels, index)
            with tf.GradientTape() as tape:
                probabilities = model(x, training=True)
                loss = tf.reduce_mean(loss_function(y, probabilities))
            optimizer.apply(tape.gradient(loss, variables), variables)
            total_loss += loss * tf.cast(tf.shape(index)[0], tf.float32)
            predicted = tf.argmax(probabilities, axis=1, output_type=tf.int32)
            correct += tf.reduce_sum(tf.cast(predicted == y, tf.int64))
        return total_loss, correct

    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(len(x_train)) if shuffle else np.arange(len(x_train))
        total_loss, correct = epoch_function(tf.constant(order.astype(np.int32)))
        history["loss"].append(float(total_loss) / len(x_train))
        history["accuracy"].append(float(correct) / len(x_train))
        if on_epoch_end is not None:
            on_epoch_end(epoch, time.perf_counter() - started, {name: values[-1] for name, values in history.items()})
    return history
