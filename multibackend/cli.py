"""The `multibackend` command line: `run`, and the commands built on its results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multibackend import __version__
from multibackend.backend import BACKENDS, DEFAULT_BACKEND, DEVICES
from multibackend.errors import EXIT_CRASHED, CheckFailed, ChildCrashed, ResultsError, UsageError
from multibackend.networks import DEFAULT_SEED, EXAMPLES
from multibackend.runner import DEFAULT_TRAINER, TRAINERS

EXIT_CODES = (
    "exit status: 0 passed; 1 a gate or check failed; 2 bad input or environment (one line on stderr); "
    "3 a run crashed or timed out, or an internal error (its traceback goes to a log file that the message names)"
)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def number_type(convert, minimum: float, exclusive: bool, description: str):
    """Builds an argparse type that accepts numbers above (or from) `minimum`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (exclusive and value == minimum) or value != value:
            raise argparse.ArgumentTypeError(f"must be {description}, got {text!r}")
        return value

    parse.__name__ = description.replace(" ", "_").replace("-", "_")
    return parse


positive_int = number_type(int, 1, False, "a positive integer")
non_negative_int = number_type(int, 0, False, "a non-negative integer")
positive_float = number_type(float, 0.0, True, "a positive number")


def verbosity(text: str) -> int | str:
    """argparse type: Keras's verbose values, 0, 1, 2 or auto."""
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 0, 1, 2 or auto, got {text!r}")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=BACKENDS, default=DEFAULT_BACKEND,
        help=f"Keras backend (default: {DEFAULT_BACKEND})",
    )  # fmt: skip


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", choices=DEVICES, default="auto",
        help="auto takes a GPU when one is usable (default: auto)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="multibackend",
        description="Run the course's Keras examples on TensorFlow, PyTorch and JAX, and compare them.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"multibackend {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    commands.required = True

    run = commands.add_parser(
        "run", help="train one course example on one backend and write its results file",
        description="Train a course example exactly as the course does (Keras compile and fit), evaluate it, check "
        "its gates and write OUT/<example>-<backend>-<device>.json (with --trainer loop: ...-<device>-loop.json).",
        epilog=EXIT_CODES,
    )  # fmt: skip
    run.add_argument("example", choices=list(EXAMPLES), help="which course example")
    add_backend_argument(run)
    add_device_argument(run)
    run.add_argument("--epochs", type=positive_int, help="epochs (default: the course's, 200 for xor, 20 for mnist)")
    run.add_argument(
        "--batch-size", type=positive_int, help="batch size (default: the course's, 1 for xor, 128 for mnist)"
    )
    run.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED,
                     help=f"seed of the shared NumPy initial weights (default: {DEFAULT_SEED})")  # fmt: skip
    run.add_argument("--seeds", type=positive_int,
                     help="xor only: random starts for the solve rate (default: 10)")  # fmt: skip
    run.add_argument("--data-dir", help="folder with the four MNIST IDX .gz files or mnist.npz")
    run.add_argument("--out", default="results", help="folder for the results file (default: results/)")
    run.add_argument("--verbose", type=verbosity, default="auto", metavar="{0,1,2,auto}",
                     help="as in Keras: 0 silent, 1 progress bar, 2 one line per epoch; auto (default) = 1")  # fmt: skip
    run.add_argument("--tf32", action="store_true", help="allow TensorFloat-32 matmuls on a GPU (faster, less exact)")
    run.add_argument("--trainer", choices=TRAINERS, default=DEFAULT_TRAINER,
                     help="fit (default): Keras's fit, as the course writes it; loop: FAST PATH, not Keras fit: the "
                     "same compiled Keras model trained by the backend's own framework loop (mnist only)")  # fmt: skip
    run.set_defaults(handler=_run_command)

    parity = commands.add_parser(
        "parity", help="prove the backends compute the same network from the same weights",
        description="Run each backend in its own process from the same NumPy initial weights and compare forward "
        "passes, one update, the XOR trajectory, one MNIST epoch, saved .keras models across backends, and the "
        "course exercises. Writes OUT/parity.json. Exit 1 names the failing checks.",
    )  # fmt: skip
    parity.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    parity.add_argument("--device", choices=DEVICES, default="cpu",
                        help="cpu (default), gpu, or auto: CPU plus GPU where a backend sees one")  # fmt: skip
    parity.add_argument("--seeds", type=positive_int, default=10, help="XOR trajectories to compare (default: 10)")
    parity.add_argument("--mnist-epochs", type=positive_int, default=1, help="MNIST epochs to compare (default: 1)")
    parity.add_argument("--out", default="results", help="folder for parity.json (default: results/)")
    parity.set_defaults(handler=_parity_command)

    report = commands.add_parser(
        "report", help="write the backend comparison report from results files",
        description="Merge results files from one or more folders (one row per example, backend and device) and "
        "write comparison.md, a self-contained comparison.html and PNG plots.",
    )  # fmt: skip
    report.add_argument("results", nargs="*", default=["results"], help="results folders (default: results/)")
    report.add_argument("--out", default="reports", help="folder for the report (default: reports/)")
    report.set_defaults(handler=_report_command)

    compare = commands.add_parser(
        "compare", help="run XOR and MNIST with Keras fit on every installed backend (reusing results), then report",
        description="For each example and installed backend, reuse RESULTS/<example>-<backend>-<device>.json when it "
        "matches the settings, else run it with Keras fit in a fresh process; then write the comparison report. "
        "A run that crashes or times out is reported as such, not as a failed gate.",
        epilog=EXIT_CODES,
    )  # fmt: skip
    compare.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    compare.add_argument(
        "--examples", type=example_list, default=list(EXAMPLES), help="comma-separated (default: xor,mnist)"
    )
    compare.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="device of the runs (default: cpu)")
    compare.add_argument(
        "--mnist-epochs", type=positive_int, default=20, help="MNIST epochs (default: 20, the course's)"
    )
    compare.add_argument("--loop", action="store_true",
                         help="also train MNIST with the framework loop (the fast path), to show fit vs loop")  # fmt: skip
    compare.add_argument("--results", default="results", help="results folder (default: results/)")
    compare.add_argument("--merge", action="append", metavar="DIR",
                         help="more results folders shown in the report, e.g. GPU runs from another machine "
                         "(repeatable; default: reports/gpu where it exists)")  # fmt: skip
    compare.add_argument("--out", default="reports", help="folder for the report (default: reports/)")
    compare.add_argument("--rerun", action="store_true", help="run again even when matching results exist")
    compare.set_defaults(handler=_compare_command)

    verify = commands.add_parser(
        "verify", help="run course scripts and notebooks under every backend and print a pass/fail matrix",
        description="Run each .py script or .ipynb notebook (folders are searched) under each backend in a fresh "
        "process with KERAS_BACKEND set, with a time limit. Writes OUT/verify.json and OUT/verify.md. "
        "Exit 1 when any cell fails or times out.",
    )  # fmt: skip
    verify.add_argument("paths", nargs="+", metavar="PATH", help=".py scripts, .ipynb notebooks or folders")
    verify.add_argument("--backends", type=backend_list, help="comma-separated (default: torch,tensorflow,jax)")
    verify.add_argument(
        "--timeout", type=positive_float, default=600, help="seconds per file and backend (default: 600)"
    )
    verify.add_argument(
        "--offline-datasets", choices=("auto", "on", "off"), default="auto",
        help="serve keras.datasets.mnist.load_data() from the verified local copy "
        "(auto: when the download host is unreachable; default: auto)",
    )  # fmt: skip
    verify.add_argument("--out", default="results", help="folder for verify.json and verify.md (default: results/)")
    verify.set_defaults(handler=_verify_command)

    bench = commands.add_parser(
        "bench", help="benchmark Keras fit (and faster paths) against each framework's native loop",
        description="For each installed backend, alternate Keras fit, the faster Keras paths and a native training "
        "loop of the course's MNIST network, each in a fresh process; report median seconds per epoch, ratios to "
        "native, peak memory and GFLOP/s. Writes RESULTS/bench.json and OUT/bench.md.",
    )  # fmt: skip
    bench.add_argument("--backends", type=backend_list, help="comma-separated (default: every installed backend)")
    bench.add_argument("--repeats", type=positive_int, default=3, help="alternating repeats (default: 3)")
    bench.add_argument("--epochs", type=positive_int, default=2, help="timed epochs per repeat (default: 2)")
    bench.add_argument("--warmup", type=non_negative_int, default=1, help="untimed epochs first (default: 1)")
    bench.add_argument("--results", default="results", help="folder for bench.json (default: results/)")
    bench.add_argument("--out", default="reports", help="folder for bench.md (default: reports/)")
    bench.set_defaults(handler=_bench_command)

    evolve = commands.add_parser(
        "evolve", help="evolutionary (NSGA-II) search for dense MNIST networks: accuracy vs parameters",
        description="Search hidden layers, units, activation, optimizer, learning rate, batch size, dropout and epochs "
        "with Optuna's NSGA-II for a Pareto front of validation accuracy vs parameter count. The course's network is "
        "evaluated as the baseline. Resumable: a killed search continues from its storage.",
    )  # fmt: skip
    add_backend_argument(evolve)
    evolve.add_argument("--generations", type=positive_int, default=4, help="generations (default: 4)")
    evolve.add_argument("--population", type=positive_int, default=8, help="individuals per generation (default: 8)")
    evolve.add_argument("--budget", type=positive_float, default=14.0, help="minutes before stopping (default: 14)")
    evolve.add_argument("--storage", help="Optuna storage URL (default: sqlite:///results/evolve.db; also "
                        "postgresql://..., mysql://..., journal:///path/file.log)")  # fmt: skip
    evolve.add_argument("--study", help="study name (default: mnist-dense-<backend>)")
    evolve.add_argument("--seed", type=non_negative_int, default=0, help="sampler and weight seed (default: 0)")
    evolve.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default: 1)")
    evolve.add_argument(
        "--max-epochs", type=positive_int, default=3, help="upper bound of the epochs gene (default: 3)"
    )
    evolve.add_argument("--train-samples", type=positive_int, default=20_000,
                        help="training images per trial, at most 50,000 (default: 20,000)")  # fmt: skip
    evolve.add_argument("--results", default="results", help="folder for the study and summary (default: results/)")
    evolve.add_argument("--out", default="reports", help="folder for the report (default: reports/)")
    evolve.set_defaults(handler=_evolve_command)
    return parser


