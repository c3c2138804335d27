"""The `multibackend` command line: `run`, and the commands built on its results.

One module per command, each with `add_parser(commands)` and `handle(args)`;
`arguments` holds what they share.
"""

from __future__ import annotations

import signal
import sys
import threading

from multibackend import __version__
from multibackend.cli import compare, evolve, parity, report, run, verify
from multibackend.cli.arguments import EXIT_CODES, OneLineErrorParser
from multibackend.runtime.errors import EXIT_CRASHED, CheckFailed, ChildCrashed, ResultsError, UsageError

# The benchmark is a tool of its own (`multibackend-bench`, `multibackend.bench.command`): the product never imports it.
COMMANDS = (run, parity, report, compare, verify, evolve)


def build_parser() -> OneLineErrorParser:
    """The `multibackend` parser with every command."""
    parser = OneLineErrorParser(
        prog="multibackend",
        description="Run the course's Keras examples on TensorFlow, PyTorch and JAX, and compare them.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"multibackend {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `multibackend` console script.

    Returns:
        The exit status: 0 passed, 1 a gate or check failed, 2 bad input, 3 a crash (see `EXIT_CODES`).
    """
    return execute(build_parser(), argv)


def execute(parser: OneLineErrorParser, argv: list[str] | None) -> int:
    """Parses `argv` and runs the chosen handler, turning every error into one line and an exit status.

    Args:
        parser: A parser whose subcommands set `handler`.
        argv: The arguments (None: the process's).

    Returns:
        The exit status (see `EXIT_CODES`).
    """
    # Signal handlers can only be set from the main thread (the command line's; a caller's thread keeps its own).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main_thread else None
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except (UsageError, CheckFailed, ChildCrashed) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except ResultsError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{parser.prog}: terminated", file=sys.stderr)
        return 143
    except Exception as error:  # noqa: BLE001 - the last resort: one line, the traceback kept in a file
        log = _write_traceback()
        print(f"{parser.prog}: internal error: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
              f" (traceback in {log})", file=sys.stderr)  # fmt: skip
        return EXIT_CRASHED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that every `finally` runs (child process groups end too)."""


def _terminated(signum, frame) -> None:
    raise Terminated


def _write_traceback() -> str:
    """Writes the current exception's traceback to a new file in the temporary folder; returns its path."""
    import tempfile
    import traceback

    handle, path = tempfile.mkstemp(prefix="multibackend-traceback-", suffix=".log")
    with open(handle, "w") as stream:
        traceback.print_exc(file=stream)
    return path
