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
import os
import time
from pathlib import Path

import numpy as np

from multibackend.evolve.config import VALIDATION_SAMPLES, EvolveConfig, validate
from multibackend.evolve.genome import course_baseline, search_space
from multibackend.evolve.objective import Objective, progress_callback, search_data
from multibackend.evolve.recovery import baseline_trained, requeue_owed_genomes
from multibackend.evolve.storage import make_storage, storage_writes
from multibackend.evolve.summary import StudyAtStart, Summary, summarize
from multibackend.results import write_json_atomic
from multibackend.runtime.children import end_child
from multibackend.runtime.cores import core_shares, pinned_to_cores
from multibackend.runtime.errors import UsageError
from multibackend.runtime.jobs import JobRequest, start_job


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
    if _stored_settings(study) is None:
        study.set_user_attr("settings", study_settings(config))
        if baseline_trained(config):
            study.enqueue_trial(course_baseline(config.max_epochs).to_params(), user_attrs={"baseline": True})
    else:
        _refuse_other_settings(config, study)
        requeue_owed_genomes(study, config)
    study.sampler = optuna.samplers.NSGAIISampler(
        population_size=config.population, seed=sampler_seed(config.seed, len(study.trials))
    )
    return study


def check_study_settings(config: EvolveConfig) -> None:
    """Refuses a study stored with other settings before the backend is imported: a refusal then takes a second,
    not the backend's import. A study that does not exist yet passes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage_url))
    except KeyError:
        return
    _refuse_other_settings(config, study)


def _stored_settings(study) -> dict | None:
    """The settings the study was made with; None for a new study.

    An earlier version kept only the search space and the population, as attributes of their own: those two are
    then all there is to compare.
    """
    if "settings" in study.user_attrs:
        return study.user_attrs["settings"]
    if study.user_attrs.get("search_space") is None:
        return None
    return {"search_space": study.user_attrs["search_space"], "population": study.user_attrs.get("population")}


def _refuse_other_settings(config: EvolveConfig, study) -> None:
    """Raises a one-line error naming each setting in which `config` differs from those stored in `study` (in an
    earlier version's study: only those it stored). A new study has none to differ from."""
    stored = _stored_settings(study)
    if stored is None:
        return
    settings = study_settings(config)
    if "settings" not in study.user_attrs:  # an earlier version's study
        settings = {key: settings[key] for key in stored}
    if stored == settings:
        return
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


def run_search(config: EvolveConfig, print_line=print) -> Summary:
    """Runs (or resumes) the search until the trial count or the budget is reached, then reports.

    Returns:
        The summary written to `results/evolve-<study>.json`, with the report's path.
    """
    validate(config)
    study = open_study(config)
    models_dir = Path(config.results_dir) / "evolve-models" / config.study_name
    models_dir.mkdir(parents=True, exist_ok=True)
    at_start = StudyAtStart.of(study.get_trials(deepcopy=False))
    print_line(
        f"study {config.study_name!r} in {config.storage_shown}: {at_start.completed} of {config.total_trials} "
        f"trials done, backend {config.backend}, budget {config.budget_minutes:g} min"
    )
    started = time.perf_counter()
    with helper_workers(config) as helpers:
        if at_start.completed < config.total_trials:
            with storage_writes(config.storage_url):
                optimize(
                    study, config, models_dir, progress_callback(config.total_trials, config.population, print_line)
                )
        for helper in helpers:
            helper.wait()
    summary = summarize(study, config, models_dir, (time.perf_counter() - started) / 60, at_start)
    if config.final_seeds:
        from multibackend.evolve.final import final_comparison

        print_line(
            f"final: the course network and the best smaller front networks, {config.final_seeds} seeds each, "
            "all 60,000 training images"
        )
        final = final_comparison(
            summary.front,
            config.final_seeds,
            config.final_candidates,
            print_line,
            export_dir=Path(config.report_dir) / f"evolve-{config.study_name}-networks",
            study=config.study_name,
        )
        summary = dataclasses.replace(summary, final=final)
    write_json_atomic(Path(config.results_dir) / f"evolve-{config.study_name}.json", checked_summary(summary))
    from multibackend.evolve.report import write_evolve_report

    report = write_evolve_report(study, summary, Path(config.report_dir), config.population)
    return dataclasses.replace(summary, report=str(report))


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
    with storage_writes(config.storage_url):
        optimize(study, config, models_dir)
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)


def optimize(study, config: EvolveConfig, models_dir: Path, *callbacks) -> None:
    """Trains the study's trials in this process until it has them all or the budget is spent."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study.optimize(
        Objective(config, search_data(config.train_samples), models_dir),
        timeout=config.budget_minutes * 60,
        callbacks=[MaxTrialsCallback(config.total_trials, states=(TrialState.COMPLETE,)), *callbacks],
        catch=(ValueError, FloatingPointError),
    )


def join_study(config: EvolveConfig) -> int:
    """`multibackend evolve --join`: this process and `config.workers - 1` helper jobs work on the study.

    Returns:
        The study's complete trials when they all stopped.
    """
    with helper_workers(config) as helpers:
        work_on_study(config)
        for helper in helpers:
            helper.wait()
    return complete_trials(config)


def complete_trials(config: EvolveConfig) -> int:
    """The study's complete trials."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=config.study_name, storage=make_storage(config.storage_url))
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE)


def checked_summary(summary: Summary) -> dict:
    """`summary`'s file after a check against its contract (`schemas/evolve.schema.json`), as strict JSON.

    Raises:
        ResultsError: naming the field that does not fit (a bug here, not bad input).
    """
    from multibackend import schemas
    from multibackend.results import strict_json

    return schemas.validate(Summary.SCHEMA, strict_json(summary.to_json()))


@contextlib.contextmanager
def helper_workers(config: EvolveConfig):
    """`config.workers - 1` more worker processes on the same study (the storage coordinates them), each a job with
    the search's backend, for the block's length: on an error or a signal in it, no helper trains on alone. Where the
    machine has a core for each, every worker runs on cores of its own, this process on the first share
    (`runtime.cores.core_shares`: XLA's CPU threads are limited by nothing else).

    Yields:
        The helpers' processes.
    """
    helper = dataclasses.replace(config, workers=1, final_seeds=0)
    shares = core_shares(config.workers) or [()] * config.workers
    helpers = []
    with pinned_to_cores(shares[0]):
        try:
            for cores in shares[1:]:
                request = JobRequest(config.backend, "multibackend.evolve.study:work_on_study", helper, cores=cores)
                helpers.append(start_job(request))
            yield helpers
        finally:
            for process in helpers:
                end_child(process)
