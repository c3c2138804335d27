"""Errors that the command line turns into one-line messages and exit codes."""


class UsageError(Exception):
    """Bad input from the user: a one-line message and exit status 2."""

    exit_code = 2


class DataError(UsageError):
    """Missing, corrupt or unreadable data files."""


class ResultsError(Exception):
    """A results file that is malformed, from another schema or example."""


def last_line(output: str, fallback: str) -> str:
    """The last non-empty line of a child process's output: where Python names its error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else fallback
