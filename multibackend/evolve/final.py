"""The final step of a search: the front's best networks and the course's network, retrained with several seeds.

The search selects on validation only. Here the chosen networks and the
course baseline are each trained from scratch with the same seeds on all
60,000 training images and scored on the test set, so that "beats the course
network" is a statement about means over seeds, not about one lucky start.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from multibackend.course import data
from multibackend.evolve.export import export_network
from multibackend.evolve.fitness import accuracy, train_genome
from multibackend.evolve.genome import Genome, course_baseline, genome_from_params

COURSE_PARAMS = 407_050


# The size classes a final step looks for a winner in: a tenth of a million, a fifth, the course network's size.
SIZE_CLASSES = (100_000, 200_000, COURSE_PARAMS)


def final_candidates(front: list[dict], limit: int) -> list[dict]:
    """The front's networks smaller than the course's to retrain: the most accurate one (on validation) of each
    size class (`SIZE_CLASSES`, smallest first), then the next most accurate ones, up to `limit`.

    Args:
        front: The summary's front entries.
        limit: How many to take at most.

    Returns:
        Up to `limit` front entries, the size classes' winners first.
    """
    smaller = sorted(
        (entry for entry in front if entry["params"] < COURSE_PARAMS), key=lambda entry: -entry["validation_accuracy"]
    )
    chosen: list[dict] = []
    for bound in SIZE_CLASSES:
        best = next((entry for entry in smaller if entry["params"] <= bound and entry not in chosen), None)
        if best is not None:
            chosen.append(best)
    chosen += [entry for entry in smaller if entry not in chosen]
    return chosen[:limit]


def seeded_test_accuracies(
    genome: Genome, seeds: list[int], arrays: dict, print_line=print
) -> tuple[list[float], object]:
    """Trains `genome` once per seed on `arrays`' training images.

    Returns:
        The test accuracy of each seed, and the model trained with the first.
    """
    accuracies, first = [], None
    for seed in seeds:
        model, _ = train_genome(genome, arrays, seed)  # Keras fit, every epoch: the network's true score
        if first is None:
            first = model
        accuracies.append(accuracy(model, arrays["x_test"], arrays["y_test"]))
        print_line(f"  final: {genome.describe()} seed {seed}: test {accuracies[-1]:.4f}")
    return accuracies, first


def _scored(label: str, genome: Genome, accuracies: list[float], trial: int | None = None) -> dict:
    return {
        "label": label,
        "trial": trial,
        "genome": genome.describe(),
        "params": genome.params,
        "test_accuracies": accuracies,
        "mean": statistics.fmean(accuracies),
        "sd": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
    }


def _final_arrays(train_images: int) -> dict:
    """The first `train_images` training images and the 10,000 test images, preprocessed as the course does."""
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    return {
        "x_train": data.preprocess_images(x_train[:train_images]),
        "y_train": y_train[:train_images],
        "x_test": data.preprocess_images(x_test),
        "y_test": y_test,
    }


def final_comparison(
    front: list[dict],
    seeds: int,
    limit: int,
    print_line=print,
    *,
    export_dir: Path | None = None,
    study: str = "",
    train_images: int = 60_000,
    baseline_epochs: int = 20,
) -> dict:
    """Retrains the course network (its 20 epochs) and the best smaller front networks, `seeds` seeds each.

    Args:
        front: The summary's front entries (with `genome_params`).
        seeds: Seeds per network (0, 1, ..., seeds - 1: the same for every network).
        limit: How many front networks to retrain.
        print_line: Progress output.
        export_dir: Where each network's standalone script and first-seed model go (`export.export_network`);
            None: nowhere.
        study: The search's study name, quoted in the scripts.
        train_images: Training images (all 60,000 but in the tests).
        baseline_epochs: The course network's epochs (its 20 but in the tests).

    Returns:
        The baseline and candidates with their test accuracies, mean and sd, which beat the baseline's mean, and
        their exported files (`files`: names in `export_dir`, named by `networks_dir`).
    """
    arrays = _final_arrays(train_images)
    seed_list = list(range(seeds))

    def retrained(label: str, genome: Genome, trial: int | None = None) -> dict:
        accuracies, model = seeded_test_accuracies(genome, seed_list, arrays, print_line)
        scored = _scored(label, genome, accuracies, trial)
        if export_dir is not None:
            import keras

            scored["files"] = export_network(
                model,
                genome,
                export_dir,
                label=label,
                study=study,
                backend=keras.backend.backend(),
                seeds=seed_list,
                accuracies=accuracies,
            )
        return scored

    baseline = retrained("course network", course_baseline(baseline_epochs))
    candidates = []
    for entry in final_candidates(front, limit):
        scored = retrained(f"trial {entry['trial']}", genome_from_params(entry["genome_params"]), entry["trial"])
        scored["beats_baseline"] = scored["mean"] > baseline["mean"]
        candidates.append(scored)
    final = {"seeds": seed_list, "train_images": len(arrays["x_train"]), "baseline": baseline, "candidates": candidates}
    if export_dir is not None:
        final["networks_dir"] = export_dir.name
    return final
