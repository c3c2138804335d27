"""`multibackend evolve`: an evolutionary (NSGA-II) search over dense MNIST networks, on any backend.

Two objectives: validation accuracy (up) and parameter count (down), so the
result is a Pareto front. Validation is a fixed held-out slice of the 60,000
training images; the test set is read only once, after the search, for the
final front. Optuna's storage (SQLite in results/ by default) makes the search
resumable and lets several processes or machines share one study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import re
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multibackend.course import data
from multibackend.evolve.fitness import accuracy, train_genome
from multibackend.evolve.genome import (
    course_baseline,
    generation_of,
    genome_from_params,
    search_space,
    suggest_genome,
)
from multibackend.evolve.stopping import hopeless_stop
from multibackend.results import write_json_atomic
from multibackend.runtime.children import end_child
from multibackend.runtime.errors import CheckFailed, UsageError, one_line
from multibackend.runtime.jobs import JobRequest, start_job
from multibackend.runtime.signals import raise_if_ended

VALIDATION_SAMPLES = 10_000
STORAGE_SCHEMES = (
    "sqlite:///",
    "postgresql://",
    "postgresql+psycopg2://",
    "mysql://",
    "mysql+pymysql://",
    "journal:///",
)
COURSE_REFERENCE = {"params": 407_050, "test_accuracy": 0.9834}  # the course's 20-epoch result
# Named settings of a search. quick: about 10 minutes on 2 CPU cores. full: the course's budget (up to 20
# epochs on the 50,000 training images that validation does not use) for networks no larger than the course's,
# then the front's best and the course network retrained with 3 seeds each on all 60,000 images.
PRESETS = {
    "quick": {
        "generations": 4,
        "population": 8,
        "budget_minutes": 14.0,
        "max_epochs": 3,
        "train_samples": 20_000,
        "max_params": 0,
        "final_seeds": 0,
    },
    "full": {
        "generations": 16,
        "population": 16,
        "budget_minutes": 60.0,
        "max_epochs": 20,
        "train_samples": 50_000,
        "max_params": COURSE_REFERENCE["params"],
        "final_seeds": 3,
    },
}


def preset_settings(preset: str, **given) -> dict:
    """A preset's settings with the ones given (not None) in their place.

    Args:
        preset: A name in `PRESETS`.
        **given: EvolveConfig fields, e.g. `budget_minutes=5`; None keeps the preset's.

    Returns:
        Keyword arguments for `EvolveConfig`.
    """
    return {**PRESETS[preset], **{key: value for key, value in given.items() if value is not None}}


@dataclass
class EvolveConfig:
    """Settings of one search; defaults finish in about 10 minutes on 2 CPU cores."""

    backend: str
    generations: int = 4
    population: int = 8
    budget_minutes: float = 14.0
    storage: str | None = None
    study: str | None = None
    seed: int = 0
    workers: int = 1
    max_epochs: int = 3
    train_samples: int = 20_000
    max_params: int = 0  # 0: no limit; else larger genomes are not trained (pruned)
    final_seeds: int = 0  # 0: no final retraining
    final_candidates: int = 3
    results_dir: str = "results"
    report_dir: str = "reports"
    fast_path: bool = True  # trials train with the framework loop where the genome allows it
    early_stop: bool = True  # a hopeless trial stops (the median rule, `stopping.py`)

    @property
    def study_name(self) -> str:
        return self.study if self.study is not None else f"mnist-dense-{self.backend}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.results_dir) / 'evolve.db'}"

    @property
    def storage_shown(self) -> str:
        """The storage URL as printed and stored: its password masked."""
        return shown_storage(self.storage_url)

    @property
    def total_trials(self) -> int:
        return self.generations * self.population


# Workers per core that a search may start: more only wait for each other (and each holds a framework in memory).
WORKERS_PER_CORE = 2
_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^/?#]*@")  # to the last @ before the host, as SQLAlchemy reads it


def shown_storage(url: str) -> str:
    """`url` with its password masked (`postgresql+psycopg2://evolve:***@host/db`), for messages, files and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def _masked(text: str, url: str) -> str:
    """`text` (a driver's message) with `url` and its password masked wherever they appear."""
    match = _PASSWORD.search(url)
    text = text.replace(url, shown_storage(url))
    password = match[0][len(match[1]) : -1] if match else ""
    return text.replace(password, "***") if password else text


