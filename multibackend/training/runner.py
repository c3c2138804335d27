"""`multibackend run`: train one course example on one backend, gate it, record it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from multibackend.course import data
from multibackend.course.gates import describe_gate, example_gates
from multibackend.course.networks import DEFAULT_SEED, EXAMPLES, XOR, Example
from multibackend.results import SCHEMA_VERSION, RunResult, results_path, write_json_atomic
from multibackend.runtime import backend as backend_choice
from multibackend.runtime import devices
from multibackend.runtime.errors import CheckFailed, UsageError
from multibackend.runtime.memory import peak_rss_bytes
from multibackend.runtime.outputs import check_output_files

DEFAULT_XOR_SEEDS = 10
# fit (the default): Keras's own `fit`, as the course trains. loop: a labelled
# fast path, the backend's own framework looping over the same compiled Keras
# model (multibackend.training.loops), MNIST only.
TRAINERS = ("fit", "loop")
DEFAULT_TRAINER = "fit"
TRAINER_NAMES = {
    "fit": "fit (Keras's own training loop, as the course writes it)",
    "loop": "loop (fast path: {backend}'s own loop over the compiled Keras model, not Keras fit)",
}
# As in Keras: 0 silent, 1 progress bar, 2 one line per epoch, "auto" = 1.
VERBOSITIES = (0, 1, 2, "auto")


@dataclass
class RunConfig:
    """Everything `multibackend run` accepts; None means the course's default."""

    example: str
    backend: str = backend_choice.DEFAULT_BACKEND
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    seed: int = DEFAULT_SEED
    seeds: int | None = None
    data_dir: str | None = None
    out_dir: str = "results"
    verbose: int | str = "auto"
    tf32: bool = False
    trainer: str = DEFAULT_TRAINER


