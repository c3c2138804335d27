"""The `multibackend` command line: `run`, and the commands built on its results."""

from __future__ import annotations

import argparse
import sys

from multibackend import __version__
from multibackend.backend import BACKENDS, DEFAULT_BACKEND, DEVICES
from multibackend.errors import ResultsError, UsageError
from multibackend.networks import DEFAULT_SEED, EXAMPLES


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


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
    )
    parser.add_argument("--version", action="version", version=f"multibackend {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    commands.required = True

    run = commands.add_parser(
        "run", help="train one course example on one backend and write its results file",
        description="Train a course example exactly as the course does, evaluate it, check its gates "
        "and write OUT/<example>-<backend>-<device>.json. Exit 0: all gates pass; 1: a gate failed; 2: bad input.",
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
    run.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras fit verbosity (default: 1)")
    run.add_argument("--tf32", action="store_true", help="allow TensorFloat-32 matmuls on a GPU (faster, less exact)")
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
    return parser


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
        out_dir=args.out, verbose=args.verbose, tf32=args.tf32,
    )  # fmt: skip
    payload = run(config)
    print(summary(payload))
    return 0 if payload["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `multibackend` console script.

    Returns:
        The exit status: 0 success, 1 a check failed, 2 bad input.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except UsageError as error:
        print(f"multibackend: error: {error}", file=sys.stderr)
        return error.exit_code
    except ResultsError as error:
        print(f"multibackend: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"multibackend: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("multibackend: interrupted", file=sys.stderr)
        return 130
