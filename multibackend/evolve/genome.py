"""The evolutionary search's genome: a dense MNIST network and how it is trained.

Pure Python (no Keras): the mapping from an Optuna trial to a network and the
parameter count by the course's formula can be used before a backend exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from multibackend.course.networks import DenseNetworkSpec

MAX_LAYERS = 4
UNITS = (16, 1024)
ACTIVATIONS = ("relu", "tanh", "elu", "sigmoid")
OPTIMIZER_NAMES = ("rmsprop", "adam", "sgd")
LEARNING_RATE = (1e-4, 1e-1)
BATCH_SIZE = (32, 512)
DROPOUT = (0.0, 0.5)
# How the learning rate moves over the trial's epochs: kept, or cosine-decayed to 0 by the last step.
SCHEDULES = ("constant", "cosine")


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

    def network(self) -> DenseNetworkSpec:
        """The network: 784 inputs, the hidden layers, a 10-way softmax."""
        return DenseNetworkSpec(
            28 * 28, tuple((units, self.activation) for units in self.units), (10, "softmax"), self.dropout
        )

    @property
    def params(self) -> int:
        """Trainable parameters by the course's formula (dropout adds none)."""
        return self.network().expected_params

    def describe(self) -> str:
        layers = "-".join(str(units) for units in self.units)
        return (
            f"{layers} {self.activation}, {self.optimizer} lr {self.learning_rate:.2g}, batch {self.batch_size}, "
            f"dropout {self.dropout:.2f}, {self.epochs} ep{', cosine' if self.schedule == 'cosine' else ''}"
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


def suggest_genome(trial, max_epochs: int) -> Genome:
    """Draws a genome from an Optuna trial.

    Args:
        trial: An `optuna.Trial` (or anything with its `suggest_*` methods).
        max_epochs: Upper bound of the epochs gene.

    Returns:
        The genome.
    """
    n_layers = trial.suggest_int("n_layers", 1, MAX_LAYERS)
    units = tuple(trial.suggest_int(f"units_{index + 1}", *UNITS, log=True) for index in range(n_layers))
    return Genome(
        units=units,
        activation=trial.suggest_categorical("activation", ACTIVATIONS),
        optimizer=trial.suggest_categorical("optimizer", OPTIMIZER_NAMES),
        learning_rate=trial.suggest_float("learning_rate", *LEARNING_RATE, log=True),
        batch_size=trial.suggest_int("batch_size", *BATCH_SIZE, log=True),
        dropout=trial.suggest_float("dropout", *DROPOUT),
        epochs=trial.suggest_int("epochs", 1, max_epochs),
        schedule=trial.suggest_categorical("schedule", SCHEDULES),
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
    )


def search_space(max_epochs: int, train_samples: int, max_params: int = 0) -> dict:
    """A description of the space and the fitness setting; a study keeps it to refuse a mismatch.

    Args:
        max_epochs: Upper bound of the epochs gene.
        train_samples: Training images per trial.
        max_params: Largest network trained (0: no limit).
    """
    return {
        "version": 2,
        "layers": [1, MAX_LAYERS],
        "units": list(UNITS),
        "activations": list(ACTIVATIONS),
        "optimizers": list(OPTIMIZER_NAMES),
        "learning_rate": list(LEARNING_RATE),
        "batch_size": list(BATCH_SIZE),
        "dropout": list(DROPOUT),
        "epochs": [1, max_epochs],
        "schedules": list(SCHEDULES),
        "train_samples": train_samples,
        "max_params": max_params,
    }


def generation_of(trial, population: int) -> int:
    """The NSGA-II generation of an Optuna trial (stored by the sampler; else by trial number)."""
    for key, value in trial.system_attrs.items():
        if key.endswith(":generation"):
            return int(value)
    return trial.number // population
