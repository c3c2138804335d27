"""`multibackend verify`."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli.arguments import (
    backend_list,
    non_negative_float,
    output_file,
    output_folder,
    positive_float,
    positive_int,
)
from multibackend.verify.outputs import COMPARE_MODES, DEFAULT_ATOL, DEFAULT_RTOL


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `verify` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "verify", help="run course scripts and notebooks under every backend, compare their outputs, print a matrix",
        description="Run each .py script or .ipynb notebook (folders are searched) under each backend in a fresh "
        "process with KERAS_BACKEND set, with a time limit. A notebook that carries stored outputs is compared "
        "cell by cell with its new outputs, as nbval does (NBVAL_IGNORE_OUTPUT, NBVAL_CHECK_OUTPUT, NBVAL_SKIP, "
        "NBVAL_RAISES_EXCEPTION comments and tags), after removing progress bars, timings, timestamps, addresses, "
        "paths and stderr; integers, shapes and text must match exactly, other numbers within --atol + --rtol * "
        "|stored|. Writes OUT/verify.json, OUT/verify.md and OUT/verify.html. "
        "Exit 1 when any cell fails, differs or times out.",
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
        "--compare-outputs", choices=COMPARE_MODES, default="all",
        help="which notebook cells' stored outputs are compared: all (nbval) but those marked NBVAL_IGNORE_OUTPUT, "
        "only those marked NBVAL_CHECK_OUTPUT (nbval-lax), or off (default: all)",
    )  # fmt: skip
    parser.add_argument("--rtol", type=non_negative_float, default=DEFAULT_RTOL,
                        help=f"relative tolerance for numbers that are not integers (default: {DEFAULT_RTOL:g})")  # fmt: skip
    parser.add_argument(
        "--atol", type=non_negative_float, default=DEFAULT_ATOL,
        help=f"absolute tolerance for numbers that are not integers (default: {DEFAULT_ATOL:g}: the course's MNIST "
        "accuracy on any backend passes, one 1.5 points lower fails)",
    )  # fmt: skip
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="files and backends run side by side, each with its share of the cores' threads "
                        "(default: the cores this process may use)")  # fmt: skip
    parser.add_argument("--junit-xml", type=output_file, metavar="PATH",
                        help="also write a JUnit XML file, one test case per file and backend")  # fmt: skip
    parser.add_argument(
        "--out", type=output_folder, default="results",
        help="folder for verify.json, verify.md and verify.html (default: results/)",
    )  # fmt: skip
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.course.offline import resolve_option
    from multibackend.runtime.cores import available_cores
    from multibackend.verify.run import OutputCheck, markdown_matrix, verify

    offline = resolve_option(args.offline_datasets)
    jobs = args.jobs or available_cores()
    print(f"offline datasets: {'on' if offline else 'off'}; outputs compared: {args.compare_outputs}; jobs: {jobs}")
    check = OutputCheck(args.compare_outputs, rtol=args.rtol, atol=args.atol)
    payload = verify(args.paths, args.backends, timeout=args.timeout, offline=offline, out_dir=args.out,
                     check=check, jobs=jobs, junit_xml=args.junit_xml)  # fmt: skip
    print(markdown_matrix(payload))
    written = [Path(args.out) / name for name in ("verify.json", "verify.md", "verify.html")]
    print(f"results     {', '.join(map(str, written + ([args.junit_xml] if args.junit_xml else [])))}")
    print("PASSED" if payload["passed"] else "FAILED")
    return 0 if payload["passed"] else 1
