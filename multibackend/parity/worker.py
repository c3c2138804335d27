"""One backend's side of the parity checks, run as a job in that backend's own process (`runtime.jobs`).

`compute` computes, from the shared NumPy initial weights, everything that
`parity.checks` compares, and writes it to `<work>/<backend>-<device>.npz`;
`load_others` loads the `.keras` files saved by the other backends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multibackend.course import data
from multibackend.course.networks import DEFAULT_SEED, MNIST, XOR, Example, initial_weights
from multibackend.runtime import devices

# For the tests of the parity checks themselves: "<backend>:<delta>" adds
# <delta> to one initial weight in that backend's worker, a planted difference.
PERTURB_ENV = "MULTIBACKEND_PARITY_PERTURB"


@dataclass(frozen=True)
class ParityWork:
    """One participant's share of the parity checks.

    Attributes:
        backend: The backend this job runs under.
        device: `cpu` or `gpu`.
        work: The folder where the participants exchange their `.npz` and `.keras` files.
        seeds: XOR trainings compared, one per seed.
        mnist_epochs: Epochs of the compared MNIST training.
        train_samples: The first this many MNIST training images are trained on (None: all 60,000).
        others: The other participants' tags (for `load_others`).
    """

    backend: str
    device: str
    work: str
    seeds: int = 10
    mnist_epochs: int = 1
    train_samples: int | None = None
    others: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return f"{self.backend}-{self.device}"


def _full_precision(work: ParityWork) -> None:
    if work.device == "gpu":
        devices.set_tf32(work.backend, False)  # comparisons need full float32 matmuls


def _start_weights(example: Example, seed: int, backend: str) -> list[np.ndarray]:
    weights = initial_weights(example.network, seed)
    planted = os.environ.get(PERTURB_ENV, "")
    if planted.partition(":")[0] == backend:
        weights[0][0, 0] += float(planted.partition(":")[2] or 1e-3)
    return weights


def _model(example: Example, seed: int, backend: str):
    from multibackend.models import build_dense, compile_example

    model = build_dense(example.network, weights=_start_weights(example, seed, backend), name=example.name)
    return compile_example(model, example)


def _flat(weights) -> np.ndarray:
    return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in weights])


def course_exercises() -> dict[str, bool]:
    """The course's small exercises, computed through Keras on the active backend."""
    import keras
    from keras import ops

    results = {}
    squared_error = float(keras.losses.MeanSquaredError()(np.array([[1.0]]), np.array([[0.4]])))
    results["squared_error_is_0.36"] = abs(squared_error - 0.36) < 1e-6
    labels = np.array([5, 0, 4, 1, 9])
    predictions = np.random.default_rng(0).dirichlet(np.ones(10), size=5).astype("float32")
    one_hot = keras.utils.to_categorical(labels, num_classes=10)
    categorical = float(keras.losses.CategoricalCrossentropy()(one_hot, predictions))
    sparse = float(keras.losses.SparseCategoricalCrossentropy()(labels, predictions))
    results["categorical_equals_sparse_crossentropy"] = abs(categorical - sparse) < 1e-6
    slash = [[0, 0, 9], [0, 5, 0], [9, 0, 0]]
    gray = np.array([slash, [[0, 0, 8], [0, 8, 0], [8, 0, 0]], np.eye(3) * 9, np.eye(3) * 8])[..., None]
    gray_tensor = ops.convert_to_tensor(gray)
    results["gray_images_shape_4_3_3_1"] = tuple(ops.shape(gray_tensor)) == (4, 3, 3, 1)
    samples = np.array(
        [[[0, 0], [0, 0], [0, 0]], [[1, 2], [3, 4], [5, 6]], [[7, 7], [8, 8], [9, 9]], [[4, 0], [0, 1], [0, 0]]]
    )
    flat = ops.convert_to_numpy(ops.reshape(ops.convert_to_tensor(samples), (4, 3 * 2)))
    expected = [[0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6], [7, 7, 8, 8, 9, 9], [4, 0, 0, 1, 0, 0]]
    results["reshape_4_3_2_to_4_6"] = flat.shape == (4, 6) and flat.tolist() == expected
    return results


