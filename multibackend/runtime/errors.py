"""Errors that the command line turns into one-line messages and exit codes.

Exit codes of every command: 0 passed; 1 a gate or check failed (`CheckFailed`,
or a payload whose `passed` is false); 2 bad input or environment
(`UsageError`); 3 a crash: a child process that crashed or timed out
(`ChildCrashed`), or an unexpected internal error, whose traceback is written
to a log file that the one-line message names.
"""

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_CRASHED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad input from the user: a one-line message and exit status 2."""

    exit_code = EXIT_USAGE


class DataError(UsageError):
    """Missing, corrupt or unreadable data files."""


class OutputError(UsageError):
    """An output that cannot be written (a full disk, no permission): one line, exit 2; what was there is kept."""


class ResultsError(Exception):
    """A results file that is malformed, from another schema or example."""


class CheckFailed(Exception):
    """A check of the work itself failed (not a bad input): exit status 1."""

    exit_code = EXIT_FAILED


class ChildCrashed(Exception):
    """A child process crashed or timed out; the message carries its last error line. Exit status 3."""

    exit_code = EXIT_CRASHED


def last_line(output: str, fallback: str) -> str:
    """The last non-empty line of a child process's output: where Python names its error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else fallback


def one_line(error: BaseException) -> str:
    """`ErrorType: the first line of its message`, as a one-line report names an error."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}"
