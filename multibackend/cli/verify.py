"""`multibackend verify`."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli.arguments import (
    backend_list,
    output_folder,
    positive_float,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `verify` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "verify", help="run course scripts and notebooks under every backend and print a pass/fail matrix",
        description="Run each .py script or .ipynb notebook (folders are searched) under each backend in a fresh "
        "process with KERAS_BACKEND set, with a time limit. Writes OUT/verify.json and OUT/verify.md. "
        "Exit 1 when any cell fails or times out.",
    )  # fmt: skip
    parser.add_argument("paths", nargs="+", metavar="PATH", help=".py scripts, .ipynb notebooks or folders")
    parser.add_argument("--backends", type=backend_list, help="comma-separated (default: torch,tensorflow,jax)")
    parser.add_argument(
        "--timeout", type=positive_float, default=600, help="seconds per file and backend (default: 600)"
    )
    parser.add_argument(
        "--offline-datasets", choices=("auto", "on", "off"), default="auto",
        help="serve keras.datasets.mnist.load_data() from the verified local copy "
        "(auto: when the download host is unreachable; default: auto)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=output_folder, default="results", help="folder for verify.json and verify.md (default: results/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.course.offline import resolve_option
    from multibackend.verify.run import markdown_matrix, verify

    offline = resolve_option(args.offline_datasets)
    print(f"offline datasets: {'on' if offline else 'off'}")
    payload = verify(args.paths, args.backends, timeout=args.timeout, offline=offline, out_dir=args.out)
    print(markdown_matrix(payload))
    print(f"results     {Path(args.out) / 'verify.json'}, {Path(args.out) / 'verify.md'}")
    print("PASSED" if payload["passed"] else "FAILED")
    return 0 if payload["passed"] else 1
