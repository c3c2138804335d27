"""The signals that end a command as Ctrl-C does: raised as an exception where the process is.

SIGTERM, and SIGHUP, which a closed terminal or SSH session sends: every `finally` runs (child process
groups end too), and the command says so in one line and exits with 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

ENDING_SIGNALS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up (SIGHUP)"}
EXIT_INTERRUPTED = 128 + signal.SIGINT
# The exit statuses of an ending: Ctrl-C and the ending signals.
ENDING_STATUSES = frozenset({EXIT_INTERRUPTED, *(128 + number for number in ENDING_SIGNALS)})


class Terminated(BaseException):
    """An ending signal, raised where the process is, so that every `finally` runs."""

    def __init__(self, signal_number: int):
        super().__init__(signal_number)
        self.signal_number = signal_number


def _terminated(signum, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def ending_signals_raise() -> Iterator[None]:
    """Within the block, an ending signal raises `Terminated`; the previous handlers come back after it.

    Handlers can only be set from the main thread: in another one (a caller's thread) this does nothing.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {number: signal.signal(number, _terminated) for number in ENDING_SIGNALS} if in_main_thread else {}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ending(error: KeyboardInterrupt | Terminated) -> tuple[str, int]:
    """What a command says and its exit status after Ctrl-C (`interrupted`, 130) or an ending signal N (128 + N)."""
    if isinstance(error, Terminated):
        return ENDING_SIGNALS[error.signal_number], 128 + error.signal_number
    return "interrupted", EXIT_INTERRUPTED


def leave(code: int) -> NoReturn:
    """Exits with `code`; after an ending, without Python's teardown (buffers flushed first, every child already
    ended): JAX's threads crashed it there (exit 139 instead of 143 after SIGTERM during training)."""
    if code in ENDING_STATUSES:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    raise SystemExit(code)
