"""Reference training loops written directly in each framework, for the course's MNIST network.

Each loop trains `784 -> Dense(512, relu) -> Dense(10, softmax)` with RMSprop
as Keras computes it (`w -= lr * g / sqrt(v + eps)`, learning rate 1e-3,
rho 0.9, epsilon 1e-7), sparse
categorical crossentropy and batch 128, from the same NumPy initial weights as
the Keras model. They are the baseline of `multibackend bench` and double as
course material: this is how backpropagation updates the weights, step by step.

Every loop has the signature of `train`:

    train(x_train, y_train, x_test, y_test, weights, epochs, batch_size, seed)
        -> {"epoch_seconds": [...], "test_accuracy": float, "loss": [...]}
"""

LEARNING_RATE = 1e-3
RHO = 0.9
EPSILON = 1e-7

FRAMEWORK_MODULES = {
    "torch": "multibackend.native.torch_loop",
    "jax": "multibackend.native.jax_loop",
    "tensorflow": "multibackend.native.tensorflow_loop",
}
