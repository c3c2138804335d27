"""Errors that the command line turns into one-line messages and exit codes."""


class UsageError(Exception):
    """Bad input from the user: a one-line message and exit status 2."""

    exit_code = 2


class DataError(UsageError):
    """Missing, corrupt or unreadable data files."""


class ResultsError(Exception):
    """A results file that is malformed, from another schema or example."""