def _evolve_command(args: argparse.Namespace) -> int:
    from multibackend.backend import select_backend
    from multibackend.evolve import EvolveConfig, format_summary, run_search, validate

    config = EvolveConfig(
        backend=args.backend, generations=args.generations, population=args.population, budget_minutes=args.budget,
        storage=args.storage, study=args.study, seed=args.seed, workers=args.workers, max_epochs=args.max_epochs,
        train_samples=args.train_samples, results_dir=args.results, report_dir=args.out,
    )  # fmt: skip
    validate(config)
    select_backend(args.backend, "cpu")
    summary = run_search(config)
    print(format_summary(summary))
    print(f"report      {summary['report']}")
    return 0


def _bench_command(args: argparse.Namespace) -> int:
    from multibackend.bench import format_table, run_bench, write_outputs

    payload = run_bench(args.backends, repeats=args.repeats, epochs=args.epochs, warmup=args.warmup)
    print(format_table(payload))
    json_path, md_path = write_outputs(payload, Path(args.results), Path(args.out))
    print(f"results     {json_path}, {md_path}")
    return 0


def _verify_command(args: argparse.Namespace) -> int:
    from multibackend.offline import resolve_option
    from multibackend.verify import markdown_matrix, verify

    offline = resolve_option(args.offline_datasets)
    print(f"offline datasets: {'on' if offline else 'off'}")
    payload = verify(args.paths, args.backends, timeout=args.timeout, offline=offline, out_dir=args.out)
    print(markdown_matrix(payload))
    print(f"results     {Path(args.out) / 'verify.json'}, {Path(args.out) / 'verify.md'}")
    print("PASSED" if payload["passed"] else "FAILED")
    return 0 if payload["passed"] else 1


