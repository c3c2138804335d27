"""What a search found: the Pareto front, the hypervolume, counts of trials, the course baseline, and the text
that the command prints."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from multibackend.course import data
from multibackend.evolve import attributes
from multibackend.evolve.config import COURSE_REFERENCE, EvolveConfig
from multibackend.evolve.fitness import accuracy
from multibackend.evolve.genome import generation_of, genome_from_params, search_space
from multibackend.evolve.recovery import reused_genomes
from multibackend.results import JsonRecord
from multibackend.runtime.errors import CheckFailed

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


@dataclass(frozen=True)
class Summary(JsonRecord):
    """`results/evolve-<study>.json`: what a search found (`schemas/evolve.schema.json`).

    Attributes:
        front: The Pareto front, fewest parameters first: `{trial, generation, backend, validation_accuracy,
            params, genome, genome_params, test_accuracy}` (test accuracy where the trial's model was kept).
        baseline: The course network's trial in the same entry form (None when the search did not train it).
        baseline_absent: Why there is no baseline.
        dominating_baseline: Front trials at least as good as the baseline in both objectives, better in one.
        trials_this_run, stopped_this_run, reused_this_run: Counted in this invocation (a search resumes).
        trials_per_hour: Complete trials per hour of this invocation; judged_trials_per_hour also counts the
            trials stopped early as hopeless (each an evaluated genome).
        final: The final step's retraining (`final.final_comparison`), when it ran.
        report: The Markdown report's path.
    """

    SCHEMA: ClassVar[str] = "evolve"

    study: str
    storage: str
    backends: list[str]
    settings: dict
    population: int
    generations: int
    completed_trials: int
    pruned_too_large: int
    stopped_early: int
    hypervolume: dict
    trainers: dict[str, int]
    fast_path: bool
    early_stop: bool
    minutes_this_run: float
    trial_minutes: float
    front: list[dict]
    baseline: dict | None
    dominating_baseline: list[int]
    course_reference: dict
    created: str
    trials_this_run: int
    stopped_this_run: int
    trials_per_hour: float
    judged_trials_per_hour: float
    baseline_absent: str | None = None
    reused_this_run: int | None = None
    final: dict | None = None
    report: str | None = None


@dataclass(frozen=True)
class StudyAtStart:
    """The study's counts when this invocation began: what the summary counts as this run's is the difference."""

    completed: int
    stopped: int
    reused: int

    @classmethod
    def of(cls, trials) -> StudyAtStart:
        """The counts of `trials` (a study's, as Optuna lists them)."""
        from optuna.trial import TrialState

        return cls(
            sum(1 for t in trials if t.state == TrialState.COMPLETE),
            sum(attributes.STOPPED_AT_EPOCH in t.user_attrs for t in trials),
            reused_genomes(trials),
        )


def summarize(study, config: EvolveConfig, models_dir: Path, minutes: float, at_start: StudyAtStart) -> Summary:
    """The Pareto front with validation and (computed once, here) test accuracy, the baseline and the counts.

    Args:
        study: The Optuna study.
        config: The search's settings.
        models_dir: Where the trials' models were kept.
        minutes: How long this invocation searched.
        at_start: The study's counts when it began.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise CheckFailed("no trial finished within the budget; raise --budget")
    baseline = next((t for t in completed if t.user_attrs.get(attributes.BASELINE)), None)
    front = sorted(
        (t for t in study.best_trials if attributes.SAME_GENOME_AS not in t.user_attrs), key=lambda t: t.values[1]
    )
    describe = _describer(config, models_dir)
    front_entries = [describe(trial) for trial in front]
    baseline_entry = describe(baseline) if baseline is not None else None
    now = StudyAtStart.of(trials)
    this_run = now.completed - at_start.completed
    stopped_this_run = now.stopped - at_start.stopped
    hours = minutes / 60
    return Summary(
        study=config.study_name,
        storage=config.storage_shown,
        backends=sorted({str(t.user_attrs.get(attributes.BACKEND)) for t in completed}),
        settings=search_space(config.max_epochs, config.train_samples, config.max_params),
        population=config.population,
        generations=config.generations,
        completed_trials=len(completed),
        pruned_too_large=sum(attributes.TOO_LARGE in t.user_attrs for t in trials),
        stopped_early=now.stopped,
        hypervolume=_hypervolume_entry(completed, config.max_params),
        trainers={
            trainer: sum(t.user_attrs.get(attributes.TRAINER) == trainer for t in trials) for trainer in ("loop", "fit")
        },
        fast_path=config.fast_path,
        early_stop=config.early_stop,
        minutes_this_run=minutes,
        trial_minutes=sum((t.datetime_complete - t.datetime_start).total_seconds() for t in completed) / 60,
        front=front_entries,
        baseline=baseline_entry,
        baseline_absent=None if baseline_entry else baseline_absent(config.max_params),
        dominating_baseline=dominating(front_entries, baseline_entry),
        course_reference=COURSE_REFERENCE,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        trials_this_run=this_run,
        stopped_this_run=stopped_this_run,
        reused_this_run=now.reused - at_start.reused,
        trials_per_hour=this_run / hours if hours > 0 else 0.0,
        judged_trials_per_hour=(this_run + stopped_this_run) / hours if hours > 0 else 0.0,
    )


def _describer(config: EvolveConfig, models_dir: Path):
    """A function that turns a trial into its summary entry, with its test accuracy where its model was kept."""
    import keras

    import multibackend.models  # noqa: F401 - registers the layers of the saved trials (RandomShift) for load_model

    _, (x_test, y_test) = data.load_mnist()  # the only read of the test set
    x_test = data.preprocess_images(x_test)

    def describe(trial) -> dict:
        entry = {
            "trial": trial.number,
            "generation": generation_of(trial, config.population),
            "backend": trial.user_attrs.get(attributes.BACKEND),
            "validation_accuracy": trial.values[0],
            "params": int(trial.values[1]),
            "genome": genome_from_params(trial.params).describe(),
            "genome_params": trial.params,
        }
        path = models_dir / f"trial-{trial.number}.keras"
        if path.is_file():
            entry["test_accuracy"] = accuracy(keras.saving.load_model(path), x_test, y_test)
        return entry

    return describe


def dominating(front: list[dict], baseline: dict | None) -> list[int]:
    """The front's trials at least as good as `baseline` in both objectives and better in one."""
    if baseline is None:
        return []
    found = []
    for entry in front:
        accuracy_, params = entry["validation_accuracy"], entry["params"]
        no_worse = accuracy_ >= baseline["validation_accuracy"] and params <= baseline["params"]
        better = accuracy_ > baseline["validation_accuracy"] or params < baseline["params"]
        if no_worse and better:
            found.append(entry["trial"])
    return found


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


def format_summary(summary: Summary) -> str:
    """The summary as the command prints it."""
    lines = [
        f"Pareto front of {summary.study} ({summary.completed_trials} trials, backends {', '.join(summary.backends)}):"
    ]
    for entry in summary.front:
        test = f"{entry['test_accuracy']:.4f}" if "test_accuracy" in entry else "-"
        lines.append(
            f"  trial {entry['trial']:>3}: val {entry['validation_accuracy']:.4f}  test {test}  {entry['params']:>9,} params  {entry['genome']}"
        )
    base = summary.baseline
    if base:
        lines.append(
            f"  baseline (course net, same budget): val {base['validation_accuracy']:.4f}  test {base.get('test_accuracy', float('nan')):.4f}  {base['params']:,} params"
        )
    if base:
        found = ", ".join(f"trial {n}" for n in summary.dominating_baseline) or "none found"
        lines.append(f"  dominating the baseline: {found}")
    else:
        lines.append(f"  {summary.baseline_absent}")
    lines.append(
        f"  trials per hour: {summary.trials_per_hour:.0f} ({summary.trials_this_run} "
        f"trials in {summary.minutes_this_run:.1f} min)"
    )
    final = summary.final
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
