"""The search's objective: (validation accuracy, parameter count) of a trial's genome, trained once per genome in the
study, on the training images that validation does not use; and the progress line per trial."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np

from multibackend.course import data
from multibackend.evolve import attributes
from multibackend.evolve.config import VALIDATION_SAMPLES, EvolveConfig
from multibackend.evolve.fitness import train_genome
from multibackend.evolve.genome import Genome, generation_of, genome_from_params, suggest_genome
from multibackend.evolve.recovery import wait_for_a_free_place
from multibackend.evolve.stopping import hopeless_stop
from multibackend.runtime.errors import one_line
from multibackend.runtime.signals import raise_if_ended


def search_data(train_samples: int) -> dict[str, np.ndarray]:
    """Training subset and the fixed validation slice, both from the 60,000 training images only."""
    (x_train, y_train), _ = data.load_mnist()
    x_train = data.preprocess_images(x_train)
    split = len(x_train) - VALIDATION_SAMPLES
    return {
        "x_train": x_train[:train_samples],
        "y_train": y_train[:train_samples],
        "x_val": x_train[split:],
        "y_val": y_train[split:],
    }


class Objective:
    """The objective: (validation accuracy, parameter count) of the trial's genome, trained once in the study.

    A genome that a finished trial already trained is not trained again: its values are reused. A genome with
    more parameters than `max_params` (when set) is not trained: the trial is pruned, and NSGA-II, which
    selects among complete trials only, never breeds from it.
    The study's total is exact across workers: a trial starts only while finished and running
    trials are fewer than the total; otherwise it waits for the running ones to finish, or to be
    found stale (a killed worker's) and retried, and is pruned.
    """

    def __init__(self, config: EvolveConfig, arrays: dict, models_dir: Path):
        self.config = config
        self.arrays = arrays
        self.models_dir = models_dir
        self.deadline = time.monotonic() + config.budget_minutes * 60

    def __call__(self, trial) -> tuple[float, float]:
        import optuna

        try:
            return self.train_trial(trial)
        except BaseException as error:
            if isinstance(error, optuna.TrialPruned):
                raise
            if isinstance(error, Exception):  # failed by its own error: no retry is owed (see `awaiting_retry`)
                trial.set_user_attr(attributes.ERROR, one_line(error))
                raise
            # Ctrl-C, SIGTERM, SIGHUP: a resume trains this genome again (see `requeue_owed_genomes`). Optuna
            # fails the trial itself on Ctrl-C only; on the others it would stay running until found stale.
            trial.set_user_attr(attributes.INTERRUPTED, True)
            if not isinstance(error, KeyboardInterrupt):
                from optuna.trial import TrialState

                trial.study.tell(trial.number, state=TrialState.FAIL)
            raise

    def train_trial(self, trial) -> tuple[float, float]:
        """The trial's values: its genome admitted, drawn, then reused or trained."""
        self.admit(trial)
        genome = self.draw(trial)
        others = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
        same = next((t for t in others if t.state.name == "COMPLETE" and t.params == trial.params), None)
        if same is not None:
            trial.set_user_attr(attributes.SAME_GENOME_AS, same.number)
            return tuple(same.values)
        return self.train(trial, genome)

    def admit(self, trial) -> None:
        """Marks the trial as this worker's and waits for a free place in the study's total."""
        # A beat of our own before the `worker` mark: Optuna's first beat comes from a thread that may commit after
        # it, and a trial killed in between (marked, never beaten) was never found stale. The study's storage is
        # Optuna's cache around the RDB storage, so it is asked whether it beats, not what class it is (a check for
        # RDBStorage never held, and a CI resume waited on such a trial until its budget).
        storage = trial.storage
        if getattr(storage, "get_heartbeat_interval", lambda: None)():
            storage.record_heartbeat(trial._trial_id)
        raise_if_ended()
        trial.set_user_attr(attributes.BACKEND, self.config.backend)
        trial.set_user_attr(attributes.WORKER, f"{socket.gethostname()}:{os.getpid()}")
        wait_for_a_free_place(trial, self.config.total_trials, self.deadline)

    def draw(self, trial) -> Genome:
        """The trial's genome; pruned when it is over the size bound."""
        import optuna

        max_params = self.config.max_params
        genome = suggest_genome(trial, self.config.max_epochs, max_params)
        if max_params and genome.params > max_params:
            trial.set_user_attr(attributes.TOO_LARGE, genome.params)
            raise optuna.TrialPruned(f"{genome.params:,} parameters, more than --max-params {max_params:,}")
        return genome

    def train(self, trial, genome: Genome) -> tuple[float, float]:
        """Trains the genome, stopped early when hopeless (pruned); keeps its model for the summary."""
        import optuna

        started = time.perf_counter()
        # The course's network is the reference: it always trains its epochs.
        judged = self.config.early_stop and not trial.user_attrs.get(attributes.BASELINE)
        stop = hopeless_stop(trial, self.arrays["x_val"], self.arrays["y_val"], judged=judged)
        model, trainer = train_genome(
            genome,
            self.arrays,
            self.config.seed + trial.number,
            fast_path=self.config.fast_path,
            whole_batches=True,
            callbacks=[stop],
        )
        raise_if_ended()  # a signal whose raise a garbage-collector callback dropped during training
        trial.set_user_attr(attributes.SECONDS, time.perf_counter() - started)
        trial.set_user_attr(attributes.TRAINER, trainer)
        if stop.stopped is not None:
            epoch, bar = stop.stopped
            trial.set_user_attr(attributes.STOPPED_AT_EPOCH, epoch)
            raise optuna.TrialPruned(
                f"hopeless: validation accuracy {stop.curve[-1]:.4f} after epoch {epoch} of {genome.epochs}, "
                f"below the finished trials' median {bar:.4f}"
            )
        model.save(self.models_dir / f"trial-{trial.number}.keras")
        return stop.curve[-1], float(genome.params)


def progress_callback(total: int, population: int, print_line=print):
    """An Optuna callback that prints a progress line per finished trial."""

    def callback(study, trial) -> None:
        from optuna.trial import TrialState

        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)
        bar = "#" * round(20 * min(done, total) / total)
        if trial.state != TrialState.COMPLETE:
            why = ""
            if attributes.STOPPED_AT_EPOCH in trial.user_attrs:
                curve = trial.user_attrs.get(attributes.VAL_CURVE) or [0.0]
                why = f" (hopeless: val {curve[-1]:.4f} after epoch {trial.user_attrs[attributes.STOPPED_AT_EPOCH]}, below the median)"
            elif attributes.TOO_LARGE in trial.user_attrs:
                why = f" ({trial.user_attrs[attributes.TOO_LARGE]:,} parameters, over --max-params)"
            print_line(f"[{bar:<20}] {done}/{total} trial {trial.number}: {trial.state.name.lower()}{why}")
            return
        best = max(t.values[0] for t in study.best_trials)
        genome = genome_from_params(trial.params)
        print_line(
            f"[{bar:<20}] {done}/{total} trial {trial.number} (gen {generation_of(trial, population)}, "
            f"{trial.user_attrs.get(attributes.BACKEND)}): val {trial.values[0]:.4f}, {int(trial.values[1]):,} params, "
            f"{trial.user_attrs.get(attributes.SECONDS, 0):.1f} s | {genome.describe()} | best val {best:.4f}"
        )

    return callback
