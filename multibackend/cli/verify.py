"""`multibackend verify`."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibackend.cli.arguments import backend_list, output_file, output_folder, positive_int
from multibackend.runtime.errors import UsageError
from multibackend.runtime.numbers import number_type
from multibackend.verify.options import add_run_options, build_options
from multibackend.verify.regressions import DEFAULT_MAX_SLOWDOWN
from multibackend.verify.state import RERUN_MODES, RunState


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
        "|stored|. Each file gets one verdict: portable, not verified (a package or dataset missing), fails "
        "everywhere, backend-specific or single-backend by design. What the files import that is not installed "
        "here is named first (--check-env: only that). Writes OUT/verify.json, OUT/verify.md and OUT/verify.html. "
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
    add_run_options(parser.add_argument)
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="files and backends run side by side, each with its share of the cores' threads "
        "(default: the cores this process may use)",
    )
    parser.add_argument(
        "--junit-xml",
        type=output_file,
        metavar="PATH",
        help="also write a JUnit XML file, one test case per file and backend",
    )
    parser.add_argument(
        "--check-env",
        action="store_true",
        help="only list, per file, what it imports that is not installed here (before minutes of runs find it one "
        "run at a time); exit 1 when anything is missing, 0 when nothing is. verify prints the same at its start",
    )
    parser.add_argument(
        "--state",
        type=output_folder,
        metavar="DIR",
        help="incremental verification: keep each run's inputs and outcome here (the file's code, the settings, the "
        "backend's and Keras's versions, the downloads it read, what the environment lacked); a run whose inputs "
        "are unchanged is shown with its earlier outcome, unchanged since then, not run again; a timed-out run always "
        "runs again (a folder for CI to cache)",
    )
    parser.add_argument(
        "--rerun",
        choices=RERUN_MODES,
        default=RERUN_MODES[0],
        help="with --state: run the runs whose inputs changed (changed), those and every run that did not pass "
        "(failed), or every run (all) (default: changed)",
    )
    parser.add_argument(
        "--list-datasets",
        action="store_true",
        help="after the matrix, list every file the runs asked Keras to download (in the cache, downloaded, or "
        "missing offline): what to put in --data-cache once",
    )
    parser.add_argument(
        "--csv",
        type=output_file,
        metavar="PATH",
        help="also write every measured fit, evaluate and predict call of every run as CSV (file, backend, device, "
        "memory, steps, first and steady step time, samples per second, final logs)",
    )
    parser.add_argument(
        "--baseline",
        metavar="OLD",
        help="compare the runs' measurements with an earlier commit's verify.json (or a folder holding one, such as "
        "a merged course): a steady step time slower than --max-slowdown times its, or a final metric worse beyond "
        "--atol/--rtol, is a regression, listed in verify.md, verify.json and the JUnit properties",
    )
    parser.add_argument(
        "--max-slowdown",
        type=slowdown,
        default=DEFAULT_MAX_SLOWDOWN,
        metavar="RATIO",
        help=f"with --baseline: how many times the baseline's steady time is still not a regression (default: "
        f"{DEFAULT_MAX_SLOWDOWN:g}; CI runners are noisy, a quarter either way is common)",
    )
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="with --baseline: a regression fails the course (exit 1)",
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
MERGE_OPTIONS = (
    "help", "paths", "out", "junit_xml", "list_datasets", "csv", "baseline", "max_slowdown", "fail_on_regression"
)  # fmt: skip


slowdown = number_type(float, 1.0, True, "a ratio above 1")


def tracking_of(args: argparse.Namespace):
    """The `--baseline` comparison the arguments ask for (None: none); its options without it are refused."""
    from multibackend.verify.regressions import Tracking, read_baseline

    if not args.baseline:
        if args.fail_on_regression or args.max_slowdown != DEFAULT_MAX_SLOWDOWN:
            flag = "--fail-on-regression" if args.fail_on_regression else "--max-slowdown"
            raise UsageError(f"{flag} needs --baseline (the earlier verify.json to compare with)")
        return None
    return Tracking(read_baseline(args.baseline), args.baseline, args.max_slowdown, args.fail_on_regression)


def handle(args: argparse.Namespace) -> int:
    """Runs the command; returns its exit status."""
    from multibackend.runtime.cores import available_cores
    from multibackend.verify import containment
    from multibackend.verify.matrix import verify

    if args.paths[0] == "merge":
        return handle_merge(args)
    if args.check_env:
        return check_environment(args.paths)
    options, shard, durations = build_options(lambda dest: getattr(args, dest), jobs=args.jobs or available_cores())
    print(
        f"{'smoke run' if options.smoke else 'full run'}; offline datasets: {'on' if options.offline else 'off'}; "
        f"outputs compared: {options.check.mode}; shell: {options.shell}; "
        f"backend pins: {'respected' if options.respect_pins else 'overridden'}; jobs: {options.jobs}"
        + (f"; seed: {options.seed}" if options.seed is not None else "")
        + (f"; passed variables: {', '.join(options.pass_env)}" if options.pass_env else "")
    )
    print(f"containment: {containment.describe()}")
    state = RunState(Path(args.state), options, args.rerun) if args.state else None
    payload = verify(
        args.paths,
        args.backends,
        options,
        out_dir=args.out,
        junit_xml=args.junit_xml,
        shard=shard,
        durations=durations,
        state=state,
        tracking=tracking_of(args),
        csv_path=args.csv,
    )
    return finish(payload, args)


def check_environment(paths: list[str]) -> int:
    """`verify --check-env`: what each file imports that is not installed here; exit 1 when anything is missing."""
    from multibackend.verify.files import collect_files, missing_package_warning

    missing = [line for path in collect_files(paths) for line in missing_package_warning(path)]
    print("\n".join(missing) or "every file's imports are installed here")
    return 1 if missing else 0


def handle_merge(args: argparse.Namespace) -> int:
    """`verify merge DIR...`: joins shards' verify.json files into one matrix."""
    from multibackend.verify.matrix import merge_runs

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
    payload = merge_runs(
        folders, out_dir=args.out, junit_xml=args.junit_xml, tracking=tracking_of(args), csv_path=args.csv
    )
    return finish(payload, args)


def finish(payload: dict, args: argparse.Namespace) -> int:
    """Prints the matrix, where it was written and the outcome; returns the exit status."""
    from multibackend.verify.render import datasets_asked, markdown_matrix

    print(markdown_matrix(payload))
    if getattr(args, "list_datasets", False):
        print("datasets the runs asked for:\n" + "\n".join(datasets_asked(payload) or ["(none)"]))
    written = [Path(args.out) / name for name in ("verify.json", "verify.md", "verify.html")]
    print(f"results     {', '.join(map(str, written + ([args.junit_xml] if args.junit_xml else [])))}")
    print("PASSED" if payload["passed"] else "FAILED")
    return 0 if payload["passed"] else 1
