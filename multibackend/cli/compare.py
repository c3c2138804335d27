"""`multibackend compare`."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli.arguments import (
    EXIT_CODES,
    backend_list,
    example_list,
    output_folder,
    positive_int,
    warn,
)
from multibackend.course.networks import EXAMPLES
from multibackend.runtime.errors import EXIT_CRASHED, UsageError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `compare` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "compare",
        help="run XOR and MNIST with Keras fit on every installed backend (reusing results), then report",
        description="For each example and installed backend, reuse RESULTS/<example>-<backend>-<device>.json when it "
        "matches the settings, else run it with Keras fit in a fresh process; then write the comparison report. "
        "A run that crashes or times out is reported as such, not as a failed gate.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    parser.add_argument(
        "--examples", type=example_list, default=list(EXAMPLES), help="comma-separated (default: xor,mnist)"
    )
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="device of the runs (default: cpu)")
    parser.add_argument(
        "--mnist-epochs", type=positive_int, default=20, help="MNIST epochs (default: 20, the course's)"
    )
    parser.add_argument(
        "--loop",
        action="store_true",
        help="also train MNIST with the framework loop (the fast path), to show fit vs loop",
    )
    parser.add_argument("--results", type=output_folder, default="results", help="results folder (default: results/)")
    parser.add_argument(
        "--merge",
        action="append",
        metavar="DIR",
        help="more results folders shown in the report, e.g. GPU runs from another machine "
        "(repeatable; default: reports/gpu where it exists)",
    )
    parser.add_argument(
        "--out", type=output_folder, default="reports", help="folder for the report (default: reports/)"
    )
    parser.add_argument("--rerun", action="store_true", help="run again even when matching results exist")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.course.networks import XOR
    from multibackend.report.compare import run_missing
    from multibackend.report.comparison import write_report

    results = Path(args.results)
    merged = [Path(folder) for folder in args.merge] if args.merge else [p for p in [Path("reports/gpu")] if p.is_dir()]
    for folder in merged:
        if not folder.is_dir():
            raise UsageError(f"--merge {folder}: no such folder")
    epochs = {"xor": XOR.epochs, "mnist": args.mnist_epochs}
    outcomes = run_missing(
        args.examples,
        args.backends,
        device=args.device,
        results_dir=results,
        epochs=epochs,
        with_loop=args.loop,
        rerun=args.rerun,
    )
    unfinished = [outcome for outcome in outcomes if not outcome.finished]
    page = write_report([results], Path(args.out), warn=warn, unfinished=unfinished, merged=merged)
    print(f"report      {page} and {Path(args.out) / 'comparison.md'}")
    for outcome in unfinished:
        print(f"{outcome.status.upper()}: {outcome.example} on {outcome.backend} ({outcome.trainer}): {outcome.reason}")
    failed = [o for o in outcomes if o.status == "gate failed"]
    for outcome in failed:
        print(f"FAILED: a gate of {outcome.example} on {outcome.backend} ({outcome.trainer}); see {outcome.path}")
    if unfinished:
        return EXIT_CRASHED
    return 1 if failed else 0