def max_workers() -> int:
    """The most worker processes a search may start on this machine."""
    from multibackend.runtime.cores import available_cores

    return WORKERS_PER_CORE * available_cores()


def validate(config: EvolveConfig) -> None:
    """Rejects impossible settings with one clear message."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", config.study_name):
        raise UsageError(
            f"--study {config.study_name!r}: use letters, digits, '.', '_' and '-' (it names the "
            "report and results files)"
        )
    for name in ("generations", "population", "workers", "max_epochs", "train_samples", "final_candidates"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if not isinstance(config.max_params, int) or config.max_params < 0:
        raise UsageError(f"--max-params must be 0 (no limit) or a positive integer, got {config.max_params!r}")
    if not isinstance(config.final_seeds, int) or config.final_seeds < 0 or config.final_seeds == 1:
        raise UsageError(f"--final-seeds must be 0 (no final step) or at least 2, got {config.final_seeds!r}")
    if config.workers > max_workers():
        raise UsageError(
            f"--workers {config.workers}: at most {max_workers()} here ({WORKERS_PER_CORE} per core this process may "
            "use); more machines join a shared study with --join"
        )
    if config.population < 2:
        raise UsageError("--population must be at least 2 for NSGA-II")
    if not config.budget_minutes > 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {config.budget_minutes!r}")
    if config.train_samples > 60_000 - VALIDATION_SAMPLES:
        raise UsageError(f"--train-samples must be at most {60_000 - VALIDATION_SAMPLES:,} (the rest is validation)")
    if config.storage_url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise UsageError(
            f"--storage {config.storage_shown!r}: an in-memory database is lost at exit and cannot be "
            "shared with workers; give a file, e.g. sqlite:///results/evolve.db"
        )
    if not config.storage_url.startswith(STORAGE_SCHEMES):
        raise UsageError(
            f"--storage {config.storage_shown!r}: unknown scheme (use one of: {', '.join(STORAGE_SCHEMES)})"
        )


# Seconds between the tries to open a storage.
OPEN_RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0)


def make_storage(url: str):
    """An Optuna storage for `url`; RDB storages get heartbeats so a killed trial is retried."""
    import warnings

    import optuna

    # Heartbeats and the retry callback are marked experimental; they are what makes resuming safe.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = _storage_file(url, Path(url[len("journal:///") - 1 :]))
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise UsageError(f"--storage {url!r}: cannot open ({error.strerror or error})") from None
    if url.startswith("sqlite:///"):
        _storage_file(url, Path(url[len("sqlite:///") :]))
    # Two processes that open a new database at once both create its tables, and one of them fails ("table ...
    # already exists", a UNIQUE constraint): by the next try the other has made them.
    for pause in OPEN_RETRY_PAUSES:
        try:
            return _rdb_storage(url)
        except Exception:  # noqa: BLE001 - drivers raise many kinds
            time.sleep(pause)
    try:
        return _rdb_storage(url)
    except Exception as error:  # noqa: BLE001
        raise UsageError(_masked(f"--storage {url!r}: cannot open ({str(error).splitlines()[0]})", url)) from None


def _storage_file(url: str, path: Path) -> Path:
    """The file of a SQLite or journal storage, its folder made; one line when it cannot be (a file in the way, a
    folder where the file goes)."""
    if path.is_dir():
        raise UsageError(f"--storage {url!r}: {path} is a folder, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--storage {url!r}: cannot make its folder {path.parent} ({error.strerror or error})"
        ) from None
    return path


class StorageFailed(UsageError):
    """The study's storage stopped taking writes mid-search (a full disk, a read-only folder, a lost server)."""


@contextlib.contextmanager
def storage_writes(config: EvolveConfig):
    """Turns a storage that fails mid-search into one line naming it (exit 2): the trials it holds are kept.

    Optuna reports a failed write as the driver's error, or as "AssertionError: Should not reach." from its own
    storage code; anything else goes on up.
    """
    try:
        yield
    except Exception as error:  # noqa: BLE001 - told apart below
        if not _from_storage(error):
            raise
        message = _masked(one_line(error), config.storage_url)
        raise StorageFailed(
            f"the study's storage {config.storage_shown} stopped taking writes ({message}); the trials it holds are "
            "kept: resume the search when it can be written again"
        ) from None


