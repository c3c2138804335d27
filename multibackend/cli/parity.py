"""`multibackend parity`."""

from __future__ import annotations

import argparse

from multibackend.cli.arguments import (
    backend_list,
    output_folder,
    positive_int,
)
from multibackend.runtime.backend import DEVICES


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `parity` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "parity",
        help="prove the backends compute the same network from the same weights",
        description="Run each backend in its own process from the same NumPy initial weights and compare forward "
        "passes, one update, the XOR trajectory, one MNIST epoch, saved .keras models across backends, and the "
        "course exercises. Writes OUT/parity.json. Exit 1 names the failing checks.",
    )
    parser.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="cpu (default), gpu, or auto: CPU plus GPU where a backend sees one",
    )
    parser.add_argument("--seeds", type=positive_int, default=10, help="XOR trajectories to compare (default: 10)")
    parser.add_argument("--mnist-epochs", type=positive_int, default=1, help="MNIST epochs to compare (default: 1)")
    parser.add_argument(
        "--train-samples",
        type=positive_int,
        help="train on the first N MNIST training images, 128 to 60,000 (default: all; fewer is a quicker check)",
    )
    parser.add_argument(
        "--out", type=output_folder, default="results", help="folder for parity.json (default: results/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.parity.checks import format_table, run_parity

    result = run_parity(
        args.backends,
        device=args.device,
        seeds=args.seeds,
        mnist_epochs=args.mnist_epochs,
        train_samples=args.train_samples,
        out_dir=args.out,
    )
    print(format_table(result.rows))
    print(f"results     {args.out}/parity.json")
    if result.passed:
        print("PASSED: every check within tolerance")
        return 0
    print(f"FAILED: {', '.join(result.failed_checks)}")
    return 1
