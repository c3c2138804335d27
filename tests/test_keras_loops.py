"""The framework loops over a Keras model: the same math as Keras `fit` on the same model, and the same gates."""

import subprocess
import sys

import numpy as np
import pytest

from multibackend import data
from multibackend.networks import DEFAULT_SEED, MNIST

from .conftest import BACKEND, REPO, run_cli


@pytest.fixture(scope="module")
def mnist_arrays():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    return data.preprocess_images(x_train), y_train, data.preprocess_images(x_test), y_test


def test_one_update_matches_keras_within_the_parity_tolerance(mnist_arrays):
    from multibackend.keras_loops import fit_with_loop
    from multibackend.models import build_example

    x, y = mnist_arrays[0][:128], mnist_arrays[1][:128]
    with_fit = build_example(MNIST, DEFAULT_SEED)
    with_fit.train_on_batch(x, y)
    with_loop = build_example(MNIST, DEFAULT_SEED)
    fit_with_loop(with_loop, x, y, epochs=1, batch_size=128, seed=0, shuffle=False)
    difference = max(np.abs(a - b).max() for a, b in zip(with_fit.get_weights(), with_loop.get_weights()))
    assert difference <= 1e-6


def test_one_epoch_loss_accuracy_and_predictions_match_fit(mnist_arrays):
    from multibackend.keras_loops import fit_with_loop
    from multibackend.models import build_example

    x_train, y_train, x_test, _ = mnist_arrays
    with_fit = build_example(MNIST, DEFAULT_SEED)
    fit_logs = with_fit.fit(x_train, y_train, batch_size=128, epochs=1, shuffle=False, verbose=0).history
    with_loop = build_example(MNIST, DEFAULT_SEED)
    epochs_seen = []
    loop_logs = fit_with_loop(with_loop, x_train, y_train, 1, 128, 0, shuffle=False,
                              on_epoch_end=lambda epoch, seconds, logs: epochs_seen.append((epoch, logs)))  # fmt: skip
    assert abs(fit_logs["loss"][0] - loop_logs["loss"][0]) / fit_logs["loss"][0] <= 1e-3
    assert abs(fit_logs["accuracy"][0] - loop_logs["accuracy"][0]) <= 2e-3
    assert epochs_seen == [(0, {"loss": loop_logs["loss"][0], "accuracy": loop_logs["accuracy"][0]})]
    agreement = np.mean(
        with_fit.predict(x_test, verbose=0).argmax(1) == np.asarray(with_loop.predict(x_test, verbose=0)).argmax(1)
    )
    assert agreement >= 0.99


def test_default_mnist_run_uses_the_loop_and_passes_the_gates(tmp_path):
    result = run_cli("run", "mnist", "--backend", BACKEND, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "PASS test_accuracy" in result.stdout and "trainer     loop" in result.stdout
    assert "Epoch 1/1 - " in result.stdout and "accuracy: 0.9" in result.stdout


def test_loop_refuses_the_xor_example(tmp_path):
    result = run_cli("run", "xor", "--backend", BACKEND, "--trainer", "loop", "--out", str(tmp_path))
    assert result.returncode == 2 and "trains the mnist example only" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(BACKEND != "torch", reason="the profile script measures Keras fit on the torch backend")
def test_profile_script_splits_fit_and_loop_into_kernels_and_python():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_fit_torch.py")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fit ") and "torch kernels" in lines[0] and "Python around them" in lines[0]
    assert any("optimizer apply" in line for line in lines) and lines[-1].startswith("loop ")


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch loop computes the loss from the logits itself")
def test_torch_loop_needs_a_softmax_output_and_matches_keras_loss_at_the_clipping_bounds():
    import keras
    import torch

    from multibackend.keras_loops.torch_loop import logits_function, sparse_crossentropy_from_logits

    sigmoid_output = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    with pytest.raises(ValueError, match="softmax"):
        logits_function(sigmoid_output)
    # Confident right, confident wrong and unsure rows: Keras clips probabilities to [1e-7, 1 - 1e-7].
    logits = torch.tensor([[30.0, 0.0, 0.0], [-30.0, 0.0, 0.0], [0.2, 0.1, -0.3]], requires_grad=True)
    labels = torch.tensor([0, 0, 2])
    ours = sparse_crossentropy_from_logits(logits, labels)
    keras_loss = keras.losses.SparseCategoricalCrossentropy()(labels, torch.softmax(logits, dim=1))
    assert ours.item() == pytest.approx(keras_loss.item(), rel=1e-6)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    (keras_grad,) = torch.autograd.grad(keras_loss, logits)
    assert torch.allclose(ours_grad, keras_grad, atol=1e-6)
    assert float(ours_grad[1].abs().max()) == 0.0  # clipped: a confident wrong row gives no gradient, as in Keras