def _from_storage(error: BaseException) -> bool:
    """Whether `error`, or an error it arose from, was raised by a storage: a file system's write, SQLAlchemy or its
    drivers, or Optuna's storage code (a failed write inside Optuna's trial loop surfaces as an error of the loop
    itself, an UnboundLocalError in Optuna 4, with the storage's error as its context)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg2"):
            return True
        if type(error).__name__ == "StorageInternalError":
            return True
        frames = traceback.extract_tb(error.__traceback__)
        if frames and "optuna/storages" in frames[-1].filename.replace(os.sep, "/"):
            return True
        error = error.__cause__ or error.__context__
    return False


def _rdb_storage(url: str):
    import optuna

    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=5,
        grace_period=15,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


def study_settings(config: EvolveConfig) -> dict:
    """Every setting that shapes the search, as stored in the study: a resume or a worker must bring the same.

    The number of generations is not one of them: a resume with more extends the search.
    """
    return {
        "search_space": search_space(config.max_epochs, config.train_samples, config.max_params),
        "population": config.population,
        "seed": config.seed,
        "validation_samples": VALIDATION_SAMPLES,
    }


def sampler_seed(config_seed: int, trials_so_far: int) -> int:
    """A sampler seed of its own for this process and this start of it.

    Drawn from `--seed`, the study's trial count and the process id: a resumed
    search or a second worker does not replay the first one's draws (with one
    seed, each start proposed the same genomes again).
    """
    return int(np.random.SeedSequence([config_seed, trials_so_far, os.getpid()]).generate_state(1)[0])


def _not_an_interrupt(record) -> bool:
    """A logging filter: Optuna logs a Ctrl-C as a failed trial with its whole traceback (about 60 lines)."""
    return not (record.exc_info and record.exc_info[0] and not issubclass(record.exc_info[0], Exception))


def quiet_interrupts() -> None:
    """Keeps interrupts out of Optuna's log: the command line says "interrupted" in one line."""
    import logging

    for handler in logging.getLogger("optuna").handlers:
        if _not_an_interrupt not in handler.filters:
            handler.addFilter(_not_an_interrupt)


