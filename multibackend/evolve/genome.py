"""The evolutionary search's genome: a dense MNIST network and how it is trained.

Pure Python (no Keras): the mapping from an Optuna trial to a network and the
parameter count by the course's formula can be used before a backend exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from multibackend.course.networks import DenseNetworkSpec
from multibackend.evolve import attributes

# The search space's version: a study made with another one is refused (its genomes mean other networks).
SPACE_VERSION = 3
MAX_LAYERS = 4
UNITS = (16, 1024)
ACTIVATIONS = ("relu", "tanh", "elu", "sigmoid")
OPTIMIZER_NAMES = ("rmsprop", "adam", "adamw", "sgd")
LEARNING_RATE = (1e-4, 1e-1)
BATCH_SIZE = (32, 512)
DROPOUT = (0.0, 0.5)
# How the learning rate moves over the trial's epochs: kept, or cosine-decayed to 0 by the last step.
SCHEDULES = ("constant", "cosine")
# What small dense networks need (space version 3), each a Keras layer or option that works on every backend.
INPUT_DROPOUT = (0.0, 0.3)  # a Dropout on the 784 pixels
BATCH_NORM = (False, True)  # a BatchNormalization after each hidden layer
WEIGHT_DECAY = (1e-5, 1e-1)  # AdamW's decoupled weight decay (drawn for every genome, used by adamw)
LABEL_SMOOTHING = (0.0, 0.05, 0.1)  # of the crossentropy
# Random shifts of the digits during training (models.RandomShift, a fraction of 28 pixels: up to 1 or 3;
# inactive at test time).
SHIFTS = (0.0, 0.05, 0.1)


@dataclass(frozen=True)
class Genome:
    """One candidate: hidden layer sizes, activation, optimizer and training settings."""

    units: tuple[int, ...]
    activation: str
    optimizer: str
    learning_rate: float
    batch_size: int
    dropout: float
    epochs: int
    schedule: str = "constant"
    input_dropout: float = 0.0
    batch_norm: bool = False
    weight_decay: float = 0.004  # Keras AdamW's default; only adamw uses it
    label_smoothing: float = 0.0
    shift: float = 0.0

    def network(self) -> DenseNetworkSpec:
        """The network: 784 inputs, the hidden layers, a 10-way softmax."""
        return DenseNetworkSpec(
            28 * 28, tuple((units, self.activation) for units in self.units), (10, "softmax"), self.dropout
        )

    @property
    def params(self) -> int:
        """The model's parameters: the course's formula, plus a batch normalization's 4 per hidden unit (its scale
        and offset, and the moving mean and variance it keeps for test time). Dropout and shifts add none."""
        normalization = 4 * sum(self.units) if self.batch_norm else 0
        return self.network().expected_params + normalization

    def describe(self) -> str:
        layers = "-".join(str(units) for units in self.units)
        extras = [
            *(["cosine"] if self.schedule == "cosine" else []),
            *([f"wd {self.weight_decay:.1g}"] if self.optimizer == "adamw" else []),
            *([f"input dropout {self.input_dropout:.2f}"] if self.input_dropout else []),
            *(["batchnorm"] if self.batch_norm else []),
            *([f"label smoothing {self.label_smoothing:g}"] if self.label_smoothing else []),
            *([f"shift {self.shift:g}"] if self.shift else []),
        ]
        return (
            f"{layers} {self.activation}, {self.optimizer} lr {self.learning_rate:.2g}, batch {self.batch_size}, "
            f"dropout {self.dropout:.2f}, {self.epochs} ep" + "".join(f", {extra}" for extra in extras)
        )

    def to_params(self) -> dict:
        """The Optuna parameters that encode this genome (for `enqueue_trial`)."""
        params = {"n_layers": len(self.units)}
        params.update({f"units_{index + 1}": units for index, units in enumerate(self.units)})
        params.update({k: v for k, v in asdict(self).items() if k != "units"})
        return params


def course_baseline(epochs: int) -> Genome:
    """The course's network as a point of the search space: 512 relu, rmsprop at 1e-3, batch 128."""
    return Genome((512,), "relu", "rmsprop", 1e-3, 128, 0.0, epochs)


