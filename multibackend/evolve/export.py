"""The final step's networks as files a user can take: per network a standalone Keras script that trains it exactly as
the final step did (only `keras` and NumPy), and the model the final step trained with its first seed."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

from multibackend.evolve.genome import Genome
from multibackend.runtime import templating


def file_stem(label: str) -> str:
    """A file name for a final table's row: `course network` -> `course-network`, `trial 385` -> `trial-385`."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()


def winner_script(
    genome: Genome,
    *,
    label: str,
    study: str,
    backend: str,
    seeds: list[int],
    accuracies: list[float],
    filename: str,
    model_file: str,
) -> str:
    """The text of a standalone Keras script that builds, trains and scores `genome` as the final step does.

    The script's code is the project's own where it can be: `GivenValues` and `RandomShift` (`multibackend.models`),
    the NumPy initial weights, the images' preprocessing and the accuracy are copied by their source, and the layers
    are built in `build_dense`'s order, so the random draws (weights in NumPy, then the dropouts', the shifts' and
    `fit`'s) come in the same order.

    Args:
        genome: The network and how it trains.
        label: Its row in the final table (`trial 385`, `course network`).
        study: The search's study name.
        backend: The Keras backend it was trained on (the script's default).
        seeds: The final step's seeds; the first is the script's default.
        accuracies: The final step's test accuracy per seed, quoted in the script.
        filename: The script's own file name, for its usage lines.
        model_file: The file name of the final step's trained model (first seed).

    Returns:
        The script's source.
    """
    import keras

    from multibackend.course.data import preprocess_images
    from multibackend.course.networks import glorot_uniform_weights
    from multibackend.evolve.fitness import accuracy
    from multibackend.models import GivenValues, RandomShift

    context = {
        "label": label,
        "study": study,
        "genome": genome,
        "backend": backend,
        "seeds": seeds,
        "accuracies": accuracies,
        "filename": filename,
        "model_file": model_file,
        "keras_version": keras.__version__,
        "py": {name: python_literal(value) for name, value in {"backend": backend, **_settings(genome)}.items()},
        "given_values_source": inspect.getsource(GivenValues),
        "random_shift_source": inspect.getsource(RandomShift),
        "initial_weights_source": inspect.getsource(glorot_uniform_weights),
        "preprocess_source": inspect.getsource(preprocess_images),
        "accuracy_source": inspect.getsource(accuracy),
    }
    return templating.render("multibackend.evolve", "winner.py.j2", context)


def python_literal(value) -> str:
    """`value` (numbers, strings, booleans, None, and lists and tuples of them) as Python source in the style the
    project formats its code (strings in double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        items = ", ".join(python_literal(item) for item in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value)


def _settings(genome: Genome) -> dict:
    """The genome as the script's constants (their values; the script writes them as Python literals)."""
    from multibackend.models import OPTIMIZERS, shift_pixels

    return {
        "hidden": [(units, genome.activation) for units in genome.units],
        "dropout": genome.dropout,
        "input_dropout": genome.input_dropout,
        "batch_norm": genome.batch_norm,
        "shift_pixels": shift_pixels(genome.shift, 28 * 28),
        "optimizer": OPTIMIZERS[genome.optimizer].__name__,
        "learning_rate": genome.learning_rate,
        "cosine": genome.schedule == "cosine",
        "weight_decay": genome.weight_decay if genome.optimizer == "adamw" else None,
        "label_smoothing": genome.label_smoothing,
        "batch_size": genome.batch_size,
        "epochs": genome.epochs,
    }


def export_network(model, genome: Genome, out_dir: Path, **script_settings) -> dict[str, str]:
    """Writes the network's script and the final step's trained `model` into `out_dir`.

    Args:
        model: The network trained with the first seed.
        genome: Its genome.
        out_dir: The folder (made when missing).
        **script_settings: `label`, `study`, `backend`, `seeds`, `accuracies` for `winner_script`.

    Returns:
        The two files' names in `out_dir`: `script` and `model`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(script_settings["label"])
    script, model_file = f"{stem}.py", f"{stem}.keras"
    model.save(out_dir / model_file)
    text = winner_script(genome, filename=script, model_file=model_file, **script_settings)
    (out_dir / script).write_text(text)
    return {"script": script, "model": model_file}
