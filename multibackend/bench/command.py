"""`multibackend-bench` (also `python -m multibackend.bench`): the benchmark's own command line.

A tool beside the product, not a command of it: nothing outside `multibackend.bench` imports the benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli import execute
from multibackend.cli.arguments import (
    EXIT_CODES,
    OneLineErrorParser,
    backend_list,
    non_negative_int,
    output_folder,
    positive_int,
)


def build_parser() -> OneLineErrorParser:
    """The `multibackend-bench` parser."""
    parser = OneLineErrorParser(
        prog="multibackend-bench",
        epilog=EXIT_CODES,
        description="For each installed backend, alternate Keras fit, the faster Keras paths and a native training "
        "loop of the course's MNIST network, each in a fresh process; report median seconds per epoch, ratios to "
        "native, peak memory and GFLOP/s. Writes RESULTS/bench.json and OUT/bench.md.",
    )
    parser.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="alternating repeats (default: 3)")
    parser.add_argument("--epochs", type=positive_int, default=2, help="timed epochs per repeat (default: 2)")
    parser.add_argument("--warmup", type=non_negative_int, default=1, help="untimed epochs first (default: 1)")
    parser.add_argument(
        "--results", type=output_folder, default="results", help="folder for bench.json (default: results/)"
    )
    parser.add_argument("--out", type=output_folder, default="reports", help="folder for bench.md (default: reports/)")
    parser.set_defaults(handler=handle)
    return parser


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.bench.harness import format_table, run_bench, write_outputs

    result = run_bench(args.backends, repeats=args.repeats, epochs=args.epochs, warmup=args.warmup)
    print(format_table(result))
    json_path, md_path = write_outputs(result, Path(args.results), Path(args.out))
    print(f"results     {json_path}, {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `multibackend-bench` console script; returns the exit status."""
    return execute(build_parser(), argv)
