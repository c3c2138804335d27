"""The framework loops (the fast path) over a compiled Keras model: the same math, state and reporting as `fit`."""

import subprocess
import sys

import numpy as np
import pytest

from multibackend.course import data
from multibackend.course.networks import DEFAULT_SEED, MNIST

from ..conftest import BACKEND, REPO, run_cli

pytestmark = [pytest.mark.backend, pytest.mark.slow]


@pytest.fixture(scope="module")
def mnist_arrays():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    return data.preprocess_images(x_train), y_train, data.preprocess_images(x_test), y_test


def test_one_update_matches_keras_weights_and_optimizer_state(mnist_arrays):
    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    x, y = mnist_arrays[0][:128], mnist_arrays[1][:128]
    with_fit = build_example(MNIST, DEFAULT_SEED)
    with_fit.train_on_batch(x, y)
    with_loop = build_example(MNIST, DEFAULT_SEED)
    fit_with_loop(with_loop, x, y, epochs=1, batch_size=128, seed=0, shuffle=False, verbose=0)
    difference = max(np.abs(a - b).max() for a, b in zip(with_fit.get_weights(), with_loop.get_weights()))
    assert difference <= 1e-6
    # The compiled optimizer's own state (iterations, learning rate, velocities) is what the loop trained with.
    fit_state = [np.asarray(v) for v in with_fit.optimizer.variables]
    loop_state = [np.asarray(v) for v in with_loop.optimizer.variables]
    assert len(fit_state) == len(loop_state) and int(with_loop.optimizer.iterations) == 1
    assert max(np.abs(a - b).max() for a, b in zip(fit_state, loop_state)) <= 1e-6


def test_a_callback_that_predicts_between_epochs_sees_the_trained_weights_and_training_goes_on(mnist_arrays):
    # Keras's jitted predict on JAX donates the variables' arrays: the JAX loop held them as its state and the next
    # epoch failed ("Buffer has been deleted or donated"), found by the search's per-epoch validation.
    import keras

    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    x, y = mnist_arrays[0][:1024], mnist_arrays[1][:1024]
    seen = []

    class PredictEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predicted = np.asarray(self.model.predict(x[:256], verbose=0)).argmax(axis=1)
            seen.append(float(np.mean(predicted == y[:256])))

    model = build_example(MNIST, DEFAULT_SEED)
    history = fit_with_loop(model, x, y, 3, 128, seed=0, callbacks=[PredictEachEpoch()], verbose=0)
    assert len(seen) == 3 and seen[-1] > seen[0] and len(history.history["loss"]) == 3


def test_saved_loop_model_reloads_with_its_optimizer_state_and_trains_on(mnist_arrays, tmp_path):
    import keras

    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    x, y = mnist_arrays[0][:1280], mnist_arrays[1][:1280]
    model = build_example(MNIST, DEFAULT_SEED)
    fit_with_loop(model, x, y, epochs=2, batch_size=128, seed=0, verbose=0)
    model.save(tmp_path / "loop.keras")
    reloaded = keras.saving.load_model(tmp_path / "loop.keras")
    assert int(reloaded.optimizer.iterations) == 20
    for saved, loaded in zip(model.optimizer.variables, reloaded.optimizer.variables):
        assert np.array_equal(np.asarray(saved), np.asarray(loaded))
    history = fit_with_loop(reloaded, x, y, epochs=1, batch_size=128, seed=1, verbose=0)
    assert int(reloaded.optimizer.iterations) == 30 and history.history["loss"][0] < 0.5