def open_study(config: EvolveConfig):
    """Creates or resumes the study, refusing one made with other settings; gives it this process's sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_interrupts()
    study = optuna.create_study(
        study_name=config.study_name,
        storage=make_storage(config.storage_url),
        load_if_exists=True,
        directions=["maximize", "minimize"],
    )
    settings = study_settings(config)
    stored = study.user_attrs.get("settings")
    if stored is None and study.user_attrs.get("search_space") is not None:  # a study of an earlier version
        stored = {"search_space": study.user_attrs["search_space"], "population": study.user_attrs.get("population")}
        settings = {key: settings[key] for key in stored}
    if stored is None:
        study.set_user_attr("settings", settings)
        if baseline_trained(config):
            study.enqueue_trial(course_baseline(config.max_epochs).to_params(), user_attrs={"baseline": True})
    elif stored == settings:
        requeue_owed_genomes(study, config)
    else:
        differs = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        if "search_space" in differs:
            space, old = settings["search_space"], stored.get("search_space") or {}
            differs = [key for key in differs if key != "search_space"] + sorted(
                key for key in set(old) | set(space) if old.get(key) != space.get(key)
            )
        raise UsageError(
            f"study {config.study_name!r} was created with other settings (differs in: {', '.join(differs)}); "
            "use the same settings or a new --study name"
        )
    study.sampler = optuna.samplers.NSGAIISampler(
        population_size=config.population, seed=sampler_seed(config.seed, len(study.trials))
    )
    return study


def requeue_owed_genomes(study, config: EvolveConfig) -> list[int]:
    """Queues again every genome that the study owes a training: a resumed search loses no work.

    Owed: the course baseline until one trial of it is complete, and the genome of every trial that was
    interrupted (Ctrl-C, SIGTERM, SIGHUP: marked `interrupted`) or that came from the queue (a retry of a
    killed worker's trial, the baseline) and ended failed or pruned, unless a trial with the same genome is
    complete, queued or running. The baseline goes first.

    Returns:
        The numbers of the trials whose genomes were queued again.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    pending = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    # A queued trial's genome is its fixed params: it has no params while waiting, and only some while they are drawn
    # (a worker joining then took those for the genome, and queued the baseline a second time).
    covered = {_genome_key(t.system_attrs.get("fixed_params") or t.params) for t in trials if t.state in pending}
    owed = []
    for trial in sorted(trials, key=lambda t: (not t.user_attrs.get("baseline"), t.number)):
        if trial.state not in (TrialState.FAIL, TrialState.PRUNED) or {"too_large", "stopped_at_epoch"} & set(
            trial.user_attrs
        ):
            continue  # pruned for a reason that holds again: too large, or hopeless
        if not (trial.user_attrs.get("interrupted") or "fixed_params" in trial.system_attrs):
            continue
        try:
            genome_from_params(trial.params)  # drawn in full: it can be trained again
        except KeyError:
            continue
        if _genome_key(trial.params) in covered:
            continue
        covered.add(_genome_key(trial.params))
        study.enqueue_trial(trial.params, user_attrs=_retry_attrs(trial))
        owed.append(trial.number)
    baseline = course_baseline(config.max_epochs).to_params()
    if baseline_trained(config) and _genome_key(baseline) not in covered:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return owed


def reused_genomes(trials: list) -> int:
    """How many complete trials took the values of an earlier trial of the same genome (`same_genome_as`) instead of
    training."""
    return sum(t.state.name == "COMPLETE" and "same_genome_as" in t.user_attrs for t in trials)


def baseline_trained(config: EvolveConfig) -> bool:
    """Whether the search trains the course network: not above `--max-params` (queued there, Optuna warned that its
    first layer lies outside the bounded space, and the trial was pruned at once, again on every resume)."""
    return not config.max_params or course_baseline(config.max_epochs).params <= config.max_params


def _retry_attrs(trial) -> dict:
    """The marks of a genome queued again for `trial`: what it retries, and whether it is the baseline."""
    return {"retry_of": trial.number, **({"baseline": True} if trial.user_attrs.get("baseline") else {})}


def _genome_key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


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


def make_objective(config: EvolveConfig, arrays: dict, models_dir: Path):
    """The objective: (validation accuracy, parameter count) of the trial's genome, trained once in the study.

    A genome that a finished trial already trained is not trained again: its values are reused. A genome with
    more parameters than `max_params` (when set) is not trained: the trial is pruned, and NSGA-II, which
    selects among complete trials only, never breeds from it.
    The study's total is exact across workers: a trial starts only while finished and running
    trials are fewer than the total; otherwise it waits for the running ones to finish, or to be
    found stale (a killed worker's) and retried, and is pruned.
    """
    import optuna

    deadline = time.monotonic() + config.budget_minutes * 60

    def objective(trial) -> tuple[float, float]:
        try:
            return train_trial(trial)
        except BaseException as error:
            if isinstance(error, optuna.TrialPruned):
                raise
            if isinstance(error, Exception):  # failed by its own error: no retry is owed (see `awaiting_retry`)
                trial.set_user_attr("error", one_line(error))
                raise
            # Ctrl-C, SIGTERM, SIGHUP: a resume trains this genome again (see `requeue_owed_genomes`). Optuna
            # fails the trial itself on Ctrl-C only; on the others it would stay running until found stale.
            trial.set_user_attr("interrupted", True)
            if not isinstance(error, KeyboardInterrupt):
                from optuna.trial import TrialState

                trial.study.tell(trial.number, state=TrialState.FAIL)
            raise

    def train_trial(trial) -> tuple[float, float]:
        # A beat of our own before the `worker` mark: Optuna's first beat comes from a thread that may commit after
        # it, and a trial killed in between (marked, never beaten) was never found stale.
        if isinstance(trial.storage, optuna.storages.RDBStorage) and trial.storage.get_heartbeat_interval():
            trial.storage.record_heartbeat(trial._trial_id)
        raise_if_ended()
        trial.set_user_attr("backend", config.backend)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        wait_for_a_free_place(trial, config.total_trials, deadline)
        genome = suggest_genome(trial, config.max_epochs, config.max_params)
        if config.max_params and genome.params > config.max_params:
            trial.set_user_attr("too_large", genome.params)
            raise optuna.TrialPruned(f"{genome.params:,} parameters, more than --max-params {config.max_params:,}")
        others = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
        same = next((t for t in others if t.state.name == "COMPLETE" and t.params == trial.params), None)
        if same is not None:
            trial.set_user_attr("same_genome_as", same.number)
            return tuple(same.values)
        started = time.perf_counter()
        # The course's network is the reference: it always trains its epochs.
        judged = config.early_stop and not trial.user_attrs.get("baseline")
        stop = hopeless_stop(trial, arrays["x_val"], arrays["y_val"], judged=judged)
        model, trainer = train_genome(
            genome,
            arrays,
            config.seed + trial.number,
            fast_path=config.fast_path,
            whole_batches=True,
            callbacks=[stop],
        )
        raise_if_ended()  # a signal whose raise a garbage-collector callback dropped during training
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("trainer", trainer)
        if stop.stopped is not None:
            epoch, bar = stop.stopped
            trial.set_user_attr("stopped_at_epoch", epoch)
            raise optuna.TrialPruned(
                f"hopeless: validation accuracy {stop.curve[-1]:.4f} after epoch {epoch} of {genome.epochs}, "
                f"below the finished trials' median {bar:.4f}"
            )
        model.save(models_dir / f"trial-{trial.number}.keras")
        return stop.curve[-1], float(genome.params)

    return objective


def wait_for_a_free_place(trial, total: int, deadline: float, poll_seconds: float = 1.0) -> None:
    """Returns when `trial` may train: fewer than `total` trials are finished or ahead of it.

    Ahead of it are the running trials that train, and those that wait with a higher priority:
    a retried trial (a killed worker's genome) before a new one, then the older one. Two waiting
    trials never wait for each other, and a killed trial's genome is trained before new ones.

    Raises:
        optuna.TrialPruned: when the study has its trials (the search is stopped), when a trial
            is queued (a killed worker's, to be retried: this worker's next trial takes it) and this
            one was not queued itself, or at the deadline (a queued genome is queued again on resume).
    """
    import optuna
    from optuna.trial import TrialState

    def priority(t) -> tuple[int, int]:
        return (0 if "failed_trial" in t.system_attrs else 1, t.number)

    study = trial.study
    trial.set_user_attr("place", "waiting")
    while True:
        trials = study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == trial.number)
        mine = priority(frozen)
        queued = "fixed_params" in frozen.system_attrs  # a retry or the baseline: never gives its place to another
        others = [t for t in trials if t.number != trial.number]
        complete = sum(t.state == TrialState.COMPLETE for t in others)
        if complete >= total or time.monotonic() > deadline:
            study.stop()
            raise optuna.TrialPruned("the study has its trials" if complete >= total else "the budget is spent")
        if not queued and any(t.state == TrialState.WAITING for t in others):
            raise optuna.TrialPruned("a queued trial goes first; this worker's next trial takes it")
        ahead = sum(
            t.state == TrialState.RUNNING and (t.user_attrs.get("place") != "waiting" or priority(t) < mine)
            for t in others
        ) + sum(awaiting_retry(t, trials) for t in others)
        if complete + ahead < total:
            trial.set_user_attr("place", "training")
            return
        time.sleep(poll_seconds)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed and queued again
        fail_trials_killed_in_ask(study)


