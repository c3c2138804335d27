# %% [markdown]
# # Review: how are weight values updated by backpropagation? (XOR)
#
# The course's XOR network: `Dense(2, tanh) -> Dense(1, tanh)`, mean squared
# error, plain SGD with learning rate 0.1, one sample per update.

# %%
import numpy as np
from keras import optimizers
from keras.layers import Dense, Input
from keras.losses import MeanSquaredError
from keras.models import Sequential

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
y = np.array([[0], [1], [1], [0]])

model = Sequential([
    Input(shape=(2,)),
    Dense(2, activation="tanh"),
    Dense(1, activation="tanh"),
])  # fmt: skip
model.compile(
    loss="mean_squared_error",
    optimizer=optimizers.SGD(learning_rate=0.1),  # stochastic
    metrics=["binary_accuracy"],
)
print("parameters:", model.count_params())  # (2+1)*2 + (2+1)*1 = 9

# %% [markdown]
# `batch_size` is the number of samples per gradient update; an epoch is one
# pass over the four rows of X.

# %%
batch_size, epochs = 1, 200
updates = len(X) // batch_size * epochs
print(f"gradient updates: {len(X)}/{batch_size} * {epochs} = {updates}")
assert updates == 800

# %% [markdown]
# The weights start random, and each backend draws other random numbers: the
# stored outputs of this cell and the next are not compared (`NBVAL_IGNORE_OUTPUT`).

# %%
# NBVAL_IGNORE_OUTPUT
before = [w.copy() for w in model.get_weights()]
print("weights before training:", *before, sep="\n")
model.fit(X, y, batch_size=batch_size, epochs=epochs, verbose=0)
after = model.get_weights()
print("weights after training:", *after, sep="\n")
assert any(not np.allclose(b, a) for b, a in zip(before, after))

# %%
# NBVAL_IGNORE_OUTPUT
loss, accuracy = model.evaluate(X, y, verbose=0)
print("predictions:", model.predict(X, verbose=0).ravel().round(3))
print(f"loss {loss:.4f}, binary accuracy {accuracy:.2f}")
print("(this net does not always solve XOR: from some random starts it never gets every row right)")

# %% [markdown]
# Exercise: what is the squared error when (0, 1) is presented and the output is 0.4?

# %%
squared_error = float(MeanSquaredError()(np.array([[1.0]]), np.array([[0.4]])))
print(f"(0.4 - 1.0)^2 = {squared_error:.2f}")
assert abs(squared_error - 0.36) < 1e-6
