"""`multibackend evolve`."""

from __future__ import annotations

import argparse

from multibackend.cli.arguments import (
    add_backend_argument,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `evolve` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "evolve", help="evolutionary (NSGA-II) search for dense MNIST networks: accuracy vs parameters",
        description="Search hidden layers, units, activation, optimizer, learning rate, batch size, dropout and epochs "
        "with Optuna's NSGA-II for a Pareto front of validation accuracy vs parameter count. The course's network is "
        "evaluated as the baseline. Resumable: a killed search continues from its storage.",
    )  # fmt: skip
    add_backend_argument(parser)
    parser.add_argument("--generations", type=positive_int, default=4, help="generations (default: 4)")
    parser.add_argument("--population", type=positive_int, default=8, help="individuals per generation (default: 8)")
    parser.add_argument("--budget", type=positive_float, default=14.0, help="minutes before stopping (default: 14)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///results/evolve.db; also "
                        "postgresql://..., mysql://..., journal:///path/file.log)")  # fmt: skip
    parser.add_argument("--study", help="study name (default: mnist-dense-<backend>)")
    parser.add_argument("--seed", type=seed_int, default=0, help="sampler and weight seed (default: 0)")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default: 1)")
    parser.add_argument(
        "--max-epochs", type=positive_int, default=3, help="upper bound of the epochs gene (default: 3)"
    )
    parser.add_argument("--train-samples", type=positive_int, default=20_000,
                        help="training images per trial, at most 50,000 (default: 20,000)")  # fmt: skip
    parser.add_argument(
        "--results", type=output_folder, default="results", help="folder for the study and summary (default: results/)"
    )
    parser.add_argument(
        "--out", type=output_folder, default="reports", help="folder for the report (default: reports/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.evolve.study import EvolveConfig, format_summary, run_search, validate
    from multibackend.runtime.backend import select_backend

    config = EvolveConfig(
        backend=args.backend, generations=args.generations, population=args.population, budget_minutes=args.budget,
        storage=args.storage, study=args.study, seed=args.seed, workers=args.workers, max_epochs=args.max_epochs,
        train_samples=args.train_samples, results_dir=args.results, report_dir=args.out,
    )  # fmt: skip
    validate(config)
    select_backend(args.backend, "cpu")
    summary = run_search(config)
    print(format_summary(summary))
    print(f"report      {summary['report']}")
    return 0