def first_layer_units(max_params: int) -> tuple[int, int]:
    """The first hidden layer's range: the whole `UNITS`, or, under `max_params`, no wider than a one-layer
    network of `max_params` parameters (the widest first layer that can be; deeper genomes above it are pruned)."""
    if not max_params:
        return UNITS
    widest = (max_params - 10) // (28 * 28 + 1 + 10)  # (784 + 1) * u + (u + 1) * 10 <= max_params
    return UNITS[0], max(UNITS[0], min(UNITS[1], widest))


def suggest_genome(trial, max_epochs: int, max_params: int = 0) -> Genome:
    """Draws a genome from an Optuna trial.

    Args:
        trial: An `optuna.Trial` (or anything with its `suggest_*` methods).
        max_epochs: Upper bound of the epochs gene.
        max_params: The search's size bound (0: none): it bounds the first layer's width.

    Returns:
        The genome.
    """
    n_layers = trial.suggest_int("n_layers", 1, MAX_LAYERS)
    ranges = [first_layer_units(max_params), *([UNITS] * (n_layers - 1))]
    units = tuple(trial.suggest_int(f"units_{index + 1}", *ranges[index], log=True) for index in range(n_layers))
    return Genome(
        units=units,
        activation=trial.suggest_categorical("activation", ACTIVATIONS),
        optimizer=trial.suggest_categorical("optimizer", OPTIMIZER_NAMES),
        learning_rate=trial.suggest_float("learning_rate", *LEARNING_RATE, log=True),
        batch_size=trial.suggest_int("batch_size", *BATCH_SIZE, log=True),
        dropout=trial.suggest_float("dropout", *DROPOUT),
        epochs=trial.suggest_int("epochs", 1, max_epochs),
        schedule=trial.suggest_categorical("schedule", SCHEDULES),
        input_dropout=trial.suggest_float("input_dropout", *INPUT_DROPOUT),
        batch_norm=trial.suggest_categorical("batch_norm", BATCH_NORM),
        weight_decay=trial.suggest_float("weight_decay", *WEIGHT_DECAY, log=True),
        label_smoothing=trial.suggest_categorical("label_smoothing", LABEL_SMOOTHING),
        shift=trial.suggest_categorical("shift", SHIFTS),
    )


def genome_from_params(params: dict) -> Genome:
    """The genome of a finished trial's parameters."""
    return Genome(
        units=tuple(params[f"units_{index + 1}"] for index in range(params["n_layers"])),
        activation=params["activation"],
        optimizer=params["optimizer"],
        learning_rate=params["learning_rate"],
        batch_size=params["batch_size"],
        dropout=params["dropout"],
        epochs=params["epochs"],
        schedule=params.get("schedule", "constant"),  # studies of space version 1 had no schedule gene
        input_dropout=params.get("input_dropout", 0.0),  # nor these, before version 3
        batch_norm=params.get("batch_norm", False),
        weight_decay=params.get("weight_decay", 0.004),
        label_smoothing=params.get("label_smoothing", 0.0),
        shift=params.get("shift", 0.0),
    )


def search_space(max_epochs: int, train_samples: int, max_params: int = 0) -> dict:
    """A description of the space and the fitness setting; a study keeps it to refuse a mismatch.

    Args:
        max_epochs: Upper bound of the epochs gene.
        train_samples: Training images per trial.
        max_params: Largest network trained (0: no limit).
    """
    return {
        "version": SPACE_VERSION,
        "layers": [1, MAX_LAYERS],
        "units": list(UNITS),
        "first_layer_units": list(first_layer_units(max_params)),
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZER_NAMES),
        "learning_rate": list(LEARNING_RATE),
        "batch_size": list(BATCH_SIZE),
        "dropout": list(DROPOUT),
        "epochs": [1, max_epochs],
        "schedules": list(SCHEDULES),
        "input_dropout": list(INPUT_DROPOUT),
        "batch_norm": list(BATCH_NORM),
        "weight_decay": list(WEIGHT_DECAY),
        "label_smoothing": list(LABEL_SMOOTHING),
        "shifts": list(SHIFTS),
        "train_samples": train_samples,
        # A trial trains on the first of them that fill whole batches (see `fitness.train_genome`).
        "whole_batches": True,
        "max_params": max_params,
    }


def generation_of(trial, population: int) -> int:
    """The NSGA-II generation of an Optuna trial (stored by the sampler; else by trial number)."""
    generation = trial.system_attrs.get(attributes.GENERATION)
    return int(generation) if generation is not None else trial.number // population