# Optuna fails a killed worker's trial and queues its retry in two steps (`fail_stale_trials`); for this long after
# the first, the trial holds its place: a trial that looked in between saw neither, took the last place, and the
# retry was pruned with the study full (a CI run: the killed genome never trained).
RETRY_QUEUE_SECONDS = 60


def awaiting_retry(trial, trials: list) -> bool:
    """Whether `trial` was failed moments ago as a killed worker's (stale) trial whose retry is not queued yet.

    Not for a retry itself (Optuna retries once), an interrupted trial (its resume queues it again), a trial
    failed by its own error, or one failed longer ago than `RETRY_QUEUE_SECONDS` (the worker that failed it
    died before queueing the retry).
    """
    from optuna.trial import TrialState

    if (
        trial.state != TrialState.FAIL
        or trial.user_attrs.get("place") != "training"
        or trial.user_attrs.get("interrupted")
        or trial.user_attrs.get("error")
        or "failed_trial" in trial.system_attrs
        or trial.datetime_complete is None
        or (dt.datetime.now() - trial.datetime_complete).total_seconds() > RETRY_QUEUE_SECONDS
    ):
        return False
    return not any(trial.number in t.system_attrs.get("retry_history", ()) for t in trials)


# A trial gets its first heartbeat, then its `worker` attribute, right after Optuna's `ask` (the objective records
# one itself first); one that is older and has neither was killed inside `ask` (the sampler's draw).
ASK_SECONDS = 60


