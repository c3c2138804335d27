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
    seed_int,
)
from multibackend.runtime.errors import UsageError
from multibackend.verify.cells import SHELL_MODES
from multibackend.verify.outputs import COMPARE_MODES, DEFAULT_ATOL, DEFAULT_RTOL
from multibackend.verify.shards import Shard, earlier_durations, parse_shard


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds the `verify` command to the `commands` subparsers."""
    parser = commands.add_parser(
        "verify",
        help="run course scripts and notebooks under every backend, compare their outputs, print a matrix",
        description="Run each .py script or .ipynb notebook (folders are searched) under each backend in a fresh "
        "process with KERAS_BACKEND set, in a folder that is also its HOME, with a time limit. A row passes only "
        "when Keras ran on the backend asked for: the file's own KERAS_BACKEND assignments are reported and, "
        "unless --respect-backend-pins, not carried out. Shell escapes that install packages (!pip, %pip, "
        "!conda, !apt-get, ...) are not run (--shell run runs them); cells gated to another backend (%%backend "
        "NAME, tag backend-only:NAME) are counted, not run. A notebook that carries stored outputs is compared "
        "cell by cell with its new outputs, as nbval does (NBVAL_IGNORE_OUTPUT, NBVAL_CHECK_OUTPUT, NBVAL_SKIP, "
        "NBVAL_RAISES_EXCEPTION comments and tags), after removing progress bars, timings, timestamps, addresses, "
        "paths and stderr; integers, shapes and text must match exactly, other numbers within --atol + --rtol * "
        "|stored|. Each file gets one verdict: portable, fails everywhere, backend-specific or single-backend by "
        "design. Writes OUT/verify.json, OUT/verify.md and OUT/verify.html. "
        "Exit 1 when any run fails, differs, times out or used another backend. "
        "A course split across machines: each runs `verify --shard K/N PATH...`, then "
        "`verify merge DIR...` joins their verify.json files (in DIRs) into one matrix with the verdicts.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=".py scripts, .ipynb notebooks or folders; or `merge` followed by the folders of shards' verify.json",
    )
    parser.add_argument("--backends", type=backend_list, help="comma-separated (default: torch,tensorflow,jax)")
    parser.add_argument(
        "--timeout", type=positive_float, default=600, help="seconds per file and backend (default: 600)"
    )
    parser.add_argument(
        "--offline-datasets",
        choices=("auto", "on", "off"),
        default="auto",
        help="serve keras.datasets.mnist.load_data() from the verified local copy "
        "(auto: when the download host is unreachable; default: auto)",
    )
    parser.add_argument(
        "--compare-outputs",
        choices=COMPARE_MODES,
        default="all",
        help="which notebook cells' stored outputs are compared: all (nbval) but those marked NBVAL_IGNORE_OUTPUT, "
        "only those marked NBVAL_CHECK_OUTPUT (nbval-lax), or off (default: all)",
    )
    parser.add_argument(
        "--rtol",
        type=non_negative_float,
        default=DEFAULT_RTOL,
        help=f"relative tolerance for numbers that are not integers (default: {DEFAULT_RTOL:g})",
    )
    parser.add_argument(
        "--atol",
        type=non_negative_float,
        default=DEFAULT_ATOL,
        help=f"absolute tolerance for numbers that are not integers (default: {DEFAULT_ATOL:g}: the course's MNIST "
        "accuracy on any backend passes, one 1.5 points lower fails)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a quick check that everything runs: every epoch of fit, and every evaluate, at most 16 steps "
        "(Keras's KERAS_MAX_STEPS_PER_EPOCH; the epochs as written; predict whole); stored outputs compared only "
        "before the first cell that trains",
    )
    parser.add_argument(
        "--smoke-sample",
        type=sample_sizes,
        metavar="TRAIN,TEST",
        help="with --smoke: keras.datasets.mnist.load_data() (served offline) gives only the first TRAIN training "
        "and TEST test images, so hand-written training loops are short too; code that splits the data by index "
        "(images[10000:]) then breaks",
    )
    parser.add_argument(
        "--seed",
        type=seed_int,
        help="seed Keras's random generators in each run as Keras is imported (keras.utils.set_random_seed), "
        "so that reruns and shards print the same numbers (default: as the file does)",
    )
    parser.add_argument(
        "--respect-backend-pins",
        action="store_true",
        help="run files that set KERAS_BACKEND themselves as written; a run pinned to another backend is reported "
        "as pinned, never as passed (default: the backend asked for wins)",
    )
    parser.add_argument(
        "--shell",
        choices=SHELL_MODES,
        default=SHELL_MODES[0],
        help="skip-installs: shell escapes that install packages are not run, and reported; run: everything as "
        "written, this environment first on PATH (default: skip-installs)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="files and backends run side by side, each with its share of the cores' threads "
        "(default: the cores this process may use)",
    )
    parser.add_argument(
        "--shard",
        type=shard_argument,
        metavar="K/N",
        help="run only the K-th of N balanced shares of the (file, backend) runs, e.g. one CI job each; "
        "`verify merge` joins the shards' results",
    )
    parser.add_argument(
        "--durations-from",
        metavar="VERIFY_JSON",
        help="with --shard: balance the shares by the seconds each run took in this earlier verify.json",
    )
    parser.add_argument(
        "--junit-xml",
        type=output_file,
        metavar="PATH",
        help="also write a JUnit XML file, one test case per file and backend",
    )
    parser.add_argument(
        "--out",
        type=output_folder,
        default="results",
        help="folder for verify.json, verify.md and verify.html (default: results/)",
    )
    run_only = {action.dest: action.default for action in parser._actions if action.dest not in MERGE_OPTIONS}
    parser.set_defaults(handler=handle, run_only_defaults=run_only)


# What `verify merge DIR...` takes besides its folders; every other option is about running.
MERGE_OPTIONS = ("help", "paths", "out", "junit_xml")


def shard_argument(text: str) -> Shard:
    """argparse type: K/N."""
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def sample_sizes(text: str) -> tuple[int, int]:
    """argparse type: TRAIN,TEST, two positive integers."""
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"must be two positive integers TRAIN,TEST, got {text!r}")
    return int(parts[0]), int(parts[1])


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.course.offline import resolve_option
    from multibackend.runtime.cores import available_cores
    from multibackend.verify.run import OutputCheck, VerifyOptions, verify

    if args.paths[0] == "merge":
        return handle_merge(args)
    if args.durations_from and not args.shard:
        raise UsageError("--durations-from needs --shard (it balances the shares)")
    durations = earlier_durations(args.durations_from) if args.durations_from else None
    if args.smoke_sample and not args.smoke:
        raise UsageError("--smoke-sample needs --smoke (a full run serves the whole dataset)")
    offline = resolve_option(args.offline_datasets)
    if args.smoke_sample and not offline:
        raise UsageError("--smoke-sample needs the offline datasets (--offline-datasets on): only those are sliced")
    jobs = args.jobs or available_cores()
    print(
        f"{'smoke run' if args.smoke else 'full run'}; offline datasets: {'on' if offline else 'off'}; "
        f"outputs compared: {args.compare_outputs}; shell: {args.shell}; "
        f"backend pins: {'respected' if args.respect_backend_pins else 'overridden'}; jobs: {jobs}"
        + (f"; seed: {args.seed}" if args.seed is not None else "")
    )
    options = VerifyOptions(
        timeout=args.timeout,
        offline=offline,
        jobs=jobs,
        smoke=args.smoke,
        smoke_sample=args.smoke_sample,
        seed=args.seed,
        respect_pins=args.respect_backend_pins,
        shell=args.shell,
        check=OutputCheck(args.compare_outputs, rtol=args.rtol, atol=args.atol),
    )
    payload = verify(
        args.paths,
        args.backends,
        options,
        out_dir=args.out,
        junit_xml=args.junit_xml,
        shard=args.shard,
        durations=durations,
    )
    return finish(payload, args)


def handle_merge(args: argparse.Namespace) -> int:
    """`verify merge DIR...`: joins shards' verify.json files into one matrix."""
    from multibackend.verify.run import merge_runs

    given = [
        f"--{dest.replace('_', '-')}"
        for dest, default in args.run_only_defaults.items()
        if getattr(args, dest) != default
    ]
    if given:
        raise UsageError(f"verify merge takes folders, --out and --junit-xml only, not {', '.join(given)}")
    folders = args.paths[1:]
    if not folders:
        raise UsageError("verify merge needs the folders (or verify.json files) of the shards to join")
    return finish(merge_runs(folders, out_dir=args.out, junit_xml=args.junit_xml), args)


def finish(payload: dict, args: argparse.Namespace) -> int:
    """Prints the matrix, where it was written and the outcome; returns the exit status."""
    from multibackend.verify.run import markdown_matrix

    print(markdown_matrix(payload))
    written = [Path(args.out) / name for name in ("verify.json", "verify.md", "verify.html")]
    print(f"results     {', '.join(map(str, written + ([args.junit_xml] if args.junit_xml else [])))}")
    print("PASSED" if payload["passed"] else "FAILED")
    return 0 if payload["passed"] else 1