def compute(job: ParityWork) -> str:
    """Computes every compared quantity and saves the trained MNIST model; returns the `.npz` file's path."""
    import keras

    _full_precision(job)
    backend, work, tag, seeds, mnist_epochs = job.backend, Path(job.work), job.tag, job.seeds, job.mnist_epochs

    x_xor, y_xor = data.xor_data()
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train, y_train = x_train[: job.train_samples], y_train[: job.train_samples]
    x_train, x_test = data.preprocess_images(x_train), data.preprocess_images(x_test)
    out: dict[str, np.ndarray] = {}

    xor_model = _model(XOR, DEFAULT_SEED, backend)
    mnist_model = _model(MNIST, DEFAULT_SEED, backend)
    out["forward_xor"] = np.asarray(xor_model.predict(x_xor, verbose=0))
    out["forward_mnist"] = np.asarray(mnist_model.predict(x_test, verbose=0, batch_size=1000))

    xor_model.train_on_batch(x_xor, y_xor)
    out["one_update_xor"] = _flat(xor_model.get_weights())
    mnist_model.train_on_batch(x_train[:128], y_train[:128])
    out["one_update_mnist"] = _flat(mnist_model.get_weights())

    trajectories, accuracies = [], []
    for seed in range(seeds):
        model = _model(XOR, seed, backend)
        model.fit(x_xor, y_xor, batch_size=1, epochs=XOR.epochs, shuffle=False, verbose=0)
        trajectories.append(_flat(model.get_weights()))
        accuracies.append(model.evaluate(x_xor, y_xor, verbose=0, return_dict=True)["binary_accuracy"])
    out["xor_trajectory_weights"] = np.stack(trajectories)
    out["xor_trajectory_accuracy"] = np.array(accuracies)

    model = _model(MNIST, DEFAULT_SEED, backend)
    history = model.fit(x_train, y_train, batch_size=128, epochs=mnist_epochs, shuffle=False, verbose=0)
    out["mnist_epoch_loss"] = np.array(history.history["loss"])
    predictions = np.asarray(model.predict(x_test, verbose=0, batch_size=1000))
    out["mnist_test_argmax"] = predictions.argmax(axis=1)
    out["saved_predictions"] = predictions
    out["saved_accuracy"] = np.array(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
    model.save(work / f"{tag}.keras")
    out.update(loop_outputs(backend, x_train, y_train, x_test, mnist_epochs))

    exercises = course_exercises()
    out["exercise_names"] = np.array(list(exercises))
    out["exercise_passed"] = np.array(list(exercises.values()))
    out["keras_version"] = np.array(keras.__version__)
    np.savez(work / f"{tag}.npz", **out)
    return str(work / f"{tag}.npz")


def loop_outputs(backend: str, x_train, y_train, x_test, mnist_epochs: int) -> dict[str, np.ndarray]:
    """What the framework loop (the fast path) computes from the same weights and sample order as `fit` above."""
    from multibackend.training.loops import fit_with_loop

    model = _model(MNIST, DEFAULT_SEED, backend)
    fit_with_loop(model, x_train[:128], y_train[:128], 1, 128, seed=0, shuffle=False, verbose=0)
    out = {"loop_one_update_mnist": _flat(model.get_weights())}
    model = _model(MNIST, DEFAULT_SEED, backend)
    history = fit_with_loop(model, x_train, y_train, mnist_epochs, 128, seed=0, shuffle=False, verbose=0)
    out["loop_mnist_epoch_loss"] = np.array(history.history["loss"])
    out["loop_mnist_test_argmax"] = np.asarray(model.predict(x_test, verbose=0, batch_size=1000)).argmax(axis=1)
    return out


def load_others(job: ParityWork) -> str:
    """Loads each other participant's `.keras` file and records its predictions here; returns the `.npz` path."""
    import keras

    _full_precision(job)
    work, tag, others = Path(job.work), job.tag, job.others

    (_, _), (x_test, y_test) = data.load_mnist()
    x_test = data.preprocess_images(x_test)
    out = {}
    for other in others:
        model = keras.saving.load_model(work / f"{other}.keras")
        out[f"{other}/predictions"] = np.asarray(model.predict(x_test, verbose=0, batch_size=1000))
        out[f"{other}/accuracy"] = np.array(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
    np.savez(work / f"{tag}-loaded.npz", **out)
    return str(work / f"{tag}-loaded.npz")
