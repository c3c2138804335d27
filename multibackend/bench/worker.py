"""Timed training in a fresh process: `measure`, run by `multibackend-bench` as a job (`runtime.jobs`).

A trainer's measurement returns its timed epoch seconds (after the warm-up
epochs), test accuracy, the process's peak resident memory and its most memory
on transparent huge pages. The `alternating` one trains every trainer of the
backend that runs epoch by epoch side by side in one process, one epoch each
in turn (the order rotating every round), and returns their epoch seconds round
by round: this machine's slow and fast phases then hit the trainers alike, so
the ratio of two epochs of one round measures their difference, not the machine's.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

from multibackend.backends import NAMES, backend, has_loop
from multibackend.bench.native import has_native_trainer
from multibackend.course import data
from multibackend.course.networks import DEFAULT_SEED, MNIST, initial_weights
from multibackend.runtime.backend import import_keras
from multibackend.runtime.errors import UsageError
from multibackend.runtime.memory import peak_rss_bytes

# Trainers per backend: Keras `fit`; `fit` measured as `verify` measures every call (its overhead);
# `fit` with 32 steps per compiled call
# (not on torch, whose Keras trainer runs them one by one in Python); the
# framework's loop over the Keras model (`--trainer loop`, where the backend has
# one); `multibackend run mnist` as `nox -s mnist-<backend>` runs it (default
# trainer, plus evaluation and the misclassified digits); and the framework's
# own loop, the baseline (where `bench/native/<name>_loop.py` is).
MEASURED_FIT = "keras-fit-measured"
TRAINERS = {
    name: (
        "keras-fit",
        MEASURED_FIT,
        *(("keras-fit-steps32",) if backend(name).STEPS_PER_EXECUTION_COMPILED else ()),
        *(("keras-loop",) if has_loop(name) else ()),
        "run-mnist",
        *(("native",) if has_native_trainer(name) else ()),
    )
    for name in NAMES
}


ALTERNATING = "alternating"


def alternating_trainers(backend: str) -> tuple[str, ...]:
    """The trainers of `backend` that the alternating process runs side by side: all but
    `run-mnist`, which is a whole `multibackend run`, not something trained epoch by epoch."""
    return tuple(trainer for trainer in TRAINERS[backend] if trainer != "run-mnist")


class HugePageWatcher:
    """The most memory this process held on transparent huge pages, sampled every two seconds.

    Sampled, not read at the end: `multibackend run` frees the training images before evaluating.
    A read walks every mapping of the process (about 5 ms here), so it runs rarely: the images
    live through all training epochs, which take longer than that.
    """

    def __init__(self, interval: float = 2.0):
        self.most: int | None = transparent_huge_page_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(interval,), daemon=True)
        self._thread.start()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sample()

    def _sample(self) -> None:
        now = transparent_huge_page_bytes()
        if now is not None:
            self.most = max(self.most or 0, now)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join()
        self._sample()
        return self.most


def run(backend: str, trainer: str, epochs: int, warmup: int) -> dict:
    watcher = HugePageWatcher()
    total = warmup + epochs
    seconds, accuracy = _run_mnist(backend, total) if trainer == "run-mnist" else _train(backend, trainer, total)
    return {
        "backend": backend,
        "trainer": trainer,
        "epoch_seconds": seconds[warmup:],
        "warmup_seconds": seconds[:warmup],
        "test_accuracy": accuracy,
        "epochs_trained": len(seconds),
        "peak_rss_bytes": peak_rss_bytes(),
        "huge_page_bytes": watcher.stop(),
    }


def _mnist_arrays():
    (x_train, y_train), (x_test, y_test) = data.load_mnist(allow_download=False)
    return data.preprocess_images(x_train), y_train, data.preprocess_images(x_test), y_test


def _epoch_runner(backend: str, trainer: str, x_train, y_train, weights):
    """`(train_one_epoch(order), test_accuracy(x_test, y_test))` of one trainer, with its own network.

    `fit` shuffles by itself and ignores `order`.
    """
    if trainer == "native":
        from multibackend.bench.native import native_trainer

        network = native_trainer(backend, x_train, y_train, weights, MNIST.batch_size)
        return network.train_epoch, lambda x, y: float(np.mean(network.predict_classes(x) == y))
    from multibackend.models import build_dense, compile_example

    model = build_dense(MNIST.network, weights=weights)
    compile_example(model, MNIST, steps_per_execution=32 if trainer == "keras-fit-steps32" else 1)

    def test_accuracy(x, y) -> float:
        return float(model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])

    if trainer == "keras-loop":
        from multibackend.training.loops import epoch_trainer

        loop = epoch_trainer(model, x_train, y_train, MNIST.batch_size)

        def train_epoch(order):
            loop.train_epoch(order)
            loop.sync_model()

        return train_epoch, test_accuracy
    fit = type(model).fit
    if trainer == MEASURED_FIT:  # the wrapper verify puts around every fit: its callback, timer and device probe
        from multibackend.verify import measure

        fit = measure.measured(fit, lambda: 0, [], set())
    return lambda order: fit(model, x_train, y_train, epochs=1, batch_size=MNIST.batch_size, verbose=0), test_accuracy


def _train_in_turn(backend: str, trainers: tuple[str, ...], rounds: int) -> tuple[dict, dict]:
    """Trains `trainers` one epoch each in turn for `rounds` rounds, the order rotating every round.

    Returns:
        `(epoch seconds per trainer, test accuracy per trainer)`; entry i of every
        list comes from round i, which gave every trainer but `fit` the same sample order.
    """
    x_train, y_train, x_test, y_test = _mnist_arrays()
    weights = initial_weights(MNIST.network, DEFAULT_SEED)
    runners = {trainer: _epoch_runner(backend, trainer, x_train, y_train, weights) for trainer in trainers}
    seconds: dict[str, list[float]] = {trainer: [] for trainer in trainers}
    rng = np.random.default_rng(DEFAULT_SEED)
    for round_index in range(rounds):
        order = rng.permutation(len(x_train))
        shift = round_index % len(trainers)
        for trainer in trainers[shift:] + trainers[:shift]:
            started = time.perf_counter()
            runners[trainer][0](order)
            seconds[trainer].append(time.perf_counter() - started)
    return seconds, {trainer: runner[1](x_test, y_test) for trainer, runner in runners.items()}


def _train(backend: str, trainer: str, epochs: int) -> tuple[list[float], float]:
    seconds, accuracy = _train_in_turn(backend, (trainer,), epochs)
    return seconds[trainer], accuracy[trainer]


def run_alternating(backend: str, epochs: int, warmup: int) -> dict:
    """Every epoch-by-epoch trainer of `backend` in this process, one epoch each in turn.

    Returns:
        `{"epoch_seconds": {trainer: [...]}, ...}`: timed rounds only; entry i of
        every list comes from the same round.
    """
    seconds, accuracy = _train_in_turn(backend, alternating_trainers(backend), warmup + epochs)
    return {
        "backend": backend,
        "trainer": ALTERNATING,
        "epoch_seconds": {trainer: values[warmup:] for trainer, values in seconds.items()},
        "warmup_seconds": {trainer: values[:warmup] for trainer, values in seconds.items()},
        "test_accuracy": accuracy,
    }


def _run_mnist(backend: str, epochs: int) -> tuple[list[float], float]:
    """`multibackend run mnist` with its defaults, as `nox -s mnist-<backend>` runs it (it reads the data itself)."""
    from multibackend.training.runner import RunConfig
    from multibackend.training.runner import run as run_example

    with tempfile.TemporaryDirectory() as out_dir:
        result = run_example(
            RunConfig(example="mnist", backend=backend, device="cpu", epochs=epochs, verbose=0, out_dir=out_dir)
        )
    return result.epoch_seconds, result.test["accuracy"]


def transparent_huge_page_bytes() -> int | None:
    """Bytes of this process's memory on transparent huge pages (Linux), None where unknown.

    The training images (180 MiB) are read at random rows every batch: on this
    machine an epoch took about 0.87 s when they sat on 2 MiB pages and 1.33 s
    when the kernel had none to give (NUMPY_MADVISE_HUGEPAGE=0 reproduces it).
    """
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class Measurement:
    """One bench process: a trainer (or `alternating`) of a backend, warm-up and timed epochs."""

    backend: str
    trainer: str
    epochs: int = 2
    warmup: int = 1


def measure(request: Measurement) -> dict:
    """Trains as `request` says in this process, where only its backend's framework is visible; a job's function.

    Raises:
        UsageError: for a trainer that `request.backend` does not have.
    """
    if request.trainer != ALTERNATING and request.trainer not in TRAINERS[request.backend]:
        choices = ", ".join((*TRAINERS[request.backend], ALTERNATING))
        raise UsageError(f"trainer {request.trainer!r} is not available on {request.backend} ({choices})")
    import_keras()
    if request.trainer == ALTERNATING:
        return run_alternating(request.backend, request.epochs, request.warmup)
    return run(request.backend, request.trainer, request.epochs, request.warmup)
