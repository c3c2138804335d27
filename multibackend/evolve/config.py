"""A search's settings: the presets, `EvolveConfig`, and the checks that refuse impossible ones in one line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from multibackend.evolve.storage import shown_storage
from multibackend.runtime.errors import UsageError

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
