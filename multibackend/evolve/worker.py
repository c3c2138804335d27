"""A helper worker of `multibackend evolve --workers N`, or one started by hand on another machine.

    python -m multibackend.evolve.worker --backend jax --preset full --storage postgresql+psycopg2://... --study NAME

It fixes its own backend before Keras is imported and works on the shared
study until the study's trial count or the budget is reached. Its settings
(the preset's, or the options given) must be the study's: a mismatch is refused.
"""

from __future__ import annotations

import argparse
import sys

from multibackend.evolve.study import PRESETS  # no Keras or Optuna yet: the backend is chosen below
from multibackend.runtime.backend import BACKENDS, select_backend
from multibackend.runtime.errors import UsageError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multibackend.evolve.worker")
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--population", type=int)
    parser.add_argument("--generations", type=int)
    parser.add_argument("--budget", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--train-samples", type=int)
    parser.add_argument("--max-params", type=int)
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    try:
        select_backend(args.backend, "cpu")
        from pathlib import Path

        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        from multibackend.evolve.study import (
            EvolveConfig,
            make_objective,
            open_study,
            preset_settings,
            search_data,
            validate,
        )

        settings = preset_settings(
            args.preset,
            generations=args.generations,
            population=args.population,
            budget_minutes=args.budget,
            max_epochs=args.max_epochs,
            train_samples=args.train_samples,
            max_params=args.max_params,
            final_seeds=0,
        )  # the final step is the first process's
        config = EvolveConfig(backend=args.backend, storage=args.storage, study=args.study, seed=args.seed,
                              results_dir=args.results, **settings)  # fmt: skip
        validate(config)
        study = open_study(config)
        models_dir = Path(config.results_dir) / "evolve-models" / config.study_name
        models_dir.mkdir(parents=True, exist_ok=True)
        study.optimize(
            make_objective(config, search_data(config.train_samples), models_dir),
            timeout=config.budget_minutes * 60,
            callbacks=[MaxTrialsCallback(config.total_trials, states=(TrialState.COMPLETE,))],
        )
    except UsageError as error:
        print(f"evolve worker: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