def test_another_compiled_optimizer_trains_through_keras(mnist_arrays):
    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    x, y = mnist_arrays[0][:128], mnist_arrays[1][:128]
    with_fit, with_loop = build_example(MNIST, DEFAULT_SEED), build_example(MNIST, DEFAULT_SEED)
    for model in (with_fit, with_loop):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with_fit.train_on_batch(x, y)
    fit_with_loop(with_loop, x, y, epochs=1, batch_size=128, seed=0, shuffle=False, verbose=0)
    assert type(with_loop.optimizer).__name__ == "Adam" and int(with_loop.optimizer.iterations) == 1
    assert max(np.abs(a - b).max() for a, b in zip(with_fit.get_weights(), with_loop.get_weights())) <= 1e-6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loss": "mse"}, "sparse_categorical_crossentropy (or categorical_crossentropy )?on integer labels"),
        ({"metrics": ["accuracy", "mae"]}, "reports loss and one of"),
        ({"loss_weights": [2.0]}, "loss_weights"),
    ],
)
def test_what_a_loop_cannot_train_is_refused(mnist_arrays, change, message):
    from multibackend.backends.base import LoopUnsupported
    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    model = build_example(MNIST, DEFAULT_SEED)
    model.compile(
        **{"optimizer": "rmsprop", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], **change}
    )
    with pytest.raises(LoopUnsupported, match=message):
        fit_with_loop(model, mnist_arrays[0][:128], mnist_arrays[1][:128], 1, 128, 0, verbose=0)


def loop_trains_layer_state() -> bool:
    from multibackend.backends import backend

    return bool(getattr(backend(BACKEND), "LOOP_TRAINS_LAYER_STATE", False))


def test_a_loop_that_does_not_carry_layer_state_refuses_one_hot_crossentropy_and_layers_with_state():
    # Every backend's loop carries it now; a new backend's loop may not (`Backend.LOOP_TRAINS_LAYER_STATE`).
    import keras

    from multibackend.backends.base import LoopUnsupported, check_trainable

    smoothed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    smoothed.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    with pytest.raises(LoopUnsupported, match="trains sparse_categorical_crossentropy on integer labels"):
        check_trainable(smoothed, layer_state=False)
    assert check_trainable(smoothed, layer_state=True) == "accuracy"
    normalized = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")]
    )
    normalized.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(LoopUnsupported, match="trains Dense, Dropout layers, not BatchNormalization"):
        check_trainable(normalized, layer_state=False)
    check_trainable(normalized, layer_state=True)


