"""Argument helpers shared by the commands: one-line errors, number and list types, common options."""

from __future__ import annotations

import argparse
import sys

from multibackend.course.networks import EXAMPLES
from multibackend.runtime.backend import BACKENDS, DEFAULT_BACKEND, DEVICES
from multibackend.runtime.errors import UsageError

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


def example_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of course examples."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown example {unknown[0] if unknown else text!r} (choose from {', '.join(EXAMPLES)})"
        )
    return names


def backend_list(text: str) -> list[str]:
    """argparse type: a comma-separated list of known backends."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown backend {unknown[0] if unknown else text!r} (choose from {', '.join(BACKENDS)})"
        )
    return names


def warn(message: str) -> None:
    """Prints a warning line on stderr."""
    print(message, file=sys.stderr)
