"""What a search found: the Pareto front, the hypervolume, counts of trials, the course baseline, and the text
that the command prints."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from multibackend.course import data
from multibackend.evolve.config import COURSE_REFERENCE, EvolveConfig
from multibackend.evolve.fitness import accuracy
from multibackend.evolve.genome import generation_of, genome_from_params, search_space
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
