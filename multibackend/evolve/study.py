"""`multibackend evolve`: an evolutionary (NSGA-II) search over dense MNIST networks, on any backend.

Two objectives: validation accuracy (up) and parameter count (down), so the
result is a Pareto front. Validation is a fixed held-out slice of the 60,000
training images; the test set is read only once, after the search, for the
final front. Optuna's storage (SQLite in results/ by default) makes the search
resumable and lets several processes or machines share one study.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multibackend.course import data
from multibackend.evolve.fitness import train_genome
from multibackend.evolve.genome import (
    course_baseline,
    generation_of,
    genome_from_params,
    search_space,
    suggest_genome,
)
from multibackend.results import write_json_atomic
from multibackend.runtime.children import end_child, start_child
from multibackend.runtime.errors import CheckFailed, UsageError

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
    "quick": {"generations": 4, "population": 8, "budget_minutes": 14.0, "max_epochs": 3, "train_samples": 20_000,
              "max_params": 0, "final_seeds": 0},
    "full": {"generations": 16, "population": 16, "budget_minutes": 60.0, "max_epochs": 20, "train_samples": 50_000,
             "max_params": COURSE_REFERENCE["params"], "final_seeds": 3},
}  # fmt: skip


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

    @property
    def study_name(self) -> str:
        return self.study or f"mnist-dense-{self.backend}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.results_dir) / 'evolve.db'}"

    @property
    def total_trials(self) -> int:
        return self.generations * self.population


def validate(config: EvolveConfig) -> None:
    """Rejects impossible settings with one clear message."""
    for name in ("generations", "population", "workers", "max_epochs", "train_samples", "final_candidates"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if not isinstance(config.max_params, int) or config.max_params < 0:
        raise UsageError(f"--max-params must be 0 (no limit) or a positive integer, got {config.max_params!r}")
    if not isinstance(config.final_seeds, int) or config.final_seeds < 0 or config.final_seeds == 1:
        raise UsageError(f"--final-seeds must be 0 (no final step) or at least 2, got {config.final_seeds!r}")
    if config.population < 2:
        raise UsageError("--population must be at least 2 for NSGA-II")
    if not config.budget_minutes > 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {config.budget_minutes!r}")
    if config.train_samples > 60_000 - VALIDATION_SAMPLES:
        raise UsageError(f"--train-samples must be at most {60_000 - VALIDATION_SAMPLES:,} (the rest is validation)")
    if config.storage_url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        raise UsageError(f"--storage {config.storage_url!r}: an in-memory database is lost at exit and cannot be "
                         "shared with workers; give a file, e.g. sqlite:///results/evolve.db")  # fmt: skip
    if not config.storage_url.startswith(STORAGE_SCHEMES):
        raise UsageError(f"--storage {config.storage_url!r}: unknown scheme (use one of: {', '.join(STORAGE_SCHEMES)})")


def make_storage(url: str):
    """An Optuna storage for `url`; RDB storages get heartbeats so a killed trial is retried."""
    import warnings

    import optuna

    # Heartbeats and the retry callback are marked experimental; they are what makes resuming safe.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:///") - 1 :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=5, grace_period=15,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds
        raise UsageError(f"--storage {url!r}: cannot open ({str(error).splitlines()[0]})") from None


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


def open_study(config: EvolveConfig):
    """Creates or resumes the study, refusing one made with other settings; gives it this process's sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=config.study_name, storage=make_storage(config.storage_url), load_if_exists=True,
        directions=["maximize", "minimize"],
    )  # fmt: skip
    settings = study_settings(config)
    stored = study.user_attrs.get("settings")
    if stored is None and study.user_attrs.get("search_space") is not None:  # a study of an earlier version
        stored = {"search_space": study.user_attrs["search_space"], "population": study.user_attrs.get("population")}
        settings = {key: settings[key] for key in stored}
    if stored is None:
        study.set_user_attr("settings", settings)
        study.enqueue_trial(course_baseline(config.max_epochs).to_params(), user_attrs={"baseline": True})
    elif stored != settings:
        differs = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        if "search_space" in differs:
            space, old = settings["search_space"], stored.get("search_space") or {}
            differs = [key for key in differs if key != "search_space"] + sorted(
                key for key in set(old) | set(space) if old.get(key) != space.get(key))  # fmt: skip
        raise UsageError(
            f"study {config.study_name!r} was created with other settings (differs in: {', '.join(differs)}); "
            "use the same settings or a new --study name"
        )
    study.sampler = optuna.samplers.NSGAIISampler(
        population_size=config.population, seed=sampler_seed(config.seed, len(study.trials))
    )
    return study


