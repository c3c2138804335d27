"""The torch-loop trainer: the same math as Keras `fit` on the same model, and the same gates."""

import numpy as np
import pytest

from multibackend import data
from multibackend.networks import DEFAULT_SEED, MNIST

from .conftest import BACKEND, run_cli

pytestmark = pytest.mark.skipif(BACKEND != "torch", reason="the torch-loop trainer needs the torch backend")


@pytest.fixture(scope="module")
def mnist_arrays():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    return data.preprocess_images(x_train), y_train, data.preprocess_images(x_test), y_test


def test_one_update_matches_keras_within_the_parity_tolerance(mnist_arrays):
    from multibackend.models import build_example
    from multibackend.torch_trainer import fit_with_torch_loop

    x, y = mnist_arrays[0][:128], mnist_arrays[1][:128]
    with_fit = build_example(MNIST, DEFAULT_SEED)
    with_fit.train_on_batch(x, y)
    with_loop = build_example(MNIST, DEFAULT_SEED)
    fit_with_torch_loop(with_loop, x, y, epochs=1, batch_size=128, seed=0, shuffle=False)
    difference = max(np.abs(a - b).max() for a, b in zip(with_fit.get_weights(), with_loop.get_weights()))
    assert difference <= 1e-6


def test_one_epoch_loss_and_predictions_match_fit(mnist_arrays):
    from multibackend.models import build_example
    from multibackend.torch_trainer import fit_with_torch_loop

    x_train, y_train, x_test, _ = mnist_arrays
    with_fit = build_example(MNIST, DEFAULT_SEED)
    fit_loss = with_fit.fit(x_train, y_train, batch_size=128, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    with_loop = build_example(MNIST, DEFAULT_SEED)
    loop_loss = fit_with_torch_loop(with_loop, x_train, y_train, 1, 128, 0, shuffle=False)["loss"][0]
    assert abs(fit_loss - loop_loss) / fit_loss <= 1e-3
    agreement = np.mean(
        with_fit.predict(x_test, verbose=0).argmax(1) == np.asarray(with_loop.predict(x_test, verbose=0)).argmax(1)
    )
    assert agreement >= 0.99


def test_runner_with_torch_loop_passes_the_gates(tmp_path):
    result = run_cli(
        "run", "mnist", "--trainer", "torch-loop", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "PASS test_accuracy" in result.stdout


def test_torch_loop_refuses_other_examples(tmp_path):
    result = run_cli("run", "xor", "--trainer", "torch-loop", "--out", str(tmp_path))
    assert result.returncode == 2 and "mnist example on the torch backend only" in result.stderr
