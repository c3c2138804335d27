"""The signals that end a command as Ctrl-C does: raised as an exception where the process is.

SIGTERM, and SIGHUP, which a closed terminal or SSH session sends: every `finally` runs (child process
groups end too), and the command says so in one line and exits with 128 + the signal's number.

Python runs a signal handler between any two bytecodes, also inside a garbage-collector callback or a
`__del__`, where an exception is printed as "Exception ignored" and dropped: the signal is then remembered
and raised again at the next safe point (`raise_if_ended`, and the end of `ending_signals_raise`'s block).
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


# The ending signal received and not yet handled by `ending` (None: none).
_pending: int | None = None


def _terminated(signum, frame) -> None:
    global _pending
    _pending = signum
    raise Terminated(signum)


def _interrupted(signum, frame) -> None:
    global _pending
    _pending = signum
    raise KeyboardInterrupt


def raise_if_ended() -> None:
    """Raises `Terminated` (`KeyboardInterrupt` for Ctrl-C) again for an ending signal whose first raise was
    dropped (see the module's docstring).

    Call it where stopping is safe and cheap to check: between trials, after each child process.
    """
    if _pending is None or threading.current_thread() is not threading.main_thread():
        return
    if _pending == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(_pending)


@contextlib.contextmanager
def ending_signals_raise() -> Iterator[None]:
    """Within the block, an ending signal raises `Terminated`, and Ctrl-C `KeyboardInterrupt` (unless it is
    ignored, as in a background job), each remembered until handled; the previous handlers come back after it.

    Handlers can only be set from the main thread: in another one (a caller's thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _terminated) for number in ENDING_SIGNALS}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _interrupted)
    try:
        yield
        raise_if_ended()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ending(error: KeyboardInterrupt | Terminated) -> tuple[str, int]:
    """What a command says and its exit status after Ctrl-C (`interrupted`, 130) or an ending signal N (128 + N).

    The ending is then handled: `raise_if_ended` no longer raises it.
    """
    global _pending
    _pending = None
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