def search_data(train_samples: int) -> dict[str, np.ndarray]:
    """Training subset and the fixed validation slice, both from the 60,000 training images only."""
    (x_train, y_train), _ = data.load_mnist()
    x_train = data.preprocess_images(x_train)
    split = len(x_train) - VALIDATION_SAMPLES
    return {
        "x_train": x_train[:train_samples], "y_train": y_train[:train_samples],
        "x_val": x_train[split:], "y_val": y_train[split:],
    }  # fmt: skip


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
        trial.set_user_attr("backend", config.backend)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        wait_for_a_free_place(trial, config.total_trials, deadline)
        genome = suggest_genome(trial, config.max_epochs)
        if config.max_params and genome.params > config.max_params:
            trial.set_user_attr("too_large", genome.params)
            raise optuna.TrialPruned(f"{genome.params:,} parameters, more than --max-params {config.max_params:,}")
        others = [t for t in trial.study.get_trials(deepcopy=False) if t.number != trial.number]
        same = next((t for t in others if t.state.name == "COMPLETE" and t.params == trial.params), None)
        if same is not None:
            trial.set_user_attr("same_genome_as", same.number)
            return tuple(same.values)
        started = time.perf_counter()
        model = train_genome(genome, arrays, config.seed + trial.number)
        accuracy = float(model.evaluate(arrays["x_val"], arrays["y_val"], verbose=0, return_dict=True)["accuracy"])
        trial.set_user_attr("seconds", time.perf_counter() - started)
        model.save(models_dir / f"trial-{trial.number}.keras")
        return accuracy, float(genome.params)

    return objective


def wait_for_a_free_place(trial, total: int, deadline: float, poll_seconds: float = 1.0) -> None:
    """Returns when `trial` may train: fewer than `total` trials are finished or ahead of it.

    Ahead of it are the running trials that train, and those that wait with a higher priority:
    a retried trial (a killed worker's genome) before a new one, then the older one. Two waiting
    trials never wait for each other, and a killed trial's genome is trained before new ones.

    Raises:
        optuna.TrialPruned: when the study has its trials (the search is stopped), when a trial
            is queued (a killed worker's, to be retried: this worker's next trial takes it), or at
            the deadline.
    """
    import optuna
    from optuna.trial import TrialState

    def priority(t) -> tuple[int, int]:
        return (0 if "failed_trial" in t.system_attrs else 1, t.number)

    study = trial.study
    trial.set_user_attr("place", "waiting")
    while True:
        trials = study.get_trials(deepcopy=False)
        mine = priority(next(t for t in trials if t.number == trial.number))
        others = [t for t in trials if t.number != trial.number]
        complete = sum(t.state == TrialState.COMPLETE for t in others)
        if complete >= total or time.monotonic() > deadline:
            study.stop()
            raise optuna.TrialPruned("the study has its trials" if complete >= total else "the budget is spent")
        if any(t.state == TrialState.WAITING for t in others):
            raise optuna.TrialPruned("a queued trial goes first; this worker's next trial takes it")
        ahead = sum(t.state == TrialState.RUNNING and (t.user_attrs.get("place") != "waiting" or priority(t) < mine)
                    for t in others)  # fmt: skip
        if complete + ahead < total:
            trial.set_user_attr("place", "training")
            return
        time.sleep(poll_seconds)
        optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed and queued again


