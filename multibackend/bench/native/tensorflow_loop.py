"""The course's MNIST network trained in plain TensorFlow (`GradientTape` in one `tf.function` per epoch)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from multibackend.bench.native import EPSILON, LEARNING_RATE, RHO


class NativeTrainer:
    """A compiled TensorFlow epoch; see `multibackend.bench.native.NativeTrainer`."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, weights: list[np.ndarray], batch_size: int):
        params = [tf.Variable(w) for w in weights]
        velocities = [tf.Variable(tf.zeros_like(w)) for w in weights]
        inputs, labels = tf.constant(x_train), tf.constant(y_train.astype(np.int32))

        def forward(x):
            hidden = tf.nn.relu(tf.matmul(x, params[0]) + params[1])
            return tf.matmul(hidden, params[2]) + params[3]

        def update(index):
            x, y = tf.gather(inputs, index), tf.gather(labels, index)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=forward(x)))
            grads = tape.gradient(loss, params)
            for p, g, v in zip(params, grads, velocities):
                v.assign(RHO * v + (1 - RHO) * g * g)
                p.assign_sub(LEARNING_RATE * g / tf.sqrt(v + EPSILON))
            return loss * tf.cast(tf.shape(index)[0], tf.float32)

        @tf.function
        def epoch(order):
            # autograph turns this loop into one graph loop: Python dispatches once per epoch.
            total = tf.constant(0.0)
            for start in tf.range(0, tf.shape(order)[0], batch_size):
                total += update(order[start : start + batch_size])
            return total

        self.forward, self.epoch = forward, epoch

    def train_epoch(self, order: np.ndarray) -> float:
        return float(self.epoch(tf.constant(np.asarray(order, dtype=np.int32)))) / len(order)

    def predict_classes(self, x: np.ndarray) -> np.ndarray:
        return tf.argmax(self.forward(tf.constant(x)), axis=1).numpy()