def fail_trials_killed_in_ask(study, older_than_seconds: float | None = None) -> list[int]:
    """Fails the running trials whose worker was killed before the trial's first heartbeat.

    Optuna finds a killed worker's trial stale by its last heartbeat; a trial killed inside `ask`
    has none and stayed running for good (a resume of a SIGKILLed search then waited on it forever).
    A queued genome (a retry, the baseline) in such a trial is queued again; a sampler's draw was
    not recorded yet, so nothing is lost.

    Args:
        study: The study to look through.
        older_than_seconds: How long after its start a trial without a worker counts as dead
            (None: `ASK_SECONDS`).

    Returns:
        The numbers of the trials failed here.
    """
    from optuna.trial import TrialState

    if older_than_seconds is None:
        older_than_seconds = ASK_SECONDS
    now = dt.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" in trial.user_attrs or trial.datetime_start is None:
            continue
        if (now - trial.datetime_start).total_seconds() < older_than_seconds:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker failed it first, and queued its genome
            continue
        failed.append(trial.number)
        fixed = trial.system_attrs.get("fixed_params")
        if fixed:
            study.enqueue_trial(fixed, user_attrs=_retry_attrs(trial))
    return failed


def progress_callback(total: int, population: int, print_line=print):
    def callback(study, trial) -> None:
        from optuna.trial import TrialState

        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)
        bar = "#" * round(20 * min(done, total) / total)
        if trial.state != TrialState.COMPLETE:
            why = ""
            if "stopped_at_epoch" in trial.user_attrs:
                curve = trial.user_attrs.get("val_curve") or [0.0]
                why = f" (hopeless: val {curve[-1]:.4f} after epoch {trial.user_attrs['stopped_at_epoch']}, below the median)"
            elif "too_large" in trial.user_attrs:
                why = f" ({trial.user_attrs['too_large']:,} parameters, over --max-params)"
            print_line(f"[{bar:<20}] {done}/{total} trial {trial.number}: {trial.state.name.lower()}{why}")
            return
        best = max(t.values[0] for t in study.best_trials)
        genome = genome_from_params(trial.params)
        print_line(
            f"[{bar:<20}] {done}/{total} trial {trial.number} (gen {generation_of(trial, population)}, "
            f"{trial.user_attrs.get('backend')}): val {trial.values[0]:.4f}, {int(trial.values[1]):,} params, "
            f"{trial.user_attrs.get('seconds', 0):.1f} s | {genome.describe()} | best val {best:.4f}"
        )

    return callback


def run_search(config: EvolveConfig, print_line=print) -> dict:
    """Runs (or resumes) the search until the trial count or the budget is reached, then reports.

    Returns:
        The summary written to `results/evolve-<study>.json`.
    """
    from optuna.trial import TrialState

    validate(config)
    study = open_study(config)
    models_dir = Path(config.results_dir) / "evolve-models" / config.study_name
    models_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    done = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    print_line(
        f"study {config.study_name!r} in {config.storage_shown}: {done} of {config.total_trials} trials done, "
        f"backend {config.backend}, budget {config.budget_minutes:g} min"
    )
    started, done_at_start = time.perf_counter(), done
    stopped_at_start = sum("stopped_at_epoch" in t.user_attrs for t in trials)
    reused_at_start = reused_genomes(trials)
    helpers = [_start_helper(config) for _ in range(config.workers - 1)]
    try:
        if done < config.total_trials:
            with storage_writes(config):
                optimize(
                    study, config, models_dir, progress_callback(config.total_trials, config.population, print_line)
                )
        for helper in helpers:
            helper.wait()
    finally:
        for helper in helpers:  # on an error or Ctrl-C here, no helper trains on alone
            end_child(helper)
    minutes = (time.perf_counter() - started) / 60
    summary = summarize(study, config, models_dir, minutes)
    summary["trials_this_run"] = summary["completed_trials"] - done_at_start
    summary["stopped_this_run"] = summary["stopped_early"] - stopped_at_start
    summary["reused_this_run"] = reused_genomes(study.get_trials(deepcopy=False)) - reused_at_start
    hours = minutes / 60
    # Complete trials per hour (what the searches before early stopping measured), and trials judged per hour:
    # complete, or stopped early as hopeless (each an evaluated genome).
    summary["trials_per_hour"] = summary["trials_this_run"] / hours if hours > 0 else 0.0
    judged = summary["trials_this_run"] + summary["stopped_this_run"]
    summary["judged_trials_per_hour"] = judged / hours if hours > 0 else 0.0
    if config.final_seeds:
        from multibackend.evolve.final import final_comparison

        print_line(
            f"final: the course network and the best smaller front networks, {config.final_seeds} seeds each, "
            "all 60,000 training images"
        )
        summary["final"] = final_comparison(summary["front"], config.final_seeds, config.final_candidates, print_line)
    write_json_atomic(Path(config.results_dir) / f"evolve-{config.study_name}.json", summary)
    from multibackend.evolve.report import write_evolve_report

    summary["report"] = str(write_evolve_report(study, summary, Path(config.report_dir), config.population))
    return summary


