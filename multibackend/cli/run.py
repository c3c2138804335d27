"""`multibackend run`."""

from __future__ import annotations

import argparse

from multibackend.cli.arguments import (
    EXIT_CODES,
    add_backend_argument,
    add_device_argument,
    output_folder,
    positive_int,
    seed_int,
    verbosity,
)
from multibackend.course.networks import DEFAULT_SEED, EXAMPLES
from multibackend.runtime.errors import UsageError
from multibackend.training.runner import DEFAULT_TRAINER, TRAINERS


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `run` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "run",
        help="train one course example on one backend and write its results file",
        description="Train a course example exactly as the course does (Keras compile and fit), evaluate it, check "
        "its gates and write OUT/<example>-<backend>-<device>.json (with --trainer loop: ...-<device>-loop.json).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("example", choices=list(EXAMPLES), help="which course example")
    add_backend_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--epochs", type=positive_int, help="epochs (default: the course's, 200 for xor, 20 for mnist)")
    parser.add_argument(
        "--batch-size", type=positive_int, help="batch size (default: the course's, 1 for xor, 128 for mnist)"
    )
    parser.add_argument(
        "--seed",
        type=seed_int,
        default=DEFAULT_SEED,
        help=f"seed of the shared NumPy initial weights (default: {DEFAULT_SEED})",
    )
    parser.add_argument("--seeds", type=positive_int, help="xor only: random starts for the solve rate (default: 10)")
    parser.add_argument("--data-dir", help="folder with the four MNIST IDX .gz files or mnist.npz")
    parser.add_argument(
        "--out", type=output_folder, default="results", help="folder for the results file (default: results/)"
    )
    parser.add_argument(
        "--verbose",
        type=verbosity,
        default="auto",
        metavar="{0,1,2,auto}",
        help="as in Keras: 0 silent, 1 progress bar, 2 one line per epoch; auto (default) = 1",
    )
    parser.add_argument(
        "--tf32", action="store_true", help="allow TensorFloat-32 matmuls on a GPU (faster, less exact)"
    )
    parser.add_argument(
        "--trainer",
        choices=TRAINERS,
        default=DEFAULT_TRAINER,
        help="fit (default): Keras's fit, as the course writes it; loop: FAST PATH, not Keras fit: the "
        "same compiled Keras model trained by the backend's own framework loop (mnist only)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.runtime.backend import hide_other_frameworks
    from multibackend.training.runner import RunConfig, run, summary

    if args.seeds is not None and args.example != "xor":
        raise UsageError("--seeds applies to the xor example only")
    config = RunConfig(
        example=args.example,
        backend=args.backend,
        device=args.device,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        seeds=args.seeds,
        data_dir=args.data_dir,
        out_dir=args.out,
        verbose=args.verbose,
        tf32=args.tf32,
        trainer=args.trainer,
    )
    # Our own code on one backend, as in that backend's venv (`run` in-process, as a job does in its child).
    hide_other_frameworks(config.backend)
    result = run(config)
    print(summary(result))
    return 0 if result.passed else 1