def example_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of course examples."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown example {unknown[0] if unknown else text!r} (choose from {', '.join(EXAMPLES)})"
        )
    return names


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _report_command(args: argparse.Namespace) -> int:
    from multibackend.report import write_report

    page = write_report([Path(folder) for folder in args.results], Path(args.out), warn=_warn)
    print(f"report      {page} and {Path(args.out) / 'comparison.md'}")
    return 0


def _compare_command(args: argparse.Namespace) -> int:
    from multibackend.compare import run_missing
    from multibackend.networks import XOR
    from multibackend.report import write_report

    results = Path(args.results)
    merged = [Path(folder) for folder in args.merge] if args.merge else [p for p in [Path("reports/gpu")] if p.is_dir()]
    for folder in merged:
        if not folder.is_dir():
            raise UsageError(f"--merge {folder}: no such folder")
    epochs = {"xor": XOR.epochs, "mnist": args.mnist_epochs}
    outcomes = run_missing(args.examples, args.backends, device=args.device, results_dir=results, epochs=epochs,
                           with_loop=args.loop, rerun=args.rerun)  # fmt: skip
    unfinished = [outcome for outcome in outcomes if not outcome.finished]
    page = write_report([results], Path(args.out), warn=_warn, unfinished=unfinished, merged=merged)
    print(f"report      {page} and {Path(args.out) / 'comparison.md'}")
    for outcome in unfinished:
        print(f"{outcome.status.upper()}: {outcome.example} on {outcome.backend} ({outcome.trainer}): {outcome.reason}")
    failed = [o for o in outcomes if o.status == "gate failed"]
    for outcome in failed:
        print(f"FAILED: a gate of {outcome.example} on {outcome.backend} ({outcome.trainer}); see {outcome.path}")
    if unfinished:
        return EXIT_CRASHED
    return 1 if failed else 0