@pytest.mark.skipif(not loop_trains_layer_state(), reason="this backend's loop trains Dense and Dropout layers only")
@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD"])
def test_the_loop_trains_batch_normalization_shifts_and_label_smoothing_exactly_as_fit(mnist_arrays, optimizer):
    import keras

    from multibackend.course.networks import DenseNetworkSpec, initial_weights
    from multibackend.models import build_dense
    from multibackend.training.loops import fit_with_loop

    x, y = mnist_arrays[0][:960], mnist_arrays[1][:960]
    spec = DenseNetworkSpec(784, ((48, "tanh"), (24, "relu")), (10, "softmax"), 0.1)
    models = []
    for _ in range(2):
        keras.utils.set_random_seed(7)  # the seeds of the dropouts and the shifts
        model = build_dense(spec, weights=initial_weights(spec, 7), input_dropout=0.1, batch_norm=True, shift=0.1)
        model.compile(
            optimizer=getattr(keras.optimizers, optimizer)(keras.optimizers.schedules.CosineDecay(3e-3, 20)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
            metrics=["accuracy"],
        )
        models.append(model)
    with_fit, with_loop = models
    # Unseeded dropouts draw from the framework's global generator on torch: each training starts from one state.
    keras.utils.set_random_seed(11)
    fit_logs = with_fit.fit(x, keras.utils.to_categorical(y, 10), batch_size=96, epochs=2, shuffle=False, verbose=0)
    keras.utils.set_random_seed(11)
    loop_logs = fit_with_loop(with_loop, x, y, 2, 96, seed=0, shuffle=False, verbose=0)
    # The same steps: weights, the normalizations' moving statistics, the shifts' and dropouts' seeds, Adam's state.
    # Up to float32 rounding: a loop computes the same steps in another order (the torch loop takes the loss from
    # log_softmax where Keras clips softmax), and Adam divides by the root of its second moment, which magnifies a
    # rounding in a gradient near 0. On an AVX-512 CPU (Zen 5) one weight of 37,632 ended 3.1e-6 (torch) and
    # 1.2e-6 (TensorFlow) from fit's after 20 Adam steps (SGD: 6e-8); the torch loop with another smoothing, none,
    # or another seed ended 1.7e-4 (SGD) to 4.3e-2 (Adam) from fit's there.
    for fit_variable, loop_variable in zip(with_fit.variables, with_loop.variables):
        np.testing.assert_allclose(np.asarray(loop_variable), np.asarray(fit_variable), atol=1e-5)
    for fit_variable, loop_variable in zip(with_fit.optimizer.variables, with_loop.optimizer.variables):
        np.testing.assert_allclose(np.asarray(loop_variable), np.asarray(fit_variable), atol=1e-5)
    assert int(with_loop.optimizer.iterations) == 20
    assert loop_logs.history["loss"] == pytest.approx(fit_logs.history["loss"], rel=1e-5)
    assert loop_logs.history["accuracy"] == pytest.approx(fit_logs.history["accuracy"], abs=1e-6)
    moving_means = [v for v in with_loop.non_trainable_variables if "moving_mean" in v.path]
    assert len(moving_means) == 2 and all(np.abs(np.asarray(v)).max() > 0 for v in moving_means)


def test_uncompiled_models_and_other_layers_are_refused():
    import keras

    from multibackend.backends.base import LoopUnsupported, check_trainable

    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(LoopUnsupported, match="compile"):
        check_trainable(uncompiled)
    for model, message in [
        (
            keras.Sequential(
                [keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
            ),
            "not Flatten",
        ),
        (keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")]), "softmax"),
        (
            keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", kernel_regularizer="l2")]),
            "kernel_regularizer",
        ),
    ]:
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        with pytest.raises(LoopUnsupported, match=message):
            check_trainable(model)


def test_one_epoch_loss_accuracy_and_predictions_match_fit(mnist_arrays):
    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    x_train, y_train, x_test, _ = mnist_arrays
    with_fit = build_example(MNIST, DEFAULT_SEED)
    fit_logs = with_fit.fit(x_train, y_train, batch_size=128, epochs=1, shuffle=False, verbose=0).history
    with_loop = build_example(MNIST, DEFAULT_SEED)
    import keras

    epochs_seen = []
    watcher = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs_seen.append((epoch, dict(logs))))
    history = fit_with_loop(with_loop, x_train, y_train, 1, 128, 0, shuffle=False, callbacks=[watcher], verbose=0)
    loop_logs = history.history
    assert isinstance(history, keras.callbacks.History) and with_loop.history is history
    assert abs(fit_logs["loss"][0] - loop_logs["loss"][0]) / fit_logs["loss"][0] <= 1e-3
    assert abs(fit_logs["accuracy"][0] - loop_logs["accuracy"][0]) <= 2e-3
    assert epochs_seen == [(0, {"accuracy": loop_logs["accuracy"][0], "loss": loop_logs["loss"][0]})]
    agreement = np.mean(
        with_fit.predict(x_test, verbose=0).argmax(1) == np.asarray(with_loop.predict(x_test, verbose=0)).argmax(1)
    )
    assert agreement >= 0.99


def test_loop_run_passes_the_gates_and_records_its_epochs_in_its_own_file(tmp_path):
    import json

    result = run_cli(
        "run",
        "mnist",
        "--backend",
        BACKEND,
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--trainer",
        "loop",
        "--verbose",
        "2",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "PASS test_accuracy" in result.stdout and "trainer     loop (fast path" in result.stdout
    # Keras's own per-epoch lines (ProgbarLogger, verbose 2), one per epoch.
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("469/469 - ")]
    assert len(epoch_lines) == 2 and all("accuracy: 0.9" in line for line in epoch_lines)
    assert not (tmp_path / f"mnist-{BACKEND}-cpu.json").exists()  # never replaces the fit results
    payload = json.loads((tmp_path / f"mnist-{BACKEND}-cpu-loop.json").read_text())
    assert payload["trainer"] == "loop" and len(payload["epoch_seconds"]) == 2
    assert len(payload["history"]["loss"]) == len(payload["history"]["accuracy"]) == 2
    assert payload["history"]["loss"][1] < payload["history"]["loss"][0]


def test_loop_refuses_the_xor_example(tmp_path):
    result = run_cli("run", "xor", "--backend", BACKEND, "--trainer", "loop", "--out", str(tmp_path))
    assert result.returncode == 2 and "trains the mnist example only" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(BACKEND != "torch", reason="the profile script measures Keras fit on the torch backend")
def test_profile_script_splits_fit_and_loop_into_kernels_and_python():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "profile_fit_torch.py")], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("fit ") and "torch kernels" in lines[0] and "Python around them" in lines[0]
    assert any("optimizer apply" in line for line in lines) and lines[-1].startswith("loop ")


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch loop computes the loss from the logits itself")
def test_torch_loop_needs_a_softmax_output_and_matches_keras_losses_at_the_clipping_bounds():
    import keras
    import torch

    from multibackend.backends.base import LoopUnsupported
    from multibackend.backends.torch.loop import crossentropy_from_logits, logits_function

    sigmoid_output = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    sigmoid_output.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    with pytest.raises(LoopUnsupported, match="softmax"):
        logits_function(sigmoid_output)
    # Confident right, confident wrong and unsure rows: Keras clips probabilities to [1e-7, 1 - 1e-7].
    logits = torch.tensor([[30.0, 0.0, 0.0], [-30.0, 0.0, 0.0], [0.2, 0.1, -0.3]], requires_grad=True)
    labels = torch.tensor([0, 0, 2])
    ours = crossentropy_from_logits(logits, labels)
    keras_loss = keras.losses.SparseCategoricalCrossentropy()(labels, torch.softmax(logits, dim=1))
    assert ours.item() == pytest.approx(keras_loss.item(), rel=1e-6)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    (keras_grad,) = torch.autograd.grad(keras_loss, logits)
    assert torch.allclose(ours_grad, keras_grad, atol=1e-6)
    assert float(ours_grad[1].abs().max()) == 0.0  # clipped: a confident wrong row gives no gradient, as in Keras
    smoothed = crossentropy_from_logits(logits, labels, smoothing=0.2)
    one_hot = torch.nn.functional.one_hot(labels, 3).float()
    keras_smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(one_hot, torch.softmax(logits, dim=1))
    assert smoothed.item() == pytest.approx(keras_smoothed.item(), rel=1e-6)
    (smoothed_grad,) = torch.autograd.grad(smoothed, logits)
    (keras_smoothed_grad,) = torch.autograd.grad(keras_smoothed, logits)
    assert torch.allclose(smoothed_grad, keras_smoothed_grad, atol=1e-6)


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch loop's own optimizer steps")
def test_torch_loop_steps_plain_optimizers_itself_and_hands_any_other_setting_to_apply():
    import keras

    from multibackend.backends.torch.optimizers import optimizer_step

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    for optimizer, step in [
        (keras.optimizers.Adam(), "AdamStep"),
        (keras.optimizers.AdamW(weight_decay=1e-3), "AdamStep"),
        (keras.optimizers.SGD(0.1), "SGDStep"),
        (keras.optimizers.RMSprop(), "RMSpropStep"),
        (keras.optimizers.Adam(clipnorm=1.0), "ApplyStep"),
        (keras.optimizers.Adam(amsgrad=True), "ApplyStep"),
        (keras.optimizers.SGD(0.1, momentum=0.9), "ApplyStep"),
        (keras.optimizers.RMSprop(centered=True), "ApplyStep"),
    ]:
        optimizer.build(model.trainable_variables)
        assert type(optimizer_step(optimizer, model.trainable_variables)).__name__ == step, optimizer.get_config()


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch loop's own optimizer steps")
def test_torch_loop_takes_a_cosine_decays_rates_once_an_epoch_as_keras_computes_them_each_step():
    import keras
    import torch

    from multibackend.backends.torch.optimizers import StepRates

    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=1_000, alpha=0.1)
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build([keras.Variable(np.zeros(3, "float32"))])
    optimizer.iterations.assign(250)
    rates = StepRates(optimizer)
    rates.start_epoch(800)  # past the decay's end too, where Keras holds the last rate
    taken = []
    for _ in range(801):  # one step more than announced: the rate Keras computes for it
        taken.append(float(rates()))
        optimizer.iterations.assign_add(1)
    expected = [float(schedule(torch.tensor(step))) for step in range(250, 1_051)]
    # Equal here to the last bit; a CPU whose vector cosine rounds otherwise than its scalar one may differ by a
    # float32 rounding (1.2e-7), while a step off moves a rate by 1e-3 of itself or more before the plateau.
    np.testing.assert_allclose(taken, expected, rtol=2e-7, atol=0)
    assert StepRates(keras.optimizers.Adam(0.01)).schedule is None  # a constant rate is read each step
