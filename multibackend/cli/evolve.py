"""`multibackend evolve`."""

from __future__ import annotations

import argparse
import os

from multibackend.cli.arguments import (
    add_backend_argument,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)
from multibackend.evolve.config import PRESETS, preset_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `evolve` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "evolve",
        help="evolutionary (NSGA-II) search for dense MNIST networks: accuracy vs parameters",
        description="Search hidden layers, units, activation, batch normalization, dropout and input dropout, "
        "optimizer (rmsprop, adam, adamw and its weight decay, sgd), learning rate and its schedule, label smoothing, "
        "shifts of the images in training, batch size and epochs with Optuna's NSGA-II for a Pareto front of "
        "validation accuracy vs parameter count (genome space version 3, evolve/genome.py). The course's network is "
        "evaluated as the baseline. Resumable: a killed search continues from its storage.",
    )
    add_backend_argument(parser)
    quick, full = PRESETS["quick"], PRESETS["full"]
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="quick",
        help="quick: a short search on a subset, about 10 min on 2 cores; full: the course's budget (up to 20 epochs "
        "on the 50,000 training images that validation does not use, 60 min), then the course network and the best "
        "smaller front networks retrained with 3 seeds each on all 60,000 images. The options below override it. "
        "(default: quick)",
    )
    parser.add_argument(
        "--generations",
        type=positive_int,
        help=f"generations (quick: {quick['generations']}, full: {full['generations']})",
    )
    parser.add_argument(
        "--population",
        type=positive_int,
        help=f"individuals per generation (quick: {quick['population']}, full: {full['population']})",
    )
    parser.add_argument(
        "--budget",
        type=positive_float,
        help=f"minutes before stopping the search (quick: "
        f"{quick['budget_minutes']:g}, full: {full['budget_minutes']:g})",
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL (default: sqlite:///results/evolve.db; also "
        "postgresql://..., mysql://..., journal:///path/file.log)",
    )
    parser.add_argument("--study", help="study name (default: mnist-dense-<backend>)")
    parser.add_argument("--seed", type=seed_int, default=0, help="sampler and weight seed (default: 0)")
    parser.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default: 1)")
    parser.add_argument(
        "--trial-trainer",
        choices=("loop", "fit"),
        default="loop",
        help="how a trial trains: loop: FAST PATH, the framework loop over the compiled Keras model (checked "
        "against fit by `multibackend parity`) where it trains the genome exactly as fit would (every genome of the space on "
        "jax, torch and tensorflow), else Keras fit; fit: Keras fit for "
        "every trial. Either trains on the images that fill whole batches. The final retraining always uses fit on "
        "every image (default: loop)",
    )
    parser.add_argument(
        "--early-stop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop a trial whose validation accuracy after an epoch (from the 2nd) is below the finished trials' "
        "median at that epoch; it is pruned (default: on)",
    )
    parser.add_argument(
        "--join",
        action="store_true",
        help="work on a shared study (--storage, --study) as one more worker, from this or another machine, with "
        "the same preset and options: trains its trials until the study has them all or the budget is spent; the "
        "summary, final step and report are the first process's",
    )
    parser.add_argument(
        "--max-epochs",
        type=positive_int,
        help=f"upper bound of the epochs gene (quick: {quick['max_epochs']}, full: {full['max_epochs']})",
    )
    parser.add_argument(
        "--train-samples",
        type=positive_int,
        help="training images per trial, at most 50,000 "
        f"(quick: {quick['train_samples']:,}, full: {full['train_samples']:,})",
    )
    parser.add_argument(
        "--max-params",
        type=non_negative_int,
        help="largest network trained: a genome with more "
        "parameters is pruned untrained; 0: no limit (quick: none, full: "
        f"{full['max_params']:,}, the course network's)",
    )
    parser.add_argument(
        "--final-seeds",
        type=non_negative_int,
        help="seeds for retraining the course network and "
        f"the best smaller front networks at the end; 0: none (quick: {quick['final_seeds']}, "
        f"full: {full['final_seeds']})",
    )
    parser.add_argument(
        "--results", type=output_folder, default="results", help="folder for the study and summary (default: results/)"
    )
    parser.add_argument(
        "--out", type=output_folder, default="reports", help="folder for the report (default: reports/)"
    )
    parser.set_defaults(handler=handle)


def settings_of(args: argparse.Namespace) -> dict:
    """The preset's settings, with the options given on the command line in their place."""
    return preset_settings(
        args.preset,
        generations=args.generations,
        population=args.population,
        budget_minutes=args.budget,
        max_epochs=args.max_epochs,
        train_samples=args.train_samples,
        max_params=args.max_params,
        final_seeds=args.final_seeds,
    )


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.evolve.config import EvolveConfig, validate
    from multibackend.evolve.study import check_study_settings, join_study, run_search
    from multibackend.evolve.summary import format_summary
    from multibackend.runtime.backend import hide_other_frameworks, import_keras, select_backend
    from multibackend.runtime.cores import thread_limits

    config = EvolveConfig(
        backend=args.backend,
        storage=args.storage,
        study=args.study,
        seed=args.seed,
        workers=args.workers,
        results_dir=args.results,
        report_dir=args.out,
        fast_path=args.trial_trainer == "loop",
        early_stop=args.early_stop,
        **settings_of(args),
    )
    validate(config)
    check_study_settings(config)
    if config.workers > 1:  # set before the backend is imported, and inherited by the helper workers
        os.environ.update(thread_limits(config.workers))
    select_backend(args.backend, "cpu")
    hide_other_frameworks(args.backend)  # as its helper jobs do: a search trains our own code only
    import_keras()
    if args.join:
        complete = join_study(config)
        print(f"study {config.study_name!r} in {config.storage_shown}: {complete} of {config.total_trials} trials done")
        return 0
    summary = run_search(config)
    print(format_summary(summary))
    print(f"report      {summary.report}")
    return 0