def backend_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of known backends."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend {unknown[0] if unknown else text!r} (choose from {', '.join(BACKENDS)})"
        )
    return names


def _parity_command(args: argparse.Namespace) -> int:
    from multibackend.parity import format_table, run_parity

    payload = run_parity(
        args.backends, device=args.device, seeds=args.seeds, mnist_epochs=args.mnist_epochs, out_dir=args.out
    )
    print(format_table(payload["rows"]))
    print(f"results     {args.out}/parity.json")
    if payload["passed"]:
        print("PASSED: every check within tolerance")
        return 0
    print(f"FAILED: {', '.join(payload['failed_checks'])}")
    return 1


def _run_command(args: argparse.Namespace) -> int:
    from multibackend.runner import RunConfig, run, summary

    if args.seeds is not None and args.example != "xor":
        raise UsageError("--seeds applies to the xor example only")
    config = RunConfig(
        example=args.example, backend=args.backend, device=args.device, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, seeds=args.seeds, data_dir=args.data_dir,
        out_dir=args.out, verbose=args.verbose, tf32=args.tf32, trainer=args.trainer,
    )  # fmt: skip
    payload = run(config)
    print(summary(payload))
    return 0 if payload["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `multibackend` console script.

    Returns:
        The exit status: 0 passed, 1 a gate or check failed, 2 bad input, 3 a crash (see `EXIT_CODES`).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except (UsageError, CheckFailed, ChildCrashed) as error:
        print(f"multibackend: error: {error}", file=sys.stderr)
        return error.exit_code
    except ResultsError as error:
        print(f"multibackend: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multibackend: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the last resort: one line, the traceback kept in a file
        log = _write_traceback()
        print(f"multibackend: internal error: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
              f" (traceback in {log})", file=sys.stderr)  # fmt: skip
        return EXIT_CRASHED


def _write_traceback() -> str:
    """Writes the current exception's traceback to a new file in the temporary folder; returns its path."""
    import tempfile
    import traceback

    handle, path = tempfile.mkstemp(prefix="multibackend-traceback-", suffix=".log")
    with open(handle, "w") as stream:
        traceback.print_exc(file=stream)
    return path
