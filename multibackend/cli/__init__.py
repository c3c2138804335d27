"""The `multibackend` command line: `run`, and the commands built on its results.

One module per command, each with `add_parser(commands)` and `handle(args)`;
`arguments` holds what they share.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

from multibackend import __version__
from multibackend.cli import compare, evolve, parity, report, run, verify
from multibackend.cli.arguments import EXIT_CODES, OneLineErrorParser
from multibackend.runtime.errors import (
    EXIT_CRASHED,
    EXIT_USAGE,
    CheckFailed,
    ChildCrashed,
    ResultsError,
    UsageError,
    one_line,
)
from multibackend.runtime.signals import Terminated, ending, ending_signals_raise, leave

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


def console() -> None:
    """The `multibackend` console script and `python -m multibackend`: runs `main` and exits with its status
    (after an ending signal without Python's teardown, see `signals.leave`)."""
    leave(main())


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
    try:
        with ending_signals_raise():
            args = parser.parse_args(argv)
            return args.handler(args)
    except (UsageError, CheckFailed, ChildCrashed) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except ResultsError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as ended:
        message, code = ending(ended)
        print(f"{parser.prog}: {message}", file=sys.stderr)
        return code
    except BrokenPipeError:  # the reader of our output went away (`| head`): what was written stays
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            return _internal_error(parser, error)
        # A path given with a part longer than the file system allows: bad input, wherever it was first used.
        print(f"{parser.prog}: error: {error.filename}: a name longer than the file system allows", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the last resort: one line, the traceback kept in a file
        return _internal_error(parser, error)


def _internal_error(parser: OneLineErrorParser, error: BaseException) -> int:
    log = _write_traceback()
    print(f"{parser.prog}: internal error: {one_line(error)} (traceback in {log})", file=sys.stderr)
    return EXIT_CRASHED


def _silence_stdout() -> None:
    """Points standard output at /dev/null, so that Python's final flush does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _write_traceback() -> str:
    """Writes the current exception's traceback to a new file in the temporary folder; returns its path."""
    import tempfile
    import traceback

    handle, path = tempfile.mkstemp(prefix="multibackend-traceback-", suffix=".log")
    with open(handle, "w") as stream:
        traceback.print_exc(file=stream)
    return path
