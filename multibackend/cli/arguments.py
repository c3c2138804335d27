"""Argument helpers shared by the commands: one-line errors, number and list types, common options."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from multibackend.course.networks import EXAMPLES
from multibackend.runtime.backend import BACKENDS, DEFAULT_BACKEND, DEVICES
from multibackend.runtime.errors import UsageError
from multibackend.runtime.numbers import (  # noqa: F401 - the commands' number types, here with the others
    non_negative_float,
    non_negative_int,
    number_type,
    positive_float,
    positive_int,
    seed_int,
)
from multibackend.runtime.outputs import name_error

EXIT_CODES = (
    "exit status: 0 passed; 1 a gate or check failed; 2 bad input or environment (one line on stderr); "
    "3 a run crashed or timed out, or an internal error (its traceback goes to a log file that the message names)"
)


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def verbosity(text: str) -> int | str:
    """argparse type: Keras's verbose values, 0, 1, 2 or auto."""
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 0, 1, 2 or auto, got {text!r}")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=DEFAULT_BACKEND,
        help=f"Keras backend (default: {DEFAULT_BACKEND})",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="auto takes a GPU when one is usable (default: auto)",
    )


def choice_list(choices, noun: str):
    """Builds an argparse type for a comma-separated list of `choices` (named `noun` in errors)."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {noun} {unknown[0] if unknown else text!r} (choose from {', '.join(choices)})"
            )
        return names

    parse.__name__ = f"{noun}_list"
    return parse


example_list = choice_list(EXAMPLES, "example")
backend_list = choice_list(BACKENDS, "backend")


def warn(message: str) -> None:
    """Prints a warning line on stderr."""
    print(message, file=sys.stderr)


def output_folder(text: str) -> str:
    """argparse type: a folder that outputs can be written into (made when missing), checked before any work.

    Args:
        text: The folder as given.

    Returns:
        The same text.

    Raises:
        argparse.ArgumentTypeError: when it is a file, or it (or the nearest existing folder above it)
            cannot be written.
    """
    path = Path(text)
    problem = name_error(path)
    if problem:
        raise argparse.ArgumentTypeError(f"{text[:60]}...: {problem}")
    if path.is_symlink() and not path.exists():  # mkdir would fail on it after the work is done
        raise argparse.ArgumentTypeError(f"{text}: is a link to {os.readlink(path)}, which does not exist")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file, not a folder")
    existing = next(parent for parent in [path, *path.absolute().parents] if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: {existing} is not writable")
    try:  # os.access says yes to root everywhere; a real folder made and removed tells (read-only mounts, /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".multibackend-probe-", dir=existing))
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{text}: {existing} is not writable ({error.strerror or error})") from None
    return text


def output_file(text: str) -> str:
    """argparse type: a file that can be written (its folder made when missing), checked before any work.

    Args:
        text: The file's path as given.

    Returns:
        The same text.

    Raises:
        argparse.ArgumentTypeError: when it is a folder, or its folder cannot be written.
    """
    path = Path(text)
    problem = name_error(path)
    if problem:
        raise argparse.ArgumentTypeError(f"{text[:60]}...: {problem}")
    if path.is_dir() or text.endswith(os.sep):
        raise argparse.ArgumentTypeError(f"{text}: is a folder, not a file")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: is not a regular file (a FIFO or device)")
    output_folder(str(path.parent))
    return text