def prepare(config: RunConfig) -> tuple[Example, str, tuple | None]:
    """Validates the input, reads local data, fixes backend and device; all before Keras is imported.

    Returns:
        The example, the resolved device (`cpu` or `gpu`), and the data arrays
        when they were found locally (None: they must be downloaded by Keras).
    """
    if config.example not in EXAMPLES:
        raise UsageError(f"unknown example {config.example!r} (choose from {', '.join(EXAMPLES)})")
    for name in ("epochs", "batch_size", "seeds"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    backend_choice.check_backend(config.backend)
    if config.trainer not in TRAINERS:
        raise UsageError(f"unknown trainer {config.trainer!r} (choose from {', '.join(TRAINERS)})")
    if config.trainer == "loop" and config.example != "mnist":
        raise UsageError("--trainer loop trains the mnist example only (xor trains with fit)")
    if config.verbose not in VERBOSITIES:
        raise UsageError(f"--verbose must be one of 0, 1, 2, auto, got {config.verbose!r}")
    example = EXAMPLES[config.example]
    # Bad or missing data files are reported before any framework is imported.
    arrays = _load_arrays(example, config.data_dir, allow_download=False)
    device = devices.resolve_device(config.backend, config.device)
    backend_choice.select_backend(config.backend, device)
    backend_choice.import_keras()
    return example, device, arrays


def _load_arrays(example: Example, data_dir: str | None, allow_download: bool = True):
    if example.name == "xor":
        x, y = data.xor_data()
        return (x, y), (x, y), "xor truth table"
    source = data.find_mnist(data_dir)
    if source is None and not allow_download:
        return None
    (x_train, y_train), (x_test, y_test) = data.load_source(source) if source else data.load_mnist(data_dir)
    described = f"{source.kind}:{source.path}" if source else "keras download"
    return (
        (data.preprocess_images(x_train), y_train),
        (data.preprocess_images(x_test), y_test),
        described,
    )


def _make_epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall-clock seconds of each training epoch."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def xor_solve_rate(seeds: int, epochs: int, batch_size: int) -> dict:
    """Trains XOR from `seeds` different NumPy starts and counts how many solve it.

    Args:
        seeds: Number of starts (seeds 0 .. seeds-1).
        epochs: Epochs per start.
        batch_size: Batch size per start.

    Returns:
        `{"seeds", "binary_accuracy", "solved", "rate"}`.
    """
    import keras

    from multibackend.models import build_example

    x, y = data.xor_data()
    accuracies = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        model = build_example(XOR, seed)
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
        accuracies.append(float(model.evaluate(x, y, verbose=0, return_dict=True)["binary_accuracy"]))
    solved = [accuracy == 1.0 for accuracy in accuracies]
    return {
        "seeds": list(range(seeds)),
        "binary_accuracy": accuracies,
        "solved": solved,
        "rate": sum(solved) / seeds,
    }


def _misclassified(model, x_test: np.ndarray, y_test: np.ndarray, batch_size: int) -> list[list[int]]:
    # Large predict batches cost memory (about 60 MiB more peak on torch with 1024) for no real gain in time.
    predicted = np.argmax(np.asarray(model.predict(x_test, verbose=0, batch_size=batch_size)), axis=1)
    wrong = np.flatnonzero(predicted != y_test)
    return [[int(index), int(predicted[index]), int(y_test[index])] for index in wrong]


@dataclass(frozen=True)
class _Trained:
    """What training and evaluating one model gave, for its results."""

    model: Any
    history: dict
    test: dict[str, float]
    epoch_seconds: list[float]
    train_seconds: float
    train_samples: int
    epochs: int
    batch_size: int
    weight_device: str
    test_arrays: tuple
    source: str


def run(config: RunConfig) -> RunResult:
    """Trains, evaluates and gates one example; writes and returns its results.

    Args:
        config: The run's settings (see `RunConfig`).

    Returns:
        The results written to `OUT/<example>-<backend>-<device>.json` (its path in `path`).
    """
    example, device, arrays = prepare(config)
    # A folder or FIFO where the results go, or an over-long name, is refused before minutes of training.
    path = results_path(config.out_dir, example.name, config.backend, device, config.trainer)
    check_output_files([path])
    # Training takes the arrays out of this list: then only it holds the training split, and drops it after `fit`.
    loaded = [arrays or _load_arrays(example, config.data_dir)]
    del arrays
    trained = _train_and_evaluate(example, config, device, loaded)
    x_test, y_test = trained.test_arrays
    extras: dict = {}
    if example.name == "xor":
        seeds = DEFAULT_XOR_SEEDS if config.seeds is None else config.seeds
        extras["final_weights"] = [w.tolist() for w in trained.model.get_weights()]
        extras["solve_rate"] = xor_solve_rate(seeds, trained.epochs, trained.batch_size)
    else:
        extras["misclassified"] = _misclassified(trained.model, x_test, y_test, trained.batch_size)
    result = _result(config, example, device, trained, extras)
    return dataclasses.replace(result, path=str(write_json_atomic(path, result.to_json())))


def _train_and_evaluate(example: Example, config: RunConfig, device: str, loaded: list) -> _Trained:
    """Builds the example's model, trains it (`fit`, or the labelled loop) and evaluates it on the test split.

    `loaded` holds the data (`_load_arrays`); it is taken out, so that the training split can go after training
    (MNIST: 180 MiB that evaluation and prediction do not need).
    """
    import keras

    from multibackend.models import build_example

    (x_train, y_train), test, source = loaded.pop()
    epochs = config.epochs or example.epochs
    batch_size = config.batch_size or example.batch_size
    if device == "gpu":
        devices.set_tf32(config.backend, config.tf32)
    keras.utils.set_random_seed(config.seed)
    model = build_example(example, config.seed)
    timer = _make_epoch_timer()
    started = time.perf_counter()
    if config.trainer == "loop":
        from multibackend.training.loops import fit_with_loop

        history = fit_with_loop(
            model, x_train, y_train, epochs, batch_size, config.seed, callbacks=[timer], verbose=config.verbose
        ).history
    else:
        history = model.fit(
            x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=config.verbose, callbacks=[timer]
        ).history
    train_seconds = time.perf_counter() - started
    train_samples = len(x_train)
    del x_train
    scores = model.evaluate(*test, verbose=0, return_dict=True)
    weight_device = devices.variable_device(model.weights[0])
    if devices.device_kind(weight_device) != device:
        raise CheckFailed(f"asked for {device} but the trained weights live on {weight_device}")
    return _Trained(
        model,
        {name: [float(v) for v in values] for name, values in history.items()},
        {name: float(value) for name, value in scores.items()},
        timer.seconds,
        train_seconds,
        train_samples,
        epochs,
        batch_size,
        weight_device,
        test,
        source,
    )


def _result(config: RunConfig, example: Example, device: str, trained: _Trained, extras: dict) -> RunResult:
    """The `RunResult` of a trained example: what ran, how long it took, its gates."""
    import keras

    params = int(trained.model.count_params())
    steps_per_epoch = -(-trained.train_samples // trained.batch_size)
    median_epoch = statistics.median(trained.epoch_seconds)
    gates = example_gates(
        example.name, params, example.network.expected_params, trained.epochs, trained.test[example.metric]
    )
    return RunResult(
        schema_version=SCHEMA_VERSION,
        example=example.name,
        backend=config.backend,
        backend_version=_framework_version(config.backend),
        keras_version=keras.__version__,
        python_version=platform.python_version(),
        device=device,
        device_name=_device_name(config.backend, device),
        weight_device=trained.weight_device,
        tf32=devices.tf32_enabled(config.backend) if device == "gpu" else False,
        host=platform.node(),
        data_source=trained.source,
        params=params,
        expected_params=example.network.expected_params,
        epochs=trained.epochs,
        batch_size=trained.batch_size,
        seed=config.seed,
        steps_per_epoch=steps_per_epoch,
        trainer=config.trainer,
        history=trained.history,
        metric=example.metric,
        test=trained.test,
        epoch_seconds=trained.epoch_seconds,
        median_epoch_seconds=median_epoch,
        first_epoch_seconds=trained.epoch_seconds[0],
        train_seconds=trained.train_seconds,
        steps_per_second=steps_per_epoch / median_epoch,
        peak_rss_bytes=peak_rss_bytes(),
        gates=[gate.to_dict() for gate in gates],
        passed=all(gate.passed for gate in gates),
        command=" ".join(["multibackend", *sys.argv[1:]]),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extras,
    )


def _framework_version(backend: str) -> str:
    module = __import__(backend)
    return str(module.__version__)


def _device_name(backend: str, device: str) -> str:
    if device == "gpu":
        details = devices.gpu_details(backend)
        memory = details.get("memory_bytes")
        return f"{details['name']} ({memory / 2**30:.0f} GiB)" if memory else str(details["name"])
    return devices.cpu_name()


def summary(result: RunResult) -> str:
    """A short human-readable account of one run's results."""
    test_parts = "  ".join(f"{name} {value:.4f}" for name, value in result.test.items())
    lines = [
        f"example     {result.example} (seed {result.seed}, {result.epochs} epochs, batch {result.batch_size})",
        f"backend     {result.backend} {result.backend_version}, keras {result.keras_version}, "
        f"python {result.python_version}",
        f"device      {result.device}: {result.device_name} (weights on {result.weight_device})",
        f"params      {result.params:,} (course formula: {result.expected_params:,})",
        f"trainer     {TRAINER_NAMES[result.trainer].format(backend=result.backend)}",
        f"test        {test_parts}",
        f"epoch time  median {result.median_epoch_seconds:.3f} s, first {result.first_epoch_seconds:.3f} s, "
        f"{result.steps_per_second:.0f} steps/s, peak RSS {result.peak_rss_bytes / 2**20:.0f} MiB",
    ]
    if result.solve_rate is not None:
        solved = sum(result.solve_rate["solved"])
        lines.append(
            f"solve rate  {solved}/{len(result.solve_rate['seeds'])} random starts reach binary accuracy 1.0 "
            f"(the others stall, typically at 0.75: this net does not always solve XOR)"
        )
    lines += [f"gate        {describe_gate(gate)}" for gate in result.gates]
    lines.append(f"results     {result.path}")
    lines.append(
        "PASSED" if result.passed else "FAILED: " + ", ".join(g["name"] for g in result.gates if not g["passed"])
    )
    return "\n".join(lines)