def work_on_study(config: EvolveConfig) -> int:
    """One more worker on the study: trains its trials until it has them all or the budget is spent.

    The function of `multibackend evolve --join` and of the helper jobs that `--workers N` starts; the
    summary, the final step and the report are the first process's.

    Returns:
        The study's complete trials when this worker stopped.
    """
    from optuna.trial import TrialState

    validate(config)
    study = open_study(config)
    models_dir = Path(config.results_dir) / "evolve-models" / config.study_name
    models_dir.mkdir(parents=True, exist_ok=True)
    with storage_writes(config):
        optimize(study, config, models_dir)
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)


def optimize(study, config: EvolveConfig, models_dir: Path, *callbacks) -> None:
    """Trains the study's trials in this process until it has them all or the budget is spent."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study.optimize(
        make_objective(config, search_data(config.train_samples), models_dir),
        timeout=config.budget_minutes * 60,
        callbacks=[MaxTrialsCallback(config.total_trials, states=(TrialState.COMPLETE,)), *callbacks],
        catch=(ValueError, FloatingPointError),
    )


def join_study(config: EvolveConfig) -> int:
    """`multibackend evolve --join`: this process and `config.workers - 1` helper jobs work on the study.

    Returns:
        The study's complete trials when they all stopped.
    """
    helpers = [_start_helper(config) for _ in range(config.workers - 1)]
    try:
        work_on_study(config)
        for helper in helpers:
            helper.wait()
    finally:
        for helper in helpers:  # on an error or a signal here, no helper trains on alone
            end_child(helper)
    return complete_trials(config)


def complete_trials(config: EvolveConfig) -> int:
    """The study's complete trials."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage_url))
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)


def _start_helper(config: EvolveConfig):
    """Another worker process on the same study (the storage coordinates them), a job with the search's backend."""
    helper = dataclasses.replace(config, workers=1, final_seeds=0)
    return start_job(JobRequest(config.backend, "multibackend.evolve.study:work_on_study", helper))


# The hypervolume's reference point: a validation accuracy floor, and the search's size bound (or the course's).
HYPERVOLUME_FLOOR = 0.9


def hypervolume_reference(max_params: int) -> list[float]:
    """`[validation accuracy, parameters]` that every counted network must beat (be above, and below)."""
    return [HYPERVOLUME_FLOOR, float(max_params or COURSE_REFERENCE["params"])]


def hypervolume(points: list[tuple[float, float]], reference: list[float]) -> float:
    """The area that `(accuracy, parameters)` points dominate up to `reference` (accuracy up, parameters down).

    Args:
        points: The networks' validation accuracy and parameter count.
        reference: `hypervolume_reference`: points not better in both are left out.

    Returns:
        The area in accuracy x parameters.
    """
    floor, ceiling = reference
    kept = sorted((params, acc) for acc, params in points if acc > floor and params < ceiling)
    area, best = 0.0, floor
    for index, (params, acc) in enumerate(kept):
        best = max(best, acc)
        right = kept[index + 1][0] if index + 1 < len(kept) else ceiling
        area += (right - params) * (best - floor)
    return area