def progress_callback(total: int, population: int, print_line=print):
    def callback(study, trial) -> None:
        from optuna.trial import TrialState

        done = sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)
        bar = "#" * round(20 * min(done, total) / total)
        if trial.state != TrialState.COMPLETE:
            print_line(f"[{bar:<20}] {done}/{total} trial {trial.number}: {trial.state.name.lower()}")
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
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    validate(config)
    study = open_study(config)
    models_dir = Path(config.results_dir) / "evolve-models" / config.study_name
    models_dir.mkdir(parents=True, exist_ok=True)
    done = sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)
    print_line(
        f"study {config.study_name!r} in {config.storage_url}: {done} of {config.total_trials} trials done, "
        f"backend {config.backend}, budget {config.budget_minutes:g} min"
    )
    started, done_at_start = time.perf_counter(), done
    helpers = [_start_helper(config) for _ in range(config.workers - 1)]
    try:
        if done < config.total_trials:
            arrays = search_data(config.train_samples)
            study.optimize(
                make_objective(config, arrays, models_dir),
                timeout=config.budget_minutes * 60,
                callbacks=[MaxTrialsCallback(config.total_trials, states=(TrialState.COMPLETE,)),
                           progress_callback(config.total_trials, config.population, print_line)],
                catch=(ValueError, FloatingPointError),
            )  # fmt: skip
        for helper in helpers:
            helper.wait()
    finally:
        for helper in helpers:  # on an error or Ctrl-C here, no helper trains on alone
            end_child(helper)
    minutes = (time.perf_counter() - started) / 60
    summary = summarize(study, config, models_dir, minutes)
    summary["trials_this_run"] = summary["completed_trials"] - done_at_start
    summary["trials_per_hour"] = summary["trials_this_run"] / minutes * 60 if minutes > 0 else 0.0
    if config.final_seeds:
        from multibackend.evolve.final import final_comparison

        print_line(f"final: the course network and the best smaller front networks, {config.final_seeds} seeds each, "
                   "all 60,000 training images")  # fmt: skip
        summary["final"] = final_comparison(summary["front"], config.final_seeds, config.final_candidates, print_line)
    write_json_atomic(Path(config.results_dir) / f"evolve-{config.study_name}.json", summary)
    from multibackend.evolve.report import write_evolve_report

    summary["report"] = str(write_evolve_report(study, summary, Path(config.report_dir), config.population))
    return summary


def _start_helper(config: EvolveConfig):
    """Another worker process on the same study (the storage coordinates them)."""
    command = [
        sys.executable, "-m", "multibackend.evolve.worker", "--backend", config.backend, "--storage", config.storage_url,
        "--study", config.study_name, "--population", str(config.population), "--generations", str(config.generations),
        "--budget", str(config.budget_minutes), "--seed", str(config.seed), "--max-epochs", str(config.max_epochs),
        "--train-samples", str(config.train_samples), "--max-params", str(config.max_params),
        "--results", config.results_dir,
    ]  # fmt: skip
    return start_child(command)


def summarize(study, config: EvolveConfig, models_dir: Path, minutes: float) -> dict:
    """The Pareto front with validation and (computed once, here) test accuracy, and the baseline."""
    import keras
    from optuna.trial import TrialState

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
            "trial": trial.number, "generation": generation_of(trial, config.population),
            "backend": trial.user_attrs.get("backend"), "validation_accuracy": trial.values[0],
            "params": int(trial.values[1]), "genome": genome.describe(), "genome_params": trial.params,
        }  # fmt: skip
        path = models_dir / f"trial-{trial.number}.keras"
        if path.is_file():
            model = keras.saving.load_model(path)
            entry["test_accuracy"] = float(model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"])
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
        "storage": config.storage_url,
        "backends": sorted({str(t.user_attrs.get("backend")) for t in completed}),
        "settings": search_space(config.max_epochs, config.train_samples, config.max_params),
        "population": config.population,
        "generations": config.generations,
        "completed_trials": len(completed),
        "pruned_too_large": sum("too_large" in t.user_attrs for t in trials),
        "minutes_this_run": minutes,
        "trial_minutes": sum((t.datetime_complete - t.datetime_start).total_seconds() for t in completed) / 60,
        "front": front_entries,
        "baseline": baseline_entry,
        "dominating_baseline": dominating,
        "course_reference": COURSE_REFERENCE,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


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
    lines.append(
        "  dominating the baseline: "
        + (", ".join(f"trial {n}" for n in summary["dominating_baseline"]) or "none found")
    )
    lines.append(f"  trials per hour: {summary.get('trials_per_hour', 0):.0f} ({summary.get('trials_this_run', 0)} "
                 f"trials in {summary['minutes_this_run']:.1f} min)")  # fmt: skip
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
            lines.append(f"  {entry['label']:<15} {entry['params']:>9,} params  {entry['mean']:.4f} +- {entry['sd']:.4f}"
                         f"  {entry['genome']}{verdict}")  # fmt: skip
    return "\n".join(lines)
