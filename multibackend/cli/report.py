"""`multibackend report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli.arguments import output_folder, warn


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `report` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "report",
        help="write the backend comparison report from results files",
        description="Merge results files from one or more folders (one row per example, backend and device) and "
        "write comparison.md, a self-contained comparison.html and PNG plots.",
    )
    parser.add_argument("results", nargs="*", default=["results"], help="results folders (default: results/)")
    parser.add_argument(
        "--out", type=output_folder, default="reports", help="folder for the report (default: reports/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.report.comparison import write_report

    page = write_report([Path(folder) for folder in args.results], Path(args.out), warn=warn)
    print(f"report      {page} and {Path(args.out) / 'comparison.md'}")
    return 0