def summarize(study, config: EvolveConfig, models_dir: Path, minutes: float) -> dict:
    """The Pareto front with validation and (computed once, here) test accuracy, and the baseline."""
    import keras
    from optuna.trial import TrialState

    import multibackend.models  # noqa: F401 - registers the layers of the saved trials (RandomShift) for load_model

    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise CheckFailed("no trial finished within the budget; raise --budget")
    baseline = next((t for t in completed if t.user_attrs.get("baseline")), None)
    front = sorted((t for t in study.best_trials if "same_genome_as" not in t.user_attrs), key=lambda t: t.values[1])
    _, (x_test, y_test) = data.load_mnist()  # the only read of the test set
    x_test = data.preprocess_images(x_test)

    def describe(trial) -> dict:
        genome = genome_from_params(trial.params)
        entry = {
            "trial": trial.number,
            "generation": generation_of(trial, config.population),
            "backend": trial.user_attrs.get("backend"),
            "validation_accuracy": trial.values[0],
            "params": int(trial.values[1]),
            "genome": genome.describe(),
            "genome_params": trial.params,
        }
        path = models_dir / f"trial-{trial.number}.keras"
        if path.is_file():
            model = keras.saving.load_model(path)
            entry["test_accuracy"] = accuracy(model, x_test, y_test)
        return entry

    front_entries = [describe(trial) for trial in front]
    baseline_entry = describe(baseline) if baseline is not None else None
    dominating = []
    if baseline_entry is not None:
        for entry in front_entries:
            no_worse = (
                entry["validation_accuracy"] >= baseline_entry["validation_accuracy"]
                and entry["params"] <= baseline_entry["params"]
            )
            better = (
                entry["validation_accuracy"] > baseline_entry["validation_accuracy"]
                or entry["params"] < baseline_entry["params"]
            )
            if no_worse and better:
                dominating.append(entry["trial"])
    return {
        "study": config.study_name,
        "storage": config.storage_shown,
        "backends": sorted({str(t.user_attrs.get("backend")) for t in completed}),
        "settings": search_space(config.max_epochs, config.train_samples, config.max_params),
        "population": config.population,
        "generations": config.generations,
        "completed_trials": len(completed),
        "pruned_too_large": sum("too_large" in t.user_attrs for t in trials),
        "stopped_early": sum("stopped_at_epoch" in t.user_attrs for t in trials),
        "hypervolume": _hypervolume_entry(completed, config.max_params),
        "trainers": {
            trainer: sum(t.user_attrs.get("trainer") == trainer for t in trials) for trainer in ("loop", "fit")
        },
        "fast_path": config.fast_path,
        "early_stop": config.early_stop,
        "minutes_this_run": minutes,
        "trial_minutes": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in completed) / 60,
        "front": front_entries,
        "baseline": baseline_entry,
        "baseline_absent": None if baseline_entry else baseline_absent(config.max_params),
        "dominating_baseline": dominating,
        "course_reference": COURSE_REFERENCE,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def baseline_absent(max_params: int) -> str:
    """Why a search's summary has no baseline: above `--max-params` it is never trained, else not yet."""
    course = COURSE_REFERENCE["params"]
    if max_params and max_params < course:
        return (
            f"the course network ({course:,} parameters) is above --max-params {max_params:,}: the search does not "
            "train it (the final step retrains it)"
        )
    return "no baseline trained yet: resume the search to train it (it is queued first)"


def _hypervolume_entry(completed, max_params: int) -> dict:
    reference = hypervolume_reference(max_params)
    area = hypervolume([(t.values[0], t.values[1]) for t in completed], reference)
    box = (1.0 - reference[0]) * reference[1]
    return {"reference": reference, "value": area, "share_of_box": area / box}


def format_summary(summary: dict) -> str:
    lines = [
        f"Pareto front of {summary['study']} ({summary['completed_trials']} trials, backends {', '.join(summary['backends'])}):"
    ]
    for entry in summary["front"]:
        test = f"{entry['test_accuracy']:.4f}" if "test_accuracy" in entry else "-"
        lines.append(
            f"  trial {entry['trial']:>3}: val {entry['validation_accuracy']:.4f}  test {test}  {entry['params']:>9,} params  {entry['genome']}"
        )
    base = summary["baseline"]
    if base:
        lines.append(
            f"  baseline (course net, same budget): val {base['validation_accuracy']:.4f}  test {base.get('test_accuracy', float('nan')):.4f}  {base['params']:,} params"
        )
    if base:
        dominating = ", ".join(f"trial {n}" for n in summary["dominating_baseline"]) or "none found"
        lines.append(f"  dominating the baseline: {dominating}")
    else:
        lines.append(f"  {summary['baseline_absent']}")
    lines.append(
        f"  trials per hour: {summary.get('trials_per_hour', 0):.0f} ({summary.get('trials_this_run', 0)} "
        f"trials in {summary['minutes_this_run']:.1f} min)"
    )
    final = summary.get("final")
    if final:
        lines.append(
            f"Retrained with seeds {final['seeds']} on all {final['train_images']:,} training images (test accuracy):"
        )
        for entry in [final["baseline"], *final["candidates"]]:
            verdict = (
                ""
                if "beats_baseline" not in entry
                else ("  beats the course network" if entry["beats_baseline"] else "")
            )
            lines.append(
                f"  {entry['label']:<15} {entry['params']:>9,} params  {entry['mean']:.4f} +- {entry['sd']:.4f}"
                f"  {entry['genome']}{verdict}"
            )
    return "\n".join(lines)
